"""What the workflow and the command line need to know about each gauge group, without torch.

Snakemake parses ``workflow/rules/common.smk`` on every call (also for a dry run), so the facts it
checks a config against live here, free of torch: the number of lattice dimensions of each group
(2D U(1), 4D SU(3)), the options that only some groups have, and the rules of those options
(what ``--integrator auto`` means, which instanton patches fit), which the commands apply too.
The theories themselves (``dlhmc.lattice``) hold the physics; ``tests/test_settings_sources.py``
checks that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupFacts:
    """One gauge group as the workflow sees it, and where its code lives.

    ``theory`` and ``adapter`` name (``"module:Class"``, imported on demand) the lattice theory
    and the :class:`~dlhmc.theory.LinkAdapter` of the learned samplers: this entry is the one
    registry line of a group, read by :mod:`dlhmc.lattice` and :mod:`dlhmc.families.adapters`.
    """

    theory: str
    adapter: str
    dims: int
    extents: str  # the names of the lattice extents, for messages and help texts
    options: frozenset[str]  # group-specific options this group supports
    integrator: str  # what `--integrator auto` (the default) means for this group
    therm_steps: tuple[int, float]  # (N_LF, eps) of the HMC that thermalizes a hot start


# Most instanton hits after one trajectory (dlhmc hmc --instanton-hits): a hit takes about one to
# three leapfrog steps' time (benchmarks/instanton_hit_cost.py), so 10^4 hits are hundreds of
# trajectories' work for one sample; winding HMC uses a handful (arXiv:2106.14234), and a larger
# number is a typo.
MAX_INSTANTON_HITS = 10_000

# Options that exist for some groups only, with what they build (for error messages).
# The convolutional front end, the instanton fields and the depthwise-separable convolutions are
# written for U(1) links (angles; the SU(3) local networks are matrix stencils with no
# depthwise kind).
GROUP_OPTIONS = {
    "conv_channels": "the convolutional front end",
    "winding": "a topological translation",
    "instanton_hits": "the instanton move of winding HMC",
    "instanton_size": "the instanton move of winding HMC",
    "local_conv": "local_conv separable (depthwise-separable convolutions)",
}
# The value of a group-specific option that every group has (the others are unset or empty).
COMMON_VALUES = {"local_conv": "full"}

# The HMC integrators by group: the Omelyan (minimum-norm) scheme needs 1.9x fewer force
# evaluations per unit of trajectory length than the leapfrog at 75-80 % acceptance on a
# thermalized SU(3) 8^4 at beta 6 (benchmarks/su3_integrators.py, docs/results.md); U(1) keeps
# the leapfrog, whose tuned grids and results the reports compare against.
# The thermalizing HMC (`dlhmc infer --therm-hmc`) moves a trajectory of length 1, far more than
# a learned sampler's few short layers, at a step size that accepts most trajectories on the
# volumes we run (SU(3) Omelyan eps 0.2 at beta 6: ~89 % on 4^4, ~77 % on 6^4).
GROUPS = {
    "U1": GroupFacts(
        theory="dlhmc.lattice.u1:U1Theory", adapter="dlhmc.lattice.u1_links:U1Links",
        dims=2, extents="Nt Nx", options=frozenset(GROUP_OPTIONS), integrator="leapfrog",
        therm_steps=(10, 0.1),
    ),
    "SU3": GroupFacts(
        theory="dlhmc.lattice.su3:SU3Theory", adapter="dlhmc.lattice.su3_links:SU3Links",
        dims=4, extents="Nt Nx Ny Nz", options=frozenset(), integrator="omelyan",
        therm_steps=(5, 0.2),
    ),
}


def groups_with(option: str) -> tuple[str, ...]:
    """The groups that support a group-specific option."""
    return tuple(name for name, facts in GROUPS.items() if option in facts.options)


def unsupported_options(group: str, values: Mapping) -> list[tuple[str, str]]:
    """``(option, message)`` for every group-specific option set (non-empty, and not the value
    every group has) that ``group`` lacks.

    The message reads ``<what it builds> exists for <groups> only``.
    """
    found = []
    for option, what in GROUP_OPTIONS.items():
        value = values.get(option)
        if value and value != COMMON_VALUES.get(option) and option not in GROUPS[group].options:
            found.append((option, f"{what} exists for {', '.join(groups_with(option))} only"))
    return found


def resolve_integrator(group: str, integrator: str) -> str:
    """The integrator ``integrator`` names for ``group``: ``auto`` is the group's own.

    Chain files, HMC file names and command lines state the resolved name, so that a result
    says which scheme made it whatever the default was when it ran.
    """
    return GROUPS[group].integrator if integrator == "auto" else integrator


def instanton_size_problem(size: int, extents: Iterable[int]) -> str | None:
    """Why ``size`` cannot be the patch of an instanton hit on lattices with these extents, or
    ``None`` when it can.

    A hit spreads a ``2 pi`` flux over ``W x W`` plaquettes (0: the whole torus).  The patch must
    fit the smallest extent, and ``W = 1`` puts the whole flux into one plaquette, where it is
    invisible: a plaquette angle is only defined modulo ``2 pi``.
    """
    smallest = min(extents)
    if size != 1 and 0 <= size <= smallest:
        return None
    why = ": a 1x1 patch holds its 2 pi flux in one plaquette, which changes nothing"
    return (
        f"{size} must be 0 (delocalized) or 2..{smallest} (the smallest lattice extent)"
        + (why if size == 1 else "")
    )


def check_instanton_size(lattice: Iterable[int], size: int) -> None:
    """Raise ``ValueError("instanton_size ...")`` for a patch that does not fit ``lattice``."""
    problem = instanton_size_problem(size, lattice)
    if problem is not None:
        raise ValueError(f"instanton_size {problem}")
