"""Process-group set-up decisions that need no second process (the gloo run is in test_mpi.py)."""

from __future__ import annotations

import pytest
import torch

from dlhmc import distributed

LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "PALS_RANKID", "OMPI_COMM_WORLD_SIZE")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)


def test_single_process_needs_no_mpi_and_no_process_group(no_launcher):
    ctx = distributed.setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (0, 1, 0, True)
    assert ctx.backend is None and ctx.comm is None and not ctx.distributed
    assert not torch.distributed.is_initialized()
    # Collectives are identities on one process.
    model = torch.nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    distributed.average_gradients(model)
    distributed.broadcast_module(model)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    values = torch.tensor([1.0, 2.0])
    assert distributed.mean_over_ranks(values) is values
    assert distributed.gather_to_main(ctx, "x") == ["x"]


@pytest.mark.parametrize("name", LAUNCHER_VARS)
def test_launchers_are_recognized(no_launcher, monkeypatch, name):
    assert not distributed.launched_by_mpi()
    monkeypatch.setenv(name, "0")
    assert distributed.launched_by_mpi()


@pytest.mark.parametrize(
    ("visible", "local_rank", "expected"),
    [("0,1,2,3", 2, "2"), ("0,1,2,3", 5, "1"), ("3,7", 1, "7"), ("GPU-a,GPU-b", 0, "GPU-a")],
)
def test_gpu_binding_picks_one_visible_device_by_local_rank(
    monkeypatch, visible, local_rank, expected
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    distributed.bind_gpu(local_rank)
    assert distributed.os.environ["CUDA_VISIBLE_DEVICES"] == expected


def test_gpu_binding_counts_driver_devices_when_nothing_is_set(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(distributed, "_gpus_on_node", lambda: 4)
    distributed.bind_gpu(6)
    assert distributed.os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(distributed, "_gpus_on_node", lambda: None)  # no NVIDIA driver
    distributed.bind_gpu(1)
    assert "CUDA_VISIBLE_DEVICES" not in distributed.os.environ
