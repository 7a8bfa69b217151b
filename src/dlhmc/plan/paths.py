"""Labels and result paths: every path component derived from a number is formatted here, once.

Why once: a file's name is its identity for Snakemake, so a label that changed its formatting
(``beta4`` for ``beta4.0``) would rerun every finished job of the experiment.  Adding a beta or a
volume to the config therefore never renames an existing result.
"""

from __future__ import annotations

from collections.abc import Sequence

# Files `dlhmc train` writes into its run directory; the train rule declares these as its output.
MODEL_FILES = ("checkpoint.pt", "metrics.csv", "config.yaml")
# Stages of the beta transfer, each a chain file transfer/<stage>.nc: the model of the beta below
# as it is, and briefly retrained at this beta.
TRANSFER_STAGES = ("none", "retrained")
# Chain file of the volume curriculum's transfer row, in a learner's directory on a fine-tuned
# volume: the model of train.lattice, sampled there as it is (not a stage of the beta transfer).
VOLUME_TRANSFER = "transfer/volume.nc"
# The chain files of a flow learner, in its directory, each named after the sampler attribute of
# the file (the analysis's kind): independence Metropolis with flow proposals, and HMC in the
# flow's latent variables (with the learner's flow_hmc settings).
FLOW_SAMPLERS = ("flow_imh", "flow_hmc")
# Replica exchange over a volume's whole ladder (experiment key trex), each a directory of
# chain files (one per beta, named by :func:`beta_label`), swaps.csv and round_trips.csv: plain
# parallel tempering, and T-REX through the bridges (experiment key bridges).
EXCHANGES = ("pt", "trex")


def beta_label(beta: float) -> str:
    """Shortest round-trip text of beta (4 -> '4.0', 4.25 -> '4.25'): stable across config edits."""
    return repr(float(beta))


def lattice_label(shape: Sequence[int]) -> str:
    """``16x16`` for the extents [16, 16]."""
    return "x".join(str(n) for n in shape)


def lattice_shape(label: str) -> list[int]:
    """The extents a lattice label states (the inverse of :func:`lattice_label`)."""
    return [int(n) for n in label.split("x")]


def eps_label(eps: float) -> str:
    """Six significant digits; the job runs with exactly the eps its file name states."""
    return format(float(eps), ".6g")


def beta_dir(exp: str, lattice: str, beta: str) -> str:
    return f"results/{exp}/{lattice}/beta{beta}"


def learned_dir(exp: str, lattice: str, beta: str, variant: str | None = None) -> str:
    """Where a learner's model and chains live: the ladder's own in the beta directory (the
    names of experiments without variants never change), a variant's under learned/<name>.
    """
    base = beta_dir(exp, lattice, beta)
    return base if variant is None else f"{base}/learned/{variant}"


def model_files(exp: str, lattice: str, beta: str, variant: str | None = None) -> list[str]:
    return [f"{learned_dir(exp, lattice, beta, variant)}/model/{name}" for name in MODEL_FILES]


def flow_chain(exp: str, lattice: str, beta: str, variant: str, sampler: str) -> str:
    """Chains of one flow sampler (a name of :data:`FLOW_SAMPLERS`) of a flow learner."""
    return f"{learned_dir(exp, lattice, beta, variant)}/{sampler}.nc"


def transfer_chain(exp: str, lattice: str, beta: str, stage: str) -> str:
    return f"{beta_dir(exp, lattice, beta)}/transfer/{stage}.nc"


def volume_transfer_chain(exp: str, lattice: str, beta: str, variant: str | None = None) -> str:
    return f"{learned_dir(exp, lattice, beta, variant)}/{VOLUME_TRANSFER}"


def bridge_dir(exp: str, lattice: str, beta: str) -> str:
    """The bridge flow into ``beta`` from the beta below it, and its derivative estimates."""
    return f"{beta_dir(exp, lattice, beta)}/bridge"


def derivative_csv(exp: str, lattice: str, beta: str) -> str:
    return f"{bridge_dir(exp, lattice, beta)}/derivative.csv"


def exchange_dir(exp: str, lattice: str, exchange: str) -> str:
    """Directory of one replica-exchange run (a name of :data:`EXCHANGES`) of a volume."""
    return f"results/{exp}/{lattice}/{exchange}"


def exchange_chain(exp: str, lattice: str, exchange: str, beta: str) -> str:
    """The chain file ``dlhmc trex`` writes for ``beta`` (a beta label) into its directory."""
    return f"{exchange_dir(exp, lattice, exchange)}/beta{beta}.nc"
