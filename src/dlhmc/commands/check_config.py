"""``dlhmc check-config FILE``: check a workflow config as the workflow does, before Snakemake.

Why a command: Snakemake reads ``--configfile`` with its own loader before any check of ours
runs, so a config that is not UTF-8 ends in a ``UnicodeDecodeError`` traceback there, and every
other problem costs a start of Snakemake.  This runs the workflow's checks in order (the text's
encoding, YAML syntax, keys given twice, the JSON schema with its defaults filled in, then
:func:`dlhmc.plan.experiments.load_experiments`, as ``workflow/rules/common.smk`` calls it) and
prints one line per problem: exit status 2 if there is any, 0 and ``ok`` otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from dlhmc.commands.options import UsageError, read_config_text
from dlhmc.config_check import duplicate_keys

SCHEMA = Path("workflow", "schemas", "config.schema.yaml")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="check a workflow config file (encoding, YAML, duplicated keys, schema, plan)",
        description=__doc__,
    )
    parser.add_argument("config", type=Path, metavar="FILE", help="workflow config (YAML)")
    parser.add_argument(
        "--schema",
        type=Path,
        default=None,
        help=f"the workflow's config schema (default: {SCHEMA} in the current directory or in "
        "the source tree of this package)",
    )
    parser.set_defaults(func=run)


def find_schema(given: Path | None) -> Path:
    """The schema file: ``given``, else the workflow's in the current directory or beside the
    package's source tree (an editable install); ``UsageError`` when there is none."""
    if given is not None:
        if not given.is_file():
            raise UsageError(f"--schema: {given}: no such file")
        return given
    import dlhmc

    for root in (Path.cwd(), Path(dlhmc.__file__).resolve().parents[2]):
        if (root / SCHEMA).is_file():
            return root / SCHEMA
    raise UsageError(f"--schema: no {SCHEMA} in the current directory or the package's source "
                     "tree; give the workflow's schema file")


def schema_problems(config, schema: dict) -> list[str]:
    """One line per schema violation, naming its key; fills the schema's defaults into
    ``config`` as Snakemake's ``validate`` does (the later checks assume them)."""
    from jsonschema import Draft202012Validator, validators

    from dlhmc.plan.experiments import config_key

    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in props.items():
                if isinstance(prop, dict) and "default" in prop:
                    instance.setdefault(name, prop["default"])
        yield from properties(validator, props, instance, subschema)

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    return [f"{config_key(e.absolute_path)}: {e.message}" for e in errors]


def problems(path: Path, schema_path: Path) -> list[str]:
    """Every problem of the config file ``path``, in the order the workflow meets them."""
    from dlhmc.plan.experiments import load_experiments

    try:
        config = yaml.safe_load(read_config_text(path))
    except ValueError as err:
        return [str(err)]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return [f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}"]
    found = duplicate_keys(path)
    if not isinstance(config, dict):
        return [*found, f"{path}: expected a mapping with the key experiments"]
    schema = yaml.safe_load(read_config_text(schema_path))
    found += schema_problems(config, schema)
    if found:
        return found
    try:
        load_experiments(config, schema, [path])
    except ValueError as err:
        lines = str(err).splitlines()
        return [line.strip() for line in lines[1:]] or lines
    return []


def run(args: argparse.Namespace) -> int:
    schema = find_schema(args.schema)
    found = problems(args.config, schema)
    for problem in found:
        print(problem)
    if found:
        return 2
    print(f"{args.config}: ok")
    return 0
