"""The HMC baseline grid: which (N_LF, eps, integrator, instanton hits, size) points run at every
beta, their file names, and the command-line options of one point.

A grid point's file name states everything that distinguishes its run; plain leapfrog HMC keeps
the historical `nlf{N}_eps{E}` so that adding an integrator or winding HMC never renames (reruns)
an existing result.
"""


def hmc_grid(exp):
    """Sorted unique (nlf, eps label) points: the product nlf x length plus the explicit points."""
    hmc = exp["hmc"]
    points = {
        (nlf, eps_label(length / nlf))
        for nlf in hmc.get("nlf", [])
        for length in hmc.get("length", [])
    }
    points |= {
        (p["nlf"], eps_label(p["eps"]))
        for p in hmc.get("points", [])
        if not own_variant(p)
    }
    return sorted(points, key=lambda p: (p[0], float(p[1])))


def hmc_variants(exp):
    """(integrator, hits, size) of every baseline kind: plain HMC and winding HMC per integrator.

    Plain HMC has no patch, so hits 0 appears once whatever the sizes; a hit size belongs to
    the hits above 0 only.
    """
    hmc = exp["hmc"]
    moves = {(0, 0)} if 0 in hmc["instanton_hits"] else set()
    moves |= {
        (k, w) for k in hmc["instanton_hits"] if k > 0 for w in hmc["instanton_size"]
    }
    integrators = {resolved_integrator(exp, i) for i in hmc["integrator"]}
    return sorted((i, k, w) for i in integrators for (k, w) in moves)


def resolved_integrator(exp, integrator):
    """`auto` is the group's integrator (dlhmc.groups), named in files and command lines."""
    return GROUPS[exp["group"]].integrator if integrator == "auto" else integrator


def hmc_label(nlf, eps, integrator, hits, size):
    """File stem of one baseline: plain leapfrog HMC keeps the historical `nlf{N}_eps{E}`, so
    adding an integrator or winding HMC to the config never renames (reruns) existing files.
    """
    label = f"nlf{nlf}_eps{eps}"
    if integrator != "leapfrog":
        label += f"_{integrator}"
    if hits:
        label += f"_hits{hits}_size{size}"
    return label


def hmc_points(exp):
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
            variant = (
                p.get("integrator", "leapfrog"),
                p.get("instanton_hits", 0),
                p.get("instanton_size", 0) if p.get("instanton_hits", 0) else 0,
            )
            eps = eps_label(p["eps"])
            points[hmc_label(p["nlf"], eps, *variant)] = (p["nlf"], eps, *variant)
    return points


def own_variant(point):
    """Whether an explicit grid point names its own integrator or instanton hits."""
    return any(k in point for k in ("integrator", "instanton_hits", "instanton_size"))


def hmc_point(wildcards):
    """(nlf, eps, integrator, hits, size) of an HMC job, from its file name."""
    points = hmc_points(experiment(wildcards))
    if wildcards.point not in points:
        raise WorkflowError(
            f"experiments.{wildcards.exp}.hmc: {wildcards.point} is not a grid point "
            f"(have {', '.join(points)})"
        )
    return points[wildcards.point]


def hmc_options(wildcards):
    """The options of one grid point; the integrator only where it is not the group's default
    (`dlhmc hmc --integrator auto`), so plain U(1) command lines stay what they were."""
    nlf, eps, integrator, hits, size = hmc_point(wildcards)
    words = f"--nlf {nlf} --eps {eps}"
    if integrator != GROUPS[experiment(wildcards)["group"]].integrator:
        words += f" --integrator {integrator}"
    if hits:
        words += f" --instanton-hits {hits} --instanton-size {size}"
    return words
