"""The path gradient of the reverse KL divergence ("sticking the landing") of a flow.

The reverse KL loss ``L = E_z[S(x) + log q_theta(x)]``, ``x = f_theta(z)``, has the
reparametrized gradient ``E_z[d/dtheta (S(x) + log q_theta(x))]``, which is the sum of two terms:
the *path* term ``E_z[(grad_x (S + log q_theta))(x) . dx/dtheta]`` and the *score* term
``E_z[(d log q_theta / d theta)(x) at fixed x]`` (Roeder et al. arXiv:1703.09194; for flows
Vaitl et al. arXiv:2206.09016).  The score term's expectation is zero
(``E_q[d log q / d theta] = d/dtheta int q = 0``), so the path term alone is an estimator of the
same gradient; its variance vanishes where ``q`` is exact (``S + log q`` is then constant, its
derivative in ``x`` zero), while the score term's does not.

The path term needs ``grad_x log q(x)`` at ``x = f(z)``, which :func:`forward` carries along the
flow instead of inverting it (no bisection): with ``a_l`` the score of the density of the
``l``-th layer's input ``x_l`` (``a_0`` that of the base, zero for the Haar prior) and a coupling
layer ``x' = g(x)`` whose Jacobian is triangular (each moving link ``m`` moves by its own
active plaquette, derivative ``D_m = h'(P_m)``; ``A = dx'_m/dx_f`` through the network and the
plaquettes; frozen links ``f`` stay),

    ``a_{l+1} = J^{-T} (a_l - grad_x log|J|)``:
    ``(a_{l+1})_m = c_m = ((a_l)_m - sign d log h'/dP) / D_m``,
    ``(a_{l+1})_f = (a_l)_f - (grad_f log|J| + A^T c)``,

the last bracket one vector-Jacobian product of ``(log|J|, x')`` with ``(1, c)``.
:func:`backward` then sends ``(grad_x S + a_L) / B`` back through the layers to the weights,
adding to ``.grad``.  The cost is one forward pass, one product per layer on its inputs and one
backward pass.  The tests check ``a_L`` against autograd through the inverse flow, and that the
mean of the difference of the two estimators is zero within its errors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dlhmc.flows.coupling import batch_first, batch_last


def forward(flow, z: torch.Tensor, base_score: torch.Tensor | None = None):
    """``x = f(z)`` (batch first, detached), ``log|det dx/dz|`` (detached), the score
    ``grad_x log q(x)`` (batch first) and the tape for :func:`backward`.

    ``base_score`` is ``grad_z log r(z)`` of the base density (default: zero, the Haar prior)."""
    x = batch_last(z.detach())
    score = torch.zeros_like(x) if base_score is None else batch_last(base_score.detach())
    logdet = x.new_zeros(x.shape[-1])
    tape = []
    for layer in flow.layers:
        if layer.empty:
            continue
        x_in = x.requires_grad_(True)
        with torch.enable_grad():
            x_out, log_j, log_d, d_log_d = layer.forward_with_slope(x_in)
            at = layer.at_moving
            c = (at(score[layer.mu]) - layer.sign * d_log_d) / log_d.detach().exp()
            cotangent = torch.zeros_like(x)
            at(cotangent[layer.mu]).copy_(c)
            (product,) = torch.autograd.grad(
                (log_j, x_out), x_in, (torch.ones_like(log_j), cotangent), retain_graph=True
            )
        score = score - product
        at(score[layer.mu]).copy_(c)
        tape.append((layer, x_in, x_out))
        x = x_out.detach()
        logdet = logdet + log_j.detach()
    return batch_first(x), logdet, batch_first(score), tape


def backward(tape, grad_x: torch.Tensor) -> None:
    """Add ``d/dtheta (grad_x . f_theta(z))`` (``grad_x`` batch first, held fixed) to the
    ``.grad`` of the weights of the layers on ``tape``, freeing their graphs."""
    g = batch_last(grad_x.detach())
    for k in range(len(tape) - 1, -1, -1):
        layer, x_in, x_out = tape[k]
        params = [p for p in layer.parameters() if p.requires_grad]
        inputs = params if k == 0 else [*params, x_in]
        grads = torch.autograd.grad(x_out, inputs, g, allow_unused=True)
        for p, gp in zip(params, grads, strict=False):
            if gp is not None:
                p.grad = gp if p.grad is None else p.grad + gp
        if k > 0:
            g = grads[-1]
    tape.clear()


def reverse_kl(
    flow,
    z: torch.Tensor,
    force: Callable[[torch.Tensor], torch.Tensor],
    base_score: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the path gradient of the mean over the batch of ``S(f(z)) + log q(f(z))`` to the
    weights' ``.grad`` (``force``: ``dS/dx``); returns ``x = f(z)`` and ``log|det dx/dz|``,
    detached, for the weights and metrics."""
    x, logdet, score, tape = forward(flow, z, base_score)
    with torch.no_grad():
        grad_x = (force(x) + score) / x.shape[0]
    backward(tape, grad_x)
    return x, logdet
