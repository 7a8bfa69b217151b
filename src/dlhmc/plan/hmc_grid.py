"""The HMC baseline grid: which (N_LF, eps, integrator, instanton hits, size) points run at every
beta, their file names, and the command-line options of one point.

A grid point's file name states everything that distinguishes its run.  Plain leapfrog HMC is
named `nlf{N}_eps{E}` alone, and every other integrator or move only appends to that name, so
adding an integrator or winding HMC to a config never renames (reruns) a finished result.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlhmc.groups import resolve_integrator
from dlhmc.plan.paths import eps_label

# (nlf, eps label, integrator, instanton hits, instanton size) of one baseline run.
Point = tuple[int, str, str, int, int]


def own_variant(point: Mapping) -> bool:
    """Whether an explicit grid point names its own integrator or instanton hits."""
    return any(k in point for k in ("integrator", "instanton_hits", "instanton_size"))


def hmc_grid(exp: Mapping) -> list[tuple[int, str]]:
    """Sorted unique (nlf, eps label) points: the product nlf x length plus the explicit points."""
    hmc = exp["hmc"]
    points = {
        (nlf, eps_label(length / nlf))
        for nlf in hmc.get("nlf", [])
        for length in hmc.get("length", [])
    }
    points |= {
        (p["nlf"], eps_label(p["eps"])) for p in hmc.get("points", []) if not own_variant(p)
    }
    return sorted(points, key=lambda p: (p[0], float(p[1])))


def hmc_variants(exp: Mapping) -> list[tuple[str, int, int]]:
    """(integrator, hits, size) of every baseline: plain HMC and winding HMC per integrator.

    Plain HMC has no patch, so hits 0 appears once whatever the sizes; a hit size belongs to
    the hits above 0 only.
    """
    hmc = exp["hmc"]
    moves = {(0, 0)} if 0 in hmc["instanton_hits"] else set()
    moves |= {(k, w) for k in hmc["instanton_hits"] if k > 0 for w in hmc["instanton_size"]}
    integrators = {resolve_integrator(exp["group"], i) for i in hmc["integrator"]}
    return sorted((i, k, w) for i in integrators for (k, w) in moves)


def hmc_label(nlf: int, eps: str, integrator: str, hits: int, size: int) -> str:
    """File stem of one baseline: `nlf{N}_eps{E}`, then the integrator unless leapfrog and the
    instanton hits and size of winding HMC."""
    label = f"nlf{nlf}_eps{eps}"
    if integrator != "leapfrog":
        label += f"_{integrator}"
    if hits:
        label += f"_hits{hits}_size{size}"
    return label


def hmc_points(exp: Mapping) -> dict[str, Point]:
    """Label -> (nlf, eps label, integrator, hits, size) of every baseline run at each beta.

    The grid (nlf x length and the explicit points) runs with every variant of hmc_variants;
    an explicit point that names its own integrator or instanton hits runs with those only, so
    a config can add a few winding-HMC points without crossing them with the whole grid.
    """
    points = {
        hmc_label(nlf, eps, *variant): (nlf, eps, *variant)
        for nlf, eps in hmc_grid(exp)
        for variant in hmc_variants(exp)
    }
    for p in exp["hmc"].get("points", []):
        if own_variant(p):
            hits = p.get("instanton_hits", 0)
            size = p.get("instanton_size", 0) if hits else 0
            variant = (p.get("integrator", "leapfrog"), hits, size)
            eps = eps_label(p["eps"])
            points[hmc_label(p["nlf"], eps, *variant)] = (p["nlf"], eps, *variant)
    return points


def hmc_options(group: str, point: Point) -> str:
    """The `dlhmc hmc` options of one grid point; the integrator only where it is not the
    group's default (`--integrator auto`), so that the command line of a plain point, and with
    it Snakemake's record of the job, is the same whatever integrators the grid has."""
    nlf, eps, integrator, hits, size = point
    words = f"--nlf {nlf} --eps {eps}"
    if integrator != resolve_integrator(group, "auto"):
        words += f" --integrator {integrator}"
    if hits:
        words += f" --instanton-hits {hits} --instanton-size {size}"
    return words
