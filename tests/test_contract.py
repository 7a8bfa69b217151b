"""The package's contracts: layering of imports, the theory protocol, one adapter per theory.

Static checks read the source with ``ast`` (no imports of the scanned modules), so they see
lazy imports inside functions as well; each scanner is first shown a violation it must catch.
"""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import pytest
import torch

from dlhmc.families.adapters import adapter_for
from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.su3_links import SU3Links
from dlhmc.lattice.u1 import U1Theory, plaquette_angles
from dlhmc.lattice.u1_instanton import lattice_instanton
from dlhmc.lattice.u1_links import U1Links
from dlhmc.theory import GaugeTheory, LinkAdapter, Theory
from dlhmc.toy.gmm import Coordinates, GaussianMixture

SRC = Path(__file__).resolve().parents[1] / "src" / "dlhmc"
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, relative imports resolved,
    ``from pkg import sub`` counted as ``pkg.sub`` too (it may import a submodule)."""
    package = name.split(".") if name.endswith("__init__") else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def reaches(imported: set[str], target: str) -> bool:
    return any(m == target or m.startswith(target + ".") for m in imported)


def is_command_layer(path: Path) -> bool:
    rel = path.relative_to(SRC)
    return rel.parts[0] == "commands" or rel == Path("cli.py")


def test_import_scanner_sees_every_form_of_import():
    lazy = "def f():\n    from dlhmc.commands.options import UsageError\n"
    assert reaches(imported_modules(lazy, "dlhmc.distributed"), "dlhmc.commands")
    assert reaches(imported_modules("from dlhmc import cli\n", "dlhmc.x"), "dlhmc.cli")
    assert reaches(imported_modules("from ..commands import hmc\n", "dlhmc.samplers.x"),
                   "dlhmc.commands")
    assert reaches(imported_modules("import dlhmc.cli as c\n", "dlhmc.x"), "dlhmc.cli")
    assert not reaches(imported_modules("from dlhmc.commandsx import y\n", "dlhmc.x"),
                       "dlhmc.commands")


def test_no_library_module_imports_the_command_layer():
    """Only ``commands/`` and ``cli.py`` turn errors into usage messages; the library below
    them raises ``ValueError`` and never reaches up."""
    offenders = [
        str(path.relative_to(SRC))
        for path in modules()
        if not is_command_layer(path)
        for target in ("dlhmc.commands", "dlhmc.cli")
        if reaches(imported_modules(path.read_text(), module_name(path)), target)
    ]
    assert offenders == []


# Lower layers never import higher ones: the group maths, the theory contract and the
# lattices sit below the learned families, the samplers and the training loop.
BELOW = {
    "group": ("dlhmc.lattice", "dlhmc.families", "dlhmc.samplers", "dlhmc.training"),
    "theory.py": ("dlhmc.lattice", "dlhmc.families", "dlhmc.samplers", "dlhmc.training"),
    "lattice": ("dlhmc.families", "dlhmc.samplers", "dlhmc.training", "dlhmc.nets"),
    "nets": ("dlhmc.families", "dlhmc.samplers", "dlhmc.training"),
    "families": ("dlhmc.samplers", "dlhmc.training"),
    "samplers": ("dlhmc.training", "dlhmc.settings", "dlhmc.inference"),
}


@pytest.mark.parametrize("package", BELOW)
def test_no_import_climbs_back_up_the_layers(package):
    root = SRC / package
    paths = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    offenders = [
        f"{path.relative_to(SRC)} -> {target}"
        for path in paths
        for target in BELOW[package]
        if reaches(imported_modules(path.read_text(), module_name(path)), target)
    ]
    assert offenders == []


def test_no_module_exceeds_400_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path in modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# ---- the theory protocol --------------------------------------------------------------------

def protocol_members(protocol: type) -> dict[str, object]:
    """Name -> declaration (function, classmethod or annotation) over the protocol's bases."""
    members: dict[str, object] = {}
    for cls in reversed(protocol.__mro__):
        if cls is object or not getattr(cls, "_is_protocol", False) or cls.__module__ == "typing":
            continue
        members.update(cls.__annotations__)
        for name, value in vars(cls).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (classmethod, staticmethod)) or inspect.isfunction(value):
                members[name] = value
    return members


def parameters(func) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]


THEORIES = {
    "U1": (lambda: U1Theory((4, 4), 1.0), GaugeTheory, U1Links),
    "SU3": (lambda: SU3Theory((2, 2, 2, 2), 5.0), GaugeTheory, SU3Links),
    "GMM": (lambda: GaussianMixture(), Theory, Coordinates),
}


def test_gauge_theory_extends_the_sampler_contract():
    base, gauge = protocol_members(Theory), protocol_members(GaugeTheory)
    assert set(base) < set(gauge)
    assert {"plaquette", "charge", "check_lattice", "exact_plaquette"} <= set(gauge) - set(base)


@pytest.mark.parametrize("name", THEORIES)
def test_every_theory_implements_every_member_of_its_protocol(name):
    make, protocol, _ = THEORIES[name]
    theory = make()
    assert isinstance(theory, protocol)
    members = protocol_members(protocol)
    missing = sorted(set(members) - set(dir(theory)))
    assert missing == []
    for member, declared in members.items():
        if not callable(declared) and not isinstance(declared, (classmethod, staticmethod)):
            continue
        if isinstance(declared, classmethod):
            # Called on the class (the command line checks a lattice before building anything).
            assert isinstance(inspect.getattr_static(type(theory), member), classmethod), member
            declared = declared.__func__
        implemented = getattr(type(theory), member)
        assert parameters(implemented) == parameters(declared), member


def theory_reads(tree: ast.AST) -> set[str]:
    """Attributes read on a theory: ``theory.X``, ``<obj>.theory.X``, ``theory_class(..).X``
    and ``type(theory).X``."""

    def is_theory(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "theory"
        if isinstance(node, ast.Attribute):
            return node.attr == "theory"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "theory_class":
                return True
            return node.func.id == "type" and len(node.args) == 1 and is_theory(node.args[0])
        return False

    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and is_theory(node.value)
    }


def test_theory_reads_scanner_sees_every_form():
    source = "theory.a; self.theory.b; theory_class(g).c; type(theory).d; other.e"
    assert theory_reads(ast.parse(source)) == {"a", "b", "c", "d"}


def test_callers_use_only_what_the_protocol_declares():
    """Library code that holds some theory reads only protocol members, so any theory works.

    The toy modules read the mixture's own fields (centres, widths): there the theory is a
    :class:`GaussianMixture` by construction.
    """
    declared = set(protocol_members(GaugeTheory))
    toy = {SRC / "toy", SRC / "commands" / "toy_gmm.py"}
    undeclared = {
        f"{path.relative_to(SRC)}: {attr}"
        for path in modules()
        if not any(path == t or t in path.parents for t in toy)
        for attr in theory_reads(ast.parse(path.read_text()))
        if attr not in declared
    }
    assert undeclared == set()


# ---- each theory has its adapter ----------------------------------------------------------------

@pytest.mark.parametrize("name", THEORIES)
def test_adapter_is_the_theorys_own(name):
    make, _, adapter_class = THEORIES[name]
    theory = make()
    adapter = adapter_for(theory)
    assert type(adapter) is adapter_class and isinstance(adapter, LinkAdapter)
    # The adapter's units times their components are exactly the momentum coordinates.
    assert adapter.n_units * adapter.components == math.prod(theory.momentum_shape(1))
    assert adapter.lattice == tuple(theory.lattice)


def test_a_subclass_keeps_its_parents_adapter():
    class Renamed(U1Theory):
        pass

    assert type(adapter_for(Renamed((4, 4), 1.0))) is U1Links


@pytest.mark.parametrize("lattice", [(4, 4), (3, 5)])
@pytest.mark.parametrize("winding", [1, -2])
def test_u1_adapter_translates_by_the_lattice_instanton(lattice, winding):
    """The adapter's winding field is the lattice's instanton: every plaquette angle moves by
    ``2 pi winding / V`` modulo ``2 pi``."""
    field = adapter_for(U1Theory(lattice, 1.0)).winding_field(winding)
    assert torch.equal(field, lattice_instanton(lattice, winding))
    x = U1Theory(lattice, 1.0).hot_start(2, torch.Generator().manual_seed(5))
    step = plaquette_angles(x + field) - plaquette_angles(x) - 2 * math.pi * winding / math.prod(
        lattice
    )
    assert torch.remainder(step + math.pi, 2 * math.pi).sub(math.pi).abs().max() < 1e-12


def test_lattice_instanton_is_cast_after_wrapping():
    field = lattice_instanton((4, 6), 3, dtype=torch.float32)
    assert field.dtype == torch.float32
    assert torch.equal(field, lattice_instanton((4, 6), 3).float())


@pytest.mark.parametrize("name", ["SU3", "GMM"])
def test_adapters_without_an_instanton_refuse_a_winding(name):
    with pytest.raises(ValueError, match="winding"):
        adapter_for(THEORIES[name][0]()).winding_field(1)


# ---- library errors are ValueError ------------------------------------------------------------

NO_CUDA = [] if torch.cuda.is_available() else ["cuda"]


@pytest.mark.parametrize("name", ["tpu", "cuda:x", *NO_CUDA])
def test_device_resolution_raises_value_error_and_the_command_layer_names_the_option(name):
    from dlhmc import devices, distributed
    from dlhmc.commands.options import UsageError, resolve_device

    with pytest.raises(ValueError):
        devices.resolve_device(name)
    with pytest.raises(ValueError):
        distributed.setup(name)
    with pytest.raises(UsageError, match="^--device: "):
        resolve_device(name)


def test_known_devices_resolve():
    from dlhmc import devices

    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_one_coupling_survives_text_and_float64_but_not_a_neighbouring_rung():
    """Betas arrive as decimal text and as float64: equal couplings must match, the rungs of a
    ladder and a missing (NaN) coupling must not."""
    from dlhmc.theory import same_coupling

    assert same_coupling(2.5, float("2.5")) and same_coupling(0.1 + 0.2, 0.3)
    assert not same_coupling(2.5, 2.5 + 1e-6)
    assert not same_coupling(math.nan, 2.5) and not same_coupling(2.5, math.nan)
