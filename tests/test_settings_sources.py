"""Defaults, ranges and choices are stated in three places that users read: the settings classes
(src/dlhmc/settings.py), the command lines generated from them and the workflow's config schema.
These tests fail as soon as two of them disagree on a key they share."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO

from dlhmc import settings as settings_module
from dlhmc.analysis.registry import REPORT_FIGURES, REPORT_TABLES, caption, caption_path
from dlhmc.config_check import REGISTRY_KEYS
from dlhmc.groups import GROUP_OPTIONS, GROUPS
from dlhmc.lattice import PRECISIONS, THEORIES, theory_class
from dlhmc.samplers.l2hmc import L2HMCConfig
from dlhmc.settings import (
    HMCSettings,
    InferSettings,
    RunOptions,
    TrainSettings,
    defaults,
    option_fields,
)

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
# Schema section -> the settings classes of the command the workflow passes that section to.
SECTIONS = {
    "train": (TrainSettings, RunOptions),
    "infer": (InferSettings,),
    "hmc": (HMCSettings,),
}
RANGE_WORDS = ("type", "minimum", "exclusiveMinimum", "maximum")


def _plain(value):
    """Tuples as lists and Paths as text, as YAML states them."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _shared_keys():
    """(section, key, schema property, settings field) for every key both sides have."""
    for section, classes in SECTIONS.items():
        properties = SCHEMA["$defs"][section]["properties"]
        for cls in classes:
            for f in option_fields(cls):
                if f.name in properties:
                    yield pytest.param(section, f, properties[f.name], id=f"{section}.{f.name}")


SHARED = list(_shared_keys())


def test_the_sections_share_keys():
    """Guards the comparison below against comparing nothing (a renamed section, say)."""
    names = {p.id for p in SHARED}
    assert {"train.nlf", "train.checkpoint_every", "train.mask", "infer.chains"} <= names
    assert {"hmc.nlf", "hmc.chains", "infer.layer_samples", "train.activation"} <= names


@pytest.mark.parametrize(("section", "field", "prop"), SHARED)
def test_schema_states_the_settings_default(section, field, prop):
    if "default" not in prop:
        return  # absent keys take the command's default: nothing is stated twice
    assert field.default is not MISSING, f"{section}.{field.name}: the command has no default"
    default = _plain(field.default)
    if _grid_dimension(field, prop):  # the schema lists values, the command takes one per run
        default = [default]
    assert prop["default"] == default, f"{section}.{field.name}"


def _grid_dimension(field, prop) -> bool:
    """A key the workflow crosses into its HMC grid (integrator, instanton hits): a list in the
    schema, one value per ``dlhmc hmc`` run."""
    return prop.get("type") == "array" and field.metadata["option"].nargs is None


@pytest.mark.parametrize(("section", "field", "prop"), SHARED)
def test_schema_states_the_settings_choices_and_range(section, field, prop):
    option = field.metadata["option"]
    where = f"{section}.{field.name}"
    if _grid_dimension(field, prop):
        prop = prop["items"]
    if where in REGISTRY_KEYS:  # names from a registry, checked by dlhmc.config_check
        assert "enum" not in prop and prop["type"] == "string", where
        assert REGISTRY_KEYS[where] == tuple(option.choices), where
        return
    if option.choices is not None:
        assert "enum" in prop, f"{where}: the command has choices {option.choices}"
        assert set(prop["enum"]) == set(option.choices), where
        return
    assert "enum" not in prop, f"{where}: the command takes any value"
    # A list on either side (hidden widths, the HMC grid of nlf values): compare the items.
    if prop.get("type") == "array":
        prop = prop["items"]
    elif not _grid_dimension(field, prop):
        assert option.nargs is None, f"{where}: the command takes several values"
    stated = {word: prop[word] for word in RANGE_WORDS if word in prop}
    if option.range is not None:
        assert stated == option.range.schema(), where
    elif option.value_type is int:
        assert stated == {"type": "integer"}, where
    else:
        assert stated.get("type", "string") == "string", where


def test_schema_group_and_precision_choices_are_the_packages():
    experiment = SCHEMA["$defs"]["experiment"]["properties"]
    assert "enum" not in experiment["group"] and REGISTRY_KEYS["group"] == tuple(GROUPS)
    assert set(experiment["precision"]["enum"]) == set(PRECISIONS)


# --- the command lines -------------------------------------------------------------------------


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"dlhmc.commands.{name}").register(sub)
    return sub.choices[name]


COMMANDS = {
    "train": ((TrainSettings, RunOptions), ["--group", "U1", "--lattice", "4", "4", "--beta", "1",
                                           "--out", "run"]),
    "hmc": ((HMCSettings,), ["--lattice", "4", "4", "--beta", "1", "--out", "x.nc"]),
    "infer": ((InferSettings,), ["--checkpoint", "run", "--out", "x.nc"]),
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_is_an_option_with_the_settings_choices(command):
    classes, _ = COMMANDS[command]
    actions = {a.dest: a for a in _subparser(command)._actions if a.option_strings}
    for cls in classes:
        for f in option_fields(cls):
            action = actions[f.name]
            assert action.option_strings == ["--" + f.name.replace("_", "-")]
            option = f.metadata["option"]
            assert action.choices == option.choices, f.name
            if option.range is not None:
                assert action.type.__name__ == option.range.name, f.name
                assert action.type("1") == option.range.parse("1"), f.name


@pytest.mark.parametrize("command", ["hmc", "infer"])
def test_command_defaults_are_the_settings_defaults(command):
    classes, required = COMMANDS[command]
    args = vars(_subparser(command).parse_args(required))
    for name, default in defaults(classes[0]).items():
        assert args[name] == default, name


def test_train_defaults_are_the_settings_defaults():
    from dlhmc.commands.train import resolve

    parser = _subparser("train")
    settings, options = resolve(parser.parse_args(COMMANDS["train"][1]), parser)
    assert settings == TrainSettings(group="U1", lattice=(4, 4), beta=1.0)
    for name, default in defaults(RunOptions).items():
        if name != "out":
            assert getattr(options, name) == default, name
    # The derived defaults: a tenth of the steps of warm-up, annealing over three quarters.
    assert settings.warmup == min(1000, settings.steps // 10)
    assert settings.anneal_steps == max(1, 3 * settings.steps // 4)


def test_the_sampler_defaults_are_the_train_defaults():
    """A model built in Python with ``L2HMCConfig()`` is the one ``dlhmc train`` builds."""
    model_fields = fields(L2HMCConfig)
    train = {f.name: f for f in option_fields(TrainSettings)}
    assert {f.name for f in model_fields} <= set(train)
    for f in model_fields:
        assert train[f.name].default == f.default, f.name
    settings = TrainSettings(group="U1", lattice=(4, 4), beta=1.0)
    assert settings.l2hmc_config() == L2HMCConfig()


# --- groups and figures ------------------------------------------------------------------------


@pytest.mark.parametrize("group", list(GROUPS))
def test_group_facts_agree_with_the_theories(group):
    """groups.py is torch-free for Snakemake; the theory is the physics it must describe."""
    assert set(GROUPS) == set(THEORIES)
    dims = GROUPS[group].dims
    theory_class(group).check_lattice((4,) * dims)
    for wrong in (dims - 1, dims + 1):
        with pytest.raises(ValueError):
            theory_class(group).check_lattice((4,) * wrong)
    assert len(GROUPS[group].extents.split()) == dims
    assert GROUPS[group].options <= set(GROUP_OPTIONS)


def test_every_figure_has_one_caption_used_by_report_and_workflow():
    """The report rule declares its outputs from the registry, with the registry's captions; no
    second caption of a figure or report table lives beside the workflow."""
    rules = (REPO / "workflow" / "rules" / "report.smk").read_text()
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    for item in (*REPORT_TABLES, *REPORT_FIGURES):
        assert caption_path(item.name).is_file() and caption(item.name), item.name
        assert f"report/{item.name}" not in rules, f"{item.name}: a path besides the registry's"
        assert not (REPO / "workflow" / "report" / f"{item.name}.rst").exists(), item.name
    assert "**report_outputs(" in rules
    assert "caption=caption" in common and "str(caption_path(name))" in common
    assert not list((REPO / "workflow" / "report").glob("fig*.rst"))


def test_settings_sit_below_training():
    """Training reads its settings from dlhmc.settings (and the schedules' names with them), so
    settings must not import training back."""
    source = (REPO / "src" / "dlhmc" / "settings.py").read_text()
    imported = [
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    ] + [alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
         for alias in node.names]  # fmt: skip
    assert not [m for m in imported if m.startswith("dlhmc.training")]
    from dlhmc.training import schedules

    assert schedules.DECAYS is settings_module.DECAYS
    assert schedules.ANNEAL_SCHEDULES is settings_module.ANNEAL_SCHEDULES


def test_what_the_workflow_imports_is_torch_free():
    """Snakemake imports these on every parse, dry runs included: no torch, no matplotlib."""
    code = (
        "import sys, dlhmc.groups, dlhmc.config_check, dlhmc.analysis.registry, "
        "dlhmc.plan.experiments, dlhmc.plan.hmc_grid, dlhmc.plan.jobs, dlhmc.plan.paths, "
        "dlhmc.plan.schema_docs; "
        "print(sorted({'torch', 'matplotlib', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
