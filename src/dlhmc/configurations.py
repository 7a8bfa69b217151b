"""Gauge configurations in chain files: the links of every K-th recorded trajectory.

A chain file records observables per trajectory, which is all that ``tau_int`` and the
comparison need. Some estimators need the field itself: a bridge flow between two couplings
trains on the ensemble of the first and maps each configuration ``U`` to ``f(U)``, whose
action, Jacobian and observables are computed afresh (``dlhmc train --sampler bridge``,
``dlhmc derivative``). ``dlhmc hmc --save-every K`` therefore stores the links after recorded
trajectories ``K - 1, 2K - 1, ...`` (every K-th) in the same file, so that an ensemble and its
observables can never be paired with the wrong run.

Layout: variable :data:`LINKS` with dims ``(chain, saved, link_0, ...)`` in float64 (a complex
group element as its real and imaginary parts, the last link dim of length 2), and coordinate
:data:`SAVED`, the recorded-trajectory index of each configuration. Choosing ``K`` of the order
of the observables' ``tau_int`` keeps the file small without losing information: closer
configurations are correlated and add little.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

LINKS = "links"
SAVED = "saved"


def saved_trajectories(n_traj: int, every: int) -> np.ndarray:
    """The recorded trajectories whose links are kept: every ``every``-th, none for 0."""
    if every < 0:
        raise ValueError(f"save_every: expected an integer >= 0, got {every}")
    if every == 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(every - 1, n_traj, every, dtype=np.int64)


def stored(links: torch.Tensor) -> np.ndarray:
    """``links`` (any batch shape) as the real float64 array a chain file holds."""
    links = links.detach()
    if links.is_complex():
        links = torch.view_as_real(links)
    return links.to("cpu", torch.float64).numpy()


def variables(configurations: np.ndarray, trajectories: np.ndarray) -> tuple[dict, dict]:
    """The data variable and coordinate of configurations ``[chain, saved, ...]`` saved after
    the recorded ``trajectories``, to add to a chain file's dataset."""
    configurations = np.asarray(configurations, dtype=np.float64)
    if configurations.ndim < 3 or configurations.shape[1] != len(trajectories):
        raise ValueError(f"{LINKS}: expected [chain, {len(trajectories)} saved, ...], "
                         f"got {configurations.shape}")
    dims = ("chain", SAVED, *(f"link_{i}" for i in range(configurations.ndim - 2)))
    return {LINKS: (dims, configurations)}, {SAVED: np.asarray(trajectories, dtype=np.int64)}


def has_configurations(dataset: xr.Dataset) -> bool:
    return LINKS in dataset.data_vars and dataset.sizes.get(SAVED, 0) > 0


def links_of(dataset: xr.Dataset, where: str, dtype: torch.dtype, device="cpu") -> torch.Tensor:
    """The stored configurations ``[chain, saved, ...]`` as links of ``dtype`` on ``device``.

    ``ValueError`` naming ``where`` when the file holds none (written without
    ``--save-every``)."""
    if not has_configurations(dataset):
        raise ValueError(f"{where}: holds no configurations (variable {LINKS!r}); write it with "
                         "dlhmc hmc --save-every K")
    values = torch.from_numpy(np.ascontiguousarray(dataset[LINKS].values))
    if dtype.is_complex:
        values = torch.view_as_complex(values.contiguous())
    return values.to(device=device, dtype=dtype)


def at_saved(dataset: xr.Dataset, name: str) -> np.ndarray:
    """A per-trajectory variable ``[chain, saved]`` at the trajectories whose links are kept,
    so that an observable of ``U`` pairs with the stored ``U``."""
    return np.asarray(dataset[name].transpose("chain", "traj").values)[:, dataset[SAVED].values]
