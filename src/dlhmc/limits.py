"""Checks every command runs before any work: seeds, memory, output locations.

Why before: a seed torch cannot take, a run that cannot fit in memory or an output directory
that cannot be written otherwise fails with a traceback, and for sampling commands only after
all the sampling is done.  Each check raises ``ValueError`` with one line naming the option
(``key``) it is about; the commands turn that into a usage error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import psutil
import torch

from dlhmc.atomic import probe_write
from dlhmc.lattice import make_theory, theory_class

GiB = 2**30
# torch.Generator.manual_seed takes any integer in [0, 2^64) (it raises beyond).
SEED_LIMIT = 2**64
# Variables recorded per chain and trajectory (plaq, charge, charge_real, accept_prob,
# accepted, dH, divergent, sumlogdet), kept in memory as float64 until the file is written.
RECORDS_PER_TRAJECTORY = 8
# The commands whose memory estimate_bytes knows: what each keeps per chain differs.
COMMANDS = ("hmc", "infer", "train")


def check_seed(seed, key: str, world_size: int = 1) -> int:
    """``seed`` as an int such that every rank's generator accepts ``seed + rank``.

    Why: ``manual_seed`` raises (a C++ ``RuntimeError``/``ValueError``) for seeds outside
    ``[0, 2^64)``, and training seeds rank ``r`` with ``seed + r``, so the largest usable
    seed shrinks with the world size.  Floats (``1.0``, ``1e20``) and booleans are refused:
    a seed is an identity, not a quantity to round.
    """
    largest = SEED_LIMIT - world_size
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= largest:
        ranks = f" (rank r uses seed + r, {world_size} ranks)" if world_size > 1 else ""
        raise ValueError(f"{key}: expected an integer in [0, {largest}]{ranks}, got {seed!r}")
    return seed


def field_bytes(group: str, lattice, precision: str) -> tuple[int, int]:
    """Bytes of one chain's links and of its momenta, computed without allocating them.

    The theory builds the links of a lattice with every extent 2 on the ``meta`` device
    (shape and dtype only) and the sizes are scaled by the number of sites (fields are per
    site), so they are the real ones for every gauge group without a table of per-group
    formulas here, and extents beyond 64 bits cannot overflow a tensor shape.
    """
    lattice = tuple(int(n) for n in lattice)
    theory_class(group).check_lattice(lattice)
    tiny = make_theory(group, (2,) * len(lattice), 1.0, precision, "meta")
    links = tiny.cold_start(1)
    momentum = math.prod(tiny.momentum_shape(1)) * (torch.finfo(tiny.dtype).bits // 8)
    sites, tiny_sites = math.prod(lattice), 2 ** len(lattice)
    per_site = links.nelement() * links.element_size() // tiny_sites, momentum // tiny_sites
    return per_site[0] * sites, per_site[1] * sites


def estimate_bytes(
    group: str,
    lattice,
    chains: int,
    precision: str,
    command: str,
    *,
    trajectories: int = 0,
    nlf: int = 1,
    parameters: int = 0,
) -> int:
    """A coarse upper estimate of the memory of a run of ``command``, in bytes (Python int:
    never overflows).

    With ``L`` and ``P`` the bytes of one chain's links and momenta (:func:`field_bytes`),
    ``R = chains * trajectories * RECORDS_PER_TRAJECTORY * 8`` the recorded values and ``W =
    parameters * 8`` the model's weights (float64 upper bound):

    - ``hmc``: ``chains * 4 (L + P) + R``: current and proposed links, momenta, force and one
      temporary of each size (staples, plaquettes) at a time;
    - ``infer``: ``chains * 8 (L + P) + R + W``: the same plus the networks' link features
      and ``(s, t, q)`` outputs of one layer at a time (no gradients are kept);
    - ``train``: ``chains * 16 nlf (L + P) + 4 W``: autograd keeps, for every one of the
      ``nlf`` layers, its sub-updates' inputs, features and ``(s, t, q)`` for the backward
      pass; the weights come with their gradients and Adam's two moments.

    Why coarse is enough: the check exists to refuse runs that are orders of magnitude too big
    (``--chains 10^12``, a 10^6 x 10^6 lattice) with one line instead of an allocator
    traceback, not to pack memory tightly.
    """
    if command not in COMMANDS:
        raise ValueError(
            f"unknown kind of run {command!r} (expected one of the commands {', '.join(COMMANDS)})"
        )
    links, momenta = field_bytes(group, lattice, precision)
    per_chain = {"hmc": 4, "infer": 8, "train": 16 * nlf}[command] * (links + momenta)
    records = chains * trajectories * RECORDS_PER_TRAJECTORY * 8 if command != "train" else 0
    weights = parameters * 8 * {"hmc": 0, "infer": 1, "train": 4}[command]
    return chains * per_chain + records + weights


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory where the run's tensors live: the GPU's for CUDA, else the host's."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def check_memory(needed: int, key: str, device: torch.device | str = "cpu") -> None:
    """Raise ``ValueError("<key>: needed X GiB, available Y GiB")`` if ``needed`` does not fit.

    Why before the run: an allocation that cannot succeed otherwise surfaces as an allocator
    traceback (or, for numbers beyond 64 bits, a ``TypeError`` from C++), possibly after a
    long thermalization; ``needed`` is a Python int, so any size compares.
    """
    available = available_bytes(device)
    if needed > available:
        raise ValueError(
            f"{key}: needed {_gib(needed)} GiB, available {_gib(available)} GiB "
            f"on {torch.device(device)}"
        )


def _gib(n: int) -> str:
    value = n / GiB if n < 2**1000 else math.inf
    return f"{value:.3g}" if value < 1e6 else f"{value:.2e}"


def check_writable(path: str | os.PathLike, key: str, directory: bool = False) -> Path:
    """Make sure ``path`` (a file, or with ``directory`` a directory) can be written.

    Creates the directory that will hold the output, then creates and removes a probe file
    in it.  Why a probe and not ``os.access``: ACLs, read-only mounts, quotas and
    root-squashed network file systems all answer ``os.access`` wrongly; creating a file is
    the only test that matches what the final write will do.  The probe is named like the
    atomic temporaries (``<name>.tmp-<pid>``), so one left by a killed check is removed by
    the next write of that output.
    """
    path = Path(path)
    if not directory and path.is_dir():
        raise ValueError(f"{key}: {path} is a directory")
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{key}: {path} exists and is not a directory")
    folder = path if directory else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{key}: cannot write {path} ({err.strerror or type(err).__name__})"
                         ) from None
    probe_write(folder, ".dlhmc-probe" if directory else path.name, path, key)
    return path
