"""Data-parallel training on MPI ranks: mpi4py finds the ranks, torch.distributed moves gradients.

Every rank runs its own batch of Markov chains with its own seed and computes the
gradient of the loss on them; the gradients are averaged so that all ranks take the
same optimizer step and the model stays identical everywhere.  This is plain data
parallelism: R ranks with B chains each estimate the loss from R * B chains.

Why mpi4py and not torchrun: on Polaris (and on Slurm clusters) jobs are launched
with ``mpiexec``, which knows rank and world size but sets none of the variables
``torch.distributed`` reads.  Rank 0 therefore broadcasts its host name as
``MASTER_ADDR`` and a free port it picked as ``MASTER_PORT`` over MPI, and every rank
joins the process group with ``init_method="env://"``.

GPUs: Cray MPICH does not bind GPUs, so each rank restricts ``CUDA_VISIBLE_DEVICES``
to the GPU of its node-local rank *before* CUDA is initialized (any ``torch.cuda``
call initializes it and freezes the visible set); afterwards every rank sees exactly
one GPU, ``cuda:0``.  NCCL is used on CUDA, gloo on CPU (the ``mpi`` backend of
torch does not take CUDA tensors).

Under ``mpiexec -n 1`` the process group has one member.  Without ``mpiexec`` nothing of
this happens: ``setup`` returns a one-rank context,
MPI is never imported and ``torch.distributed`` is never initialized, so the same
code runs on a laptop unchanged.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from dlhmc.devices import resolve_device

# Variables set by the MPI launchers we know (MPICH hydra, Cray PALS, Open MPI, Slurm's PMI/PMIx).
_LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "PALS_RANKID", "OMPI_COMM_WORLD_SIZE")
# Node-local rank, in order of preference; MPI's shared-memory split is the fallback.
_LOCAL_RANK_VARS = (
    "PMI_LOCAL_RANK",
    "PALS_LOCAL_RANKID",
    "MPI_LOCALRANKID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "SLURM_LOCALID",
)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job and which device and collective backend it uses.

    ``backend`` is ``None`` for a single process (no process group exists then).
    ``comm`` is the mpi4py world communicator when launched under MPI, used for
    gathering Python objects (chain buffers, RNG states) onto rank 0.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    is_main: bool
    comm: Any = field(default=None, repr=False, compare=False)

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def launched_by_mpi() -> bool:
    return any(name in os.environ for name in _LAUNCHER_VARS)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _local_rank(comm) -> int:
    """Rank within the node: from the launcher, else from MPI's shared-memory split."""
    for name in _LOCAL_RANK_VARS:
        if name in os.environ:
            return int(os.environ[name])
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    local_rank = node.Get_rank()
    node.Free()
    return local_rank


def _gpus_on_node() -> int | None:
    """GPU count from the NVIDIA driver's /proc entries, which does not initialize CUDA."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return None


def bind_gpu(local_rank: int) -> None:
    """Make exactly one GPU visible to this rank (round robin when ranks outnumber GPUs)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip()]
        if devices:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[local_rank % len(devices)]
        return
    count = _gpus_on_node()
    if count:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank % count)


def setup(device: str = "auto") -> DistContext:
    """Join the job's process group (if any) and pick this rank's device.

    ``device`` is the ``--device`` option (``auto``, ``cpu``, ``cuda``); it is
    resolved only after GPU binding so that ``auto`` cannot initialize CUDA early.
    Raises ``ValueError`` for a device that does not exist here.
    """
    if not launched_by_mpi():
        dev = resolve_device(device)
        return DistContext(0, 1, 0, dev, None, True)

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, world_size = comm.Get_rank(), comm.Get_size()
    # One rank under mpiexec still joins a (one-member) process group: the collectives are then
    # no-ops, but the job runs the multi-rank code path, which is how the NCCL backend is
    # checked on a machine with one GPU (NCCL cannot put two ranks on one GPU).
    local_rank = _local_rank(comm)
    if device != "cpu":
        bind_gpu(local_rank)
    dev = resolve_device(device)
    if dev.type == "cuda":
        # One visible GPU after binding; if binding was impossible (no driver entries in /proc,
        # e.g. in some containers) the ranks of a node still spread over its GPUs.
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"

    addr = os.environ.get("MASTER_ADDR") or comm.bcast(
        socket.gethostname() if rank == 0 else None, root=0
    )
    port = os.environ.get("MASTER_PORT") or comm.bcast(_free_port() if rank == 0 else None, root=0)
    os.environ["MASTER_ADDR"] = str(addr)
    os.environ["MASTER_PORT"] = str(port)
    kwargs = {"device_id": dev} if backend == "nccl" else {}
    dist.init_process_group(
        backend=backend, init_method="env://", rank=rank, world_size=world_size, **kwargs
    )
    return DistContext(rank, world_size, local_rank, dev, backend, rank == 0, comm)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group; every rank must call it (it synchronizes first)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _world() -> int:
    """Ranks in the process group; 1 when none was created (single process)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's model state (parameters and persistent buffers) to every rank.

    Non-persistent buffers (such as masks) are rebuilt from the configuration on every
    rank and need no copy.
    """
    if _world() == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(module: torch.nn.Module) -> None:
    """Replace each gradient by its mean over ranks (one flat all-reduce).

    Parameters without a gradient on this rank contribute zeros, so every rank
    issues the same collective whatever its graph did.  A non-finite gradient on any
    rank makes the mean non-finite on every rank, so the decision to skip an update
    is the same everywhere.
    """
    world = _world()
    if world == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Mean of a small tensor of statistics over ranks (identity on one process)."""
    world = _world()
    if world == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / world


def gather_to_main(ctx: DistContext, obj: Any) -> list[Any] | None:
    """Python objects of every rank, in rank order, on rank 0 (``None`` elsewhere)."""
    if not ctx.distributed:
        return [obj]
    return ctx.comm.gather(obj, root=0)


def abort(ctx: DistContext) -> None:
    """End every rank after an error on this one (the others would wait in a collective forever).

    Called from an ``except`` block: the traceback is printed first, then MPI aborts.
    """
    if not ctx.distributed:
        return
    traceback.print_exc()
    sys.stderr.flush()
    ctx.comm.Abort(1)
