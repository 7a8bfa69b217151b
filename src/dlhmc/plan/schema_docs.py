"""The parameter table of docs/pipeline.md, generated from workflow/schemas/config.schema.yaml.

Why generated: the schema is what Snakemake checks a config against and fills defaults from, so a
table written by hand would drift from it.  ``python -m dlhmc.plan.schema_docs`` prints the table,
``--write docs/pipeline.md`` replaces it between its markers; ``tests/test_plan.py`` fails while
the document and the schema disagree.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

SCHEMA = Path("workflow/schemas/config.schema.yaml")
BEGIN = "<!-- config table: python -m dlhmc.plan.schema_docs --write docs/pipeline.md -->"
END = "<!-- end of config table -->"
HEADER = ("key", "type", "default", "allowed values", "description")


def _text(value) -> str:
    """A value as the YAML of a config states it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _type(node: Mapping) -> str:
    if isinstance(node.get("type"), list):  # e.g. bridges: true, or a mapping of settings
        return " or ".join(node["type"])
    if node.get("type") == "array":
        return f"list of {_type(node.get('items', {}))}"
    if "type" in node:
        return node["type"]
    values = node.get("enum", [])
    return "integer" if values and all(isinstance(v, int) for v in values) else "string"


def _allowed(node: Mapping) -> list[str]:
    """The constraints of a value, in words: choices, bounds, patterns, sizes."""
    words = []
    if "enum" in node:
        words.append(", ".join(f"`{_text(v)}`" for v in node["enum"]))
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
        if key in node:
            words.append(f"{sign} {_text(node[key])}")
    if "pattern" in node:
        words.append(f"matches `{node['pattern']}`")
    if "pattern" in node.get("propertyNames", {}):
        words.append(f"names match `{node['propertyNames']['pattern']}`")
    if "minProperties" in node:
        words.append(f"at least {node['minProperties']} entry")
    if "minItems" in node:
        words.append(f"at least {node['minItems']} item{'s' if node['minItems'] > 1 else ''}")
    if node.get("uniqueItems"):
        words.append("no repeats")
    items = node.get("items", {})
    inner = _allowed(items) if node.get("type") == "array" and "properties" not in items else []
    if inner:
        words.append("each item " + ", ".join(inner))
    return words


def _resolve(ref: str, defs: Mapping) -> dict:
    """The schema a ``#/$defs/...`` reference names. One that names another key's setting
    (``#/$defs/infer/properties/chains``, an infer.overrides entry) lends its type and bounds,
    not its default: a setting left out of the entry keeps the value it has without it."""
    parts = ref.removeprefix("#/$defs/").split("/")
    node = defs
    for part in parts:
        node = node[part]
    if len(parts) == 1:
        return dict(node)
    return {key: value for key, value in node.items() if key != "default"}


def _rows(node: Mapping, key: str, defs: Mapping, required: bool, needs: list) -> Iterator[tuple]:
    if "$ref" in node:
        node = {**_resolve(node["$ref"], defs), **node}
    if key:
        default = "required" if required else (
            f"`{_text(node['default'])}`" if "default" in node else "")  # fmt: skip
        allowed = _allowed(node) + [f"needs `{n}`" for n in needs]
        description = " ".join(str(node.get("description", "")).split())
        yield (f"`{key}`", _type(node), default, "; ".join(allowed), description)
    prefix = f"{key}." if key else ""
    dependent = node.get("dependentRequired", {})
    for name, child in node.get("properties", {}).items():
        yield from _rows(child, prefix + name, defs, name in node.get("required", ()),
                         dependent.get(name, []))  # fmt: skip
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "$ref" in extra:
        yield from _rows(extra, f"{prefix}<name>", defs, False, [])
    items = node.get("items", {})
    if node.get("type") == "array" and "properties" in items:
        for name, child in items["properties"].items():
            yield from _rows(child, f"{key}[].{name}", defs, name in items.get("required", ()),
                             [])  # fmt: skip


def parameter_rows(schema: Mapping) -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed values, description) of every config key, in schema order;
    ``<name>`` stands for an experiment's name, ``[]`` for every item of a list."""
    return list(_rows(schema, "", schema.get("$defs", {}), False, []))


def parameter_table(schema: Mapping) -> str:
    """The Markdown table of :func:`parameter_rows` (pipes in cells escaped)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in parameter_rows(schema):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def documented_table(text: str) -> str:
    """The table between the markers of a document; ``ValueError`` without both markers."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"expected one {BEGIN!r} and one {END!r} in the document")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def replace_table(text: str, table: str) -> str:
    """``text`` with the table between its markers replaced by ``table``."""
    documented_table(text)
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlhmc.plan.schema_docs", description=__doc__)
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="the workflow's config schema")
    parser.add_argument("--write", type=Path, metavar="DOC", help="replace the table in DOC")
    args = parser.parse_args(argv)
    table = parameter_table(load_schema(args.schema))
    if args.write is None:
        print(table)
    else:
        args.write.write_text(replace_table(args.write.read_text(), table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
