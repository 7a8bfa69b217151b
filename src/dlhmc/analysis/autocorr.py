"""Integrated autocorrelation time by Wolff's Gamma method, with independent chains as replicas.

Reference: U. Wolff, "Monte Carlo errors with less errors", Comput. Phys. Commun. 156 (2004) 143,
hep-lat/0306017 (the replica formulas of section 3 and the automatic window of section 3.3).

Why not simply pyerrors: pyerrors subtracts each replica's own mean. The topological charge at
large beta lives in the regime of many chains that are short compared with tau_int; there a
chain's own mean absorbs its slow sector-to-sector wandering, and tau_int comes out biased low
(by a factor 2-5 in this project's runs). Wolff's replica formulas subtract the *global* mean over
all chains, whose bias is O(1/N_total) and is removed by his correction. ``pyerrors_tau_int`` is
kept as a cross-check that is trustworthy only where every chain is long compared with tau_int.

An estimate is reported as a lower bound (``frozen``) when the data cannot resolve the decay of
the autocorrelation function: every chain constant (the charge never tunnels), the window
criterion not met before half the shortest chain, chains shorter than ``MIN_CHAIN_TAUS`` times
tau_int, or fewer than ``MIN_WINDOWS`` windows in all the data together. A frozen
sampler must never look like a fast one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Wolff's S: the window is chosen where the systematic error exp(-W/tau) balances the
# statistical one; S = 1.5 is the value the project uses throughout (physics.md).
DEFAULT_S = 1.5

# Each chain must span this many tau_int (i.e. 10 independent samples) for the estimate to count
# as a measurement: with the window at W ~ 4-6 tau_int it would otherwise reach a quarter of the
# chain, and a single chain that drifts without decorrelating (rho ~ 1 up to W) stops the window
# near W ~ 0.12 N, i.e. tau_int ~ N/8 -- caught by this bound.
MIN_CHAIN_TAUS = 20.0

# All chains together must hold this many windows (2W + 1 measurements each). The bias of the
# estimated mean is a relative -(2W + 1)/N_total on tau_int and Wolff's correction removes it to
# first order only; the error formula, too, assumes W << N_total. Without this a single chain
# only ~10 tau_int long (its own mean is the global one) comes out low and unflagged.
MIN_WINDOWS = 10.0


@dataclass(frozen=True)
class GammaResult:
    """Outcome of the Gamma method for one observable.

    ``tau_int`` follows the convention ``tau_int = 1/2 + sum_{t>=1} rho(t)`` (uncorrelated data
    give 1/2), so the variance of the mean is ``2 tau_int Gamma(0) / N_total``. When ``frozen``
    is true, ``tau_int`` is a lower bound and ``reason`` says why.
    """

    mean: float
    mean_err: float
    tau_int: float
    tau_int_err: float
    window: int
    n_total: int
    n_replicas: int
    n_min: int
    frozen: bool
    reason: str
    known_mean: float | None
    rho: np.ndarray


def _replicas(data: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(padded [R, N_max] array, lengths [R])``; NaN-free, at least 2 points per chain."""
    if isinstance(data, np.ndarray) and data.ndim == 2:
        arr = np.asarray(data, dtype=np.float64)
        lengths = np.full(arr.shape[0], arr.shape[1], dtype=np.int64)
    else:
        chains = [np.asarray(c, dtype=np.float64).ravel() for c in data]
        if not chains:
            raise ValueError("no replicas given")
        lengths = np.array([len(c) for c in chains], dtype=np.int64)
        arr = np.zeros((len(chains), int(lengths.max())))
        for r, c in enumerate(chains):
            arr[r, : len(c)] = c
    if arr.shape[0] == 0 or lengths.min() < 2:
        raise ValueError("every replica needs at least 2 measurements")
    valid = np.arange(arr.shape[1])[None, :] < lengths[:, None]
    if not np.all(np.isfinite(arr[valid])):
        raise ValueError("data contain NaN or infinite values")
    return np.where(valid, arr, 0.0), lengths


def autocovariance(deltas: np.ndarray, lengths: np.ndarray, w_max: int) -> np.ndarray:
    """``Gamma(t) = sum_r sum_i d^r_i d^r_(i+t) / sum_r (N_r - t)`` for ``t = 0..w_max``.

    ``deltas`` is ``[R, N_max]`` with zeros beyond each replica's length, so products that cross a
    replica's end vanish and the FFT sum (zero-padded to avoid wrap-around) runs over exactly the
    pairs inside one replica.
    """
    n_max = deltas.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * n_max)))
    spec = np.fft.rfft(deltas, n=size, axis=1)
    acf = np.fft.irfft(spec * np.conj(spec), n=size, axis=1)[:, : w_max + 1].sum(axis=0)
    pairs = np.clip(lengths[:, None] - np.arange(w_max + 1)[None, :], 0, None).sum(axis=0)
    return acf / pairs


def automatic_window(rho: np.ndarray, n_total: int, s: float = DEFAULT_S) -> tuple[int, bool]:
    """Wolff's criterion: the first ``W >= 1`` with ``exp(-W/tau_W) - tau_W/sqrt(W N) < 0``.

    ``tau_W = S / ln((2 tau_int(W) + 1) / (2 tau_int(W) - 1))`` is the exponential time that a
    purely exponential rho with this ``tau_int(W)`` would have (tiny when ``tau_int(W) <= 1/2``).
    Returns ``(W, converged)``; if no W up to ``len(rho) - 1`` satisfies it, W is that maximum.
    """
    w_max = len(rho) - 1
    if w_max < 1:
        return 0, False
    w = np.arange(1, w_max + 1)
    tau_int = 0.5 + np.cumsum(rho[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        tau_w = np.where(tau_int > 0.5, s / np.log((2 * tau_int + 1) / (2 * tau_int - 1)), 1e-300)
        g = np.exp(-w / tau_w) - tau_w / np.sqrt(w * n_total)
    below = np.flatnonzero(g < 0)
    if below.size:
        return int(w[below[0]]), True
    return w_max, False


def gamma_method(
    data: np.ndarray | Sequence[np.ndarray],
    s: float = DEFAULT_S,
    known_mean: float | None = None,
    bias_correction: bool = True,
) -> GammaResult:
    """tau_int, mean and errors of one observable measured on R replicas (``[R, N]`` or a list).

    With ``known_mean`` (0 for the topological charge, by parity) the fluctuations are taken about
    that value and no mean is estimated, so no bias correction is needed. Otherwise the global
    mean over all replicas is subtracted and, with ``bias_correction``, Wolff's correction
    ``Gamma(t) += C_F(W) / N_total`` (eq. 49 of the paper at the level of Gamma) removes the
    O(tau/N_total) bias the estimated mean leaves in Gamma.

    Errors: the mean ``sqrt(C_F / N_total)`` with ``C_F = 2 tau_int Gamma(0)``; tau_int by the
    Madras-Sokal formula ``tau_int sqrt((4 W + 2) / N_total)``.
    """
    arr, lengths = _replicas(data)
    n_rep = len(lengths)
    n_total = int(lengths.sum())
    n_min = int(lengths.min())
    w_max = n_min // 2
    valid = np.arange(arr.shape[1])[None, :] < lengths[:, None]
    mean = float(arr.sum() / n_total)

    if np.all(np.where(valid, arr == arr[:, :1], True)):
        # Nothing moves inside any chain: rho(t) = 1 at every lag the chains can show, so the
        # data only say tau_int >= tau_int(W_max) = W_max + 1/2.
        return GammaResult(
            mean=mean,
            mean_err=float("nan"),
            tau_int=w_max + 0.5,
            tau_int_err=float("nan"),
            window=w_max,
            n_total=n_total,
            n_replicas=n_rep,
            n_min=n_min,
            frozen=True,
            reason="constant in every chain",
            known_mean=known_mean,
            rho=np.ones(w_max + 1),
        )

    centre = mean if known_mean is None else float(known_mean)
    gamma = autocovariance(np.where(valid, arr - centre, 0.0), lengths, w_max)
    window, converged = automatic_window(gamma / gamma[0], n_total, s)
    if known_mean is None and bias_correction:
        gamma = gamma + (gamma[0] + 2.0 * gamma[1 : window + 1].sum()) / n_total
    rho = gamma / gamma[0]
    tau = float(0.5 + rho[1 : window + 1].sum())
    c_f = 2.0 * tau * gamma[0]
    mean_err = float(np.sqrt(c_f / n_total)) if c_f > 0 else float("nan")
    tau_err = float(abs(tau) * np.sqrt((4 * window + 2) / n_total))

    reasons = []
    if not converged:
        reasons.append(f"window not converged up to W = {window} (half the shortest chain)")
    if tau * MIN_CHAIN_TAUS > n_min:
        reasons.append(f"chains of {n_min} shorter than {MIN_CHAIN_TAUS:g} tau_int")
    if (2 * window + 1) * MIN_WINDOWS > n_total:
        reasons.append(f"{n_total} measurements hold fewer than {MIN_WINDOWS:g} windows")
    return GammaResult(
        mean=mean,
        mean_err=mean_err,
        tau_int=tau,
        tau_int_err=tau_err,
        window=window,
        n_total=n_total,
        n_replicas=n_rep,
        n_min=n_min,
        frozen=bool(reasons),
        reason="; ".join(reasons),
        known_mean=known_mean,
        rho=rho,
    )


def pyerrors_tau_int(data: np.ndarray | Sequence[np.ndarray], s: float = DEFAULT_S):
    """Cross-check with pyerrors: ``Obs`` with one replica per chain, ``gamma_method(S=s)``.

    pyerrors subtracts every replica's own mean, which removes the slow variance between chains
    and biases tau_int low when chains are short compared with tau_int (many-chain runs of the
    charge at large beta). Agreement with :func:`gamma_method` is expected only for long chains.
    Returns ``(tau_int, tau_int_err, window)``.
    """
    import pyerrors as pe

    arr, lengths = _replicas(data)
    samples = [arr[r, : lengths[r]] for r in range(len(lengths))]
    names = [f"chains|r{r}" for r in range(len(samples))]
    obs = pe.Obs(samples, names)
    obs.gamma_method(S=s)
    return (
        float(obs.e_tauint["chains"]),
        float(obs.e_dtauint["chains"]),
        int(obs.e_windowsize["chains"]),
    )
