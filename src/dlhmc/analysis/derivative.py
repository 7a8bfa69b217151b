"""The derivative of an expectation value in the coupling, by finite differences three ways.

``(<O>_B2 - <O>_B1) / (B2 - B1)`` for ``O`` = ``plaq`` (the mean cosine of a configuration's
plaquettes) and ``q2`` (``Q_Z^2``), from ensembles at ``B1`` and ``B2`` (``dlhmc derivative``):

- ``independent``: the mean at B2 minus the mean at B1, each by the Gamma method with the
  chains of its file as replicas; the two errors added in quadrature (the ensembles are
  independent). The difference of two noisy means is noisy: nothing cancels.
- ``reweight``: the B1 ensemble reweighted to B2, ``<O>_2 = <w O>_1 / <w>_1`` with
  ``w = exp(-(B2 - B1) S'(U))``, ``S = beta S'``. ``O`` is measured on the same configurations
  in both terms, so much of its fluctuation cancels, but the weights spread: ``log w = -dbeta
  S' + const`` has the standard deviation ``dbeta sqrt(var S')``, and in 2D U(1), whose
  plaquettes are nearly independent, ``var S' = V d<P>/dbeta`` grows with the volume ``V``: the
  effective sample size ``(sum w)^2 / (N sum w^2)`` falls like ``exp(-dbeta^2 V d<P>/dbeta)``.
- ``flow``: a bridge flow ``f`` trained to map ``p_B1`` onto ``p_B2`` (physics.md, "bridges"):
  ``log w(U) = -S_B2(f(U)) + S_B1(U) + log|J_f(U)|`` and ``<O>_2 - <O>_1 = <w O(f(U))>_1 /
  <w>_1 - <O(U)>_1`` over the B1 configurations. This is importance sampling with the proposal
  ``f_* p_B1``: unbiased for ANY invertible ``f`` whose Jacobian is right (the tests use flows
  with random weights). A good bridge makes ``w`` nearly constant and ``O(f(U))`` close to
  ``O(U)``; the gain is their correlation, which the difference cancels.

Plain reweighting *is* the flow estimator with ``f`` the identity (:func:`identity`): one code
path, :func:`map_ensemble` then :func:`correlated_difference`.

Errors: every estimator is a function of means of per-configuration series (primaries) on
autocorrelated chains. For the ratio ``F = A_wO / A_w - A_O`` the Gamma method is applied to
the linearized (projected) series ``sum_a dF/dA_a (a_i - A_a)`` with the chains as replicas
(Wolff 2004, section 3: derived quantities), :func:`linearized`. Weights in float64 with the
largest ``log w`` subtracted (``F`` does not depend on the weights' scale), so no exponential
overflows.

Which configurations (a fair comparison at the same number of configurations): ``reweight``
and ``flow`` use the stored configurations of B1 (``dlhmc hmc --save-every K``,
:func:`dlhmc.configurations.links_of`) and the recorded observables at those trajectories
(:func:`~dlhmc.configurations.at_saved`); ``independent`` uses the same trajectories of B1 and,
of B2, its saved trajectories where it has some, else its recorded values thinned by B1's
``K``. So each ensemble contributes the configurations that a derivative by reweighting or by a
bridge would have from it; ``n_configs`` counts all that enter an estimate (``independent``: of
both files). The independent estimate thus uses about twice the configurations of the
single-ensemble ones: a flow's gain over it is, if anything, understated.

A bridge must not be evaluated on the configurations it was trained on: ``f`` then depends on
them, the estimate is no longer importance sampling with a fixed proposal, and it is biased
(measured, 8x8, beta 2 -> 2.5, a bridge of 1000 steps: d<plaq>/dbeta 4.5 errors below the exact
value on its 24 training chains, 0.7 errors on its 8 held-out chains of the same file, and
within an error on an independent ensemble). So ``bridge_chains`` restricts the flow estimator
to the chains the bridge held out when it trained on B1's own file (``dlhmc derivative``
decides), or to any independent ensemble at B1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlhmc import configurations
from dlhmc.analysis.autocorr import GammaResult, gamma_method
from dlhmc.analysis.exact import exact_charge_sq, exact_plaquette
from dlhmc.flows.ess import effective_sample_size
from dlhmc.theory import same_coupling

OBSERVABLES = ("plaq", "q2")
ESTIMATORS = ("independent", "reweight", "flow")
# The contract's columns, then the documented extras: ``ess`` of the weights (reweight, flow),
# ``tau_int`` of the Gamma method in saved configurations (independent: the larger of the two
# files'), ``frozen`` 1 where a Gamma estimate is only a lower bound (its error is one too), or
# where the weights leave fewer than MIN_EFFECTIVE_CONFIGS effective configurations.
COLUMNS = ("observable", "estimator", "beta_from", "beta_to", "value", "error", "exact",
           "n_configs", "ess", "tau_int", "frozen")  # fmt: skip
# Effective configurations ``ess * N`` below which a weighted estimate gets no verdict: its
# linearized error assumes Gaussian fluctuations of the weighted sums, which a handful of dominant
# weights do not have, so the error is then an underestimate (measured: 16x16, beta 2 -> 2.5,
# reweighting with ESS 3e-4 of 6400 configurations, about 2 effective, came out 5 errors off).
MIN_EFFECTIVE_CONFIGS = 100


@dataclass(frozen=True)
class Estimate:
    """A difference ``<O>_2 - <O>_1`` (not yet divided by ``dbeta``) with its error."""

    value: float
    error: float
    tau_int: float
    n_configs: int
    frozen: bool
    ess: float = math.nan


def identity(x):
    """The map of plain reweighting: ``f(U) = U`` with ``log|J| = 0`` (GaugeFlow's signature)."""
    import torch

    return x, torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)


def linearized(
    primaries: Sequence[np.ndarray],
    function: Callable[..., float],
    gradient: Callable[..., Sequence[float]],
) -> tuple[float, GammaResult]:
    """``F(A_1, ..., A_n)`` of the means of ``primaries`` (each ``[chain, config]``) and the
    Gamma method of its projected fluctuations ``sum_a dF/dA_a (a_i - A_a)``.

    The error of ``F`` is then the ``mean_err`` of the result, and its ``tau_int`` the one of
    the combination that matters (Wolff 2004, eqs. 21-24: one ``Gamma_F(t)`` instead of the
    matrix ``Gamma_ab(t)``, the same to first order in the fluctuations).
    """
    arrays = [np.asarray(p, dtype=np.float64) for p in primaries]
    means = [float(a.mean()) for a in arrays]
    value = float(function(*means))
    projected = sum(g * (a - m) for g, a, m in zip(gradient(*means), arrays, means, strict=True))
    return value, gamma_method(projected)


def _ratio(w_o: float, w: float, o: float) -> float:
    return w_o / w - o


def _ratio_gradient(w_o: float, w: float, o: float) -> tuple[float, float, float]:
    return 1.0 / w, -w_o / w**2, -1.0


def weights(log_w: np.ndarray) -> np.ndarray:
    """``exp(log w - max log w)`` in float64: the largest weight is 1, none overflows."""
    log_w = np.asarray(log_w, dtype=np.float64)
    if not np.all(np.isfinite(log_w)):
        raise ValueError("log weights: non-finite values (the map produced invalid links)")
    return np.exp(log_w - log_w.max())


def correlated_difference(log_w: np.ndarray, mapped: np.ndarray, before: np.ndarray) -> Estimate:
    """``<w O(f(U))>_1 / <w>_1 - <O(U)>_1``; all arrays ``[chain, config]`` of B1's
    configurations, ``mapped`` the observable of ``f(U)`` and ``before`` that of ``U``."""
    w = weights(log_w)
    value, gamma = linearized([w * mapped, w, before], _ratio, _ratio_gradient)
    ess = float(effective_sample_size(log_w))
    degenerate = ess * w.size < MIN_EFFECTIVE_CONFIGS
    return Estimate(value, gamma.mean_err, gamma.tau_int, gamma.n_total,
                    gamma.frozen or degenerate, ess)


def independent_difference(before: np.ndarray, after: np.ndarray) -> Estimate:
    """``<O>_2 - <O>_1`` from two independent ensembles (each ``[chain, config]``)."""
    first, second = gamma_method(before), gamma_method(after)
    return Estimate(second.mean - first.mean, math.hypot(first.mean_err, second.mean_err),
                    max(first.tau_int, second.tau_int), first.n_total + second.n_total,
                    first.frozen or second.frozen)


def measure(theory, x) -> dict[str, np.ndarray]:
    """The observables of :data:`OBSERVABLES` per configuration, float64 on the host."""
    return {
        "plaq": theory.plaquette(x).double().cpu().numpy(),
        "q2": theory.charge(x).double().cpu().numpy() ** 2,
    }


def map_ensemble(f, links, theory_from, theory_to, batch: int = 256):
    """``(log w, {O: O(f(U))})`` for configurations ``links [chain, config, ...]`` of B1.

    ``f(x) -> (f(x), log|det df/dx|)`` (a :class:`~dlhmc.flows.model.GaugeFlow` or
    :func:`identity`) runs in its own precision (``f.theory.dtype`` where it has one) on chunks
    of ``batch`` configurations; actions and observables are computed in the links' precision
    (float64 as stored), ``log w = -S_B2(f(U)) + S_B1(U) + log|J_f(U)|``.
    """
    import torch

    if batch < 1:
        raise ValueError(f"batch: expected an integer >= 1, got {batch}")
    shape = tuple(links.shape[:2])
    flat = links.reshape(-1, *links.shape[2:])
    batch = min(batch, max(1, flat.shape[0]))  # torch's split takes no size beyond int64
    dtype = getattr(getattr(f, "theory", None), "dtype", flat.dtype)
    log_w, mapped = [], {name: [] for name in OBSERVABLES}
    with torch.no_grad():
        for chunk in flat.split(batch):
            fx, logdet = f(chunk.to(dtype))
            fx = fx.to(chunk.dtype)
            change = theory_from.action(chunk).double() - theory_to.action(fx).double()
            log_w.append((change + logdet.double()).cpu().numpy())
            for name, values in measure(theory_to, fx).items():
                mapped[name].append(values)
    return (np.concatenate(log_w).reshape(shape),
            {name: np.concatenate(v).reshape(shape) for name, v in mapped.items()})


def stored_observables(dataset, columns: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{O: [chain, config]}`` of a chain file at its saved trajectories, or at ``columns``."""
    if columns is None:
        plaq, charge = (configurations.at_saved(dataset, n) for n in ("plaq", "charge"))
    else:
        plaq, charge = (np.asarray(dataset[n].transpose("chain", "traj").values)[:, columns]
                        for n in ("plaq", "charge"))  # fmt: skip
    return {"plaq": plaq.astype(np.float64), "q2": charge.astype(np.float64) ** 2}


def save_every(dataset) -> int:
    """The ``K`` of a file with saved configurations (attribute, else from the coordinate)."""
    if "save_every" in dataset.attrs:
        return int(np.asarray(dataset.attrs["save_every"]).reshape(-1)[0])
    return int(dataset[configurations.SAVED].values[0]) + 1


def _has_saved(dataset) -> bool:
    return configurations.SAVED in dataset.coords and dataset.sizes.get(configurations.SAVED, 0) > 0


def second_columns(first, second) -> np.ndarray | None:
    """The trajectories of B2 the independent estimate uses: ``None`` for its saved ones, else
    its recorded ones thinned by B1's ``K`` (see the module docstring)."""
    if _has_saved(second):
        return None
    return configurations.saved_trajectories(second.sizes["traj"], save_every(first))


def check_pair(first, second) -> None:
    """``ValueError`` (one line) unless B1 and B2 (:class:`~dlhmc.analysis.chains.ChainSet`)
    can be compared: one group and lattice, different couplings, configurations of B1, and at
    least 2 configurations per chain of each file for the Gamma method."""
    if first.group != second.group:
        raise ValueError(f"different gauge groups: {first.path} is {first.group}, "
                         f"{second.path} is {second.group}")
    if first.lattice != second.lattice:
        raise ValueError(f"different lattices: {first.path} is {first.lattice_label}, "
                         f"{second.path} is {second.lattice_label}")
    if same_coupling(first.beta, second.beta):
        raise ValueError(f"both files are at beta {first.beta:g}: a finite difference needs "
                         "two couplings")
    if not configurations.has_configurations(first.data):
        raise ValueError(f"{first.path} holds no configurations (variable "
                         f"{configurations.LINKS!r}): reweight and flow map them; write it "
                         "with dlhmc hmc --save-every K")
    if first.data.sizes[configurations.SAVED] < 2:
        raise ValueError(f"{first.path}: {first.data.sizes[configurations.SAVED]} saved "
                         "configuration per chain; the Gamma method needs at least 2")
    columns = second_columns(first.data, second.data)
    count = second.data.sizes[configurations.SAVED] if columns is None else len(columns)
    if count < 2:
        raise ValueError(f"{second.path}: {count} trajectories per chain at B1's save-every "
                         f"{save_every(first.data)}; the Gamma method needs at least 2")


def exact_difference(group: str, lattice, beta_from: float, beta_to: float) -> dict[str, float]:
    """``(exact <O>(B2) - exact <O>(B1)) / (B2 - B1)`` per observable, NaN where none is known."""
    lookups = {"plaq": exact_plaquette, "q2": exact_charge_sq}
    out = {}
    for name, lookup in lookups.items():
        a, b = lookup(group, tuple(lattice), beta_from), lookup(group, tuple(lattice), beta_to)
        known = a is not None and b is not None
        out[name] = (b.value - a.value) / (beta_to - beta_from) if known else math.nan
    return out


def derivative_table(first, second, bridge=None, device="cpu", batch: int = 256,
                     bridge_chains: slice = slice(None)) -> pd.DataFrame:
    """The rows of ``dlhmc derivative`` (:data:`COLUMNS`) for chain sets B1 = ``first`` and
    B2 = ``second``; ``bridge`` a map from B1 to B2 with GaugeFlow's signature, or ``None``,
    evaluated on B1's chains ``bridge_chains`` (those it did not train on).

    Values and errors are divided by ``B2 - B1``. ``ValueError`` from :func:`check_pair`.
    """
    from dlhmc.lattice import make_theory

    check_pair(first, second)
    b1, b2 = first.beta, second.beta
    theory_from = make_theory(first.group, first.lattice, b1, "double", device)
    theory_to = theory_from.with_beta(b2)
    links = configurations.links_of(first.data, str(first.path), theory_from.dtype, device)
    before = stored_observables(first.data)
    after = stored_observables(second.data, second_columns(first.data, second.data))
    estimates = {name: {"independent": independent_difference(before[name], after[name])}
                 for name in OBSERVABLES}  # fmt: skip
    maps = {"reweight": (identity, slice(None))}
    if bridge is not None:
        maps["flow"] = (bridge, bridge_chains)
    for estimator, (f, chains) in maps.items():
        if links[chains].shape[0] == 0:
            raise ValueError(f"{estimator}: no chains of B1 to evaluate it on")
        log_w, mapped = map_ensemble(f, links[chains], theory_from, theory_to, batch)
        for name in OBSERVABLES:
            estimates[name][estimator] = correlated_difference(log_w, mapped[name],
                                                               before[name][chains])
    exact = exact_difference(first.group, first.lattice, b1, b2)
    rows = []
    for name in OBSERVABLES:
        for estimator, e in estimates[name].items():
            rows.append({
                "observable": name, "estimator": estimator, "beta_from": b1, "beta_to": b2,
                "value": e.value / (b2 - b1), "error": e.error / abs(b2 - b1),
                "exact": exact[name], "n_configs": e.n_configs, "ess": e.ess,
                "tau_int": e.tau_int, "frozen": int(e.frozen),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
