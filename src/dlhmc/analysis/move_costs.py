"""Leapfrog-step equivalents of the moves that are not leapfrog steps: a fixed count, not a time.

``N_LF tau_int`` counts a sampler's work in leapfrog steps, that is in force evaluations (the
integrator's ``force_evaluations`` per trajectory: ``N_LF`` for the leapfrog, ``2 N_LF`` for
Omelyan); the drifts and kicks between them are not counted. A move that is not a leapfrog step
is counted by the same rule: the force evaluations that its operations on the lattice amount to,
stated here once per kind of move, never its measured time. A time depends on the machine, its
load and the per-call overhead of small kernels: with instanton hits charged at their measured
time, identical winding-HMC chains of ``configs/paper_cpu.yaml`` cost 31.4 and 20.4 leapfrog
steps at beta 2 on two runs. The real time of every move stays in the seconds columns, from the
chain file's ``traj_per_second`` (measured over whole trajectories, moves included).

The rule for 2D U(1). A force evaluation computes the angle of each of the ``V`` plaquettes
from its 4 links and its sine (``lattice.u1.force``), then two differences per link. An
instanton hit computes ``dS`` from the ``P`` plaquettes of its patch alone, each an angle of 4
links and a sine (``samplers.instanton._action_change``), then writes the ``P - 1`` links its
field changes. So one hit is ``P / V`` force evaluations, its link writes left out as the
leapfrog step's drifts and kicks are: ``W^2 / V`` for a ``W x W`` patch, 1 for the delocalized
instanton (``W = 0``, ``P = V``). A trajectory after which a hit was accepted recomputes the
cached force: one more force evaluation.

Measured once, for comparison (``benchmarks/instanton_hit_cost.py``, one thread, double, batch
16, on the shared 2-core machine): on 256x256, where array work dominates, a delocalized hit
takes 1.6-1.8 leapfrog steps and a 128x128 hit 0.9-1.0 (rule: 1 and 0.25): the present
implementation spends 2-4 times a force evaluation's time per plaquette (gathers and scatters
through index tensors). On 16x16 every hit takes 1.7-3.3 leapfrog steps whatever its size
(rule for ``W = 4``: 0.06): one hit is a dozen small kernel calls, whose overhead no count of
operations sees. The seconds columns carry both.

The rule for a flow of ``K`` coupling layers (issue 19), by the convention the comparison
already applies to L2HMC, after the paper: one learned layer counts as one leapfrog step,
whatever its networks cost (that cost shows in the seconds columns). A coupling layer moves a
set of links by a network of their frozen loops, as an L2HMC link update does, so it is one
learned layer. Hence:

- ``flow_proposal``, a forward pass through the flow, ``x = f(z)`` with ``log|J|``: ``K``.
  Independence Metropolis makes one per trajectory (its proposal); flow HMC one at the end of
  each trajectory (``S_F`` for its Metropolis test and the recorded links ``f(z)``). The chain
  file says how many (``flow_passes``). The action of the proposal for the Metropolis test is
  not counted, as HMC's Hamiltonian at the end of a trajectory is not.
- ``flow_force``, the force ``dS_F/dz`` of flow HMC: ``2 K + 1``. Autograd runs the ``K``
  layers forward (``f(z)`` and ``log|J|`` on the graph), takes the gauge force of ``S`` at
  ``f(z)`` (the plaquette sines of one force evaluation: 1) and runs back through the same
  ``K`` layers (one reverse pass visits each layer once: counted as a layer, as the forward
  pass; its real cost, about twice a forward pass's arithmetic, is in the seconds). The chain
  file says how many per trajectory (``flow_forces``: one per integrator force evaluation).

So a flow-HMC trajectory of ``N`` leapfrog steps costs ``N (2 K + 1) + K`` and a flow-IMH
trajectory ``K``: at ``K = 16``, ``N = 10``, 346 and 16 leapfrog steps. A flow has no integrator
of its own (``Kind.integrates`` false), so nothing else of its file is counted.

Replica exchange (``dlhmc trex``, sampler ``pt`` or ``trex``): each chain file is one rung of
a ladder of ``n`` couplings whose every rung was run to make it, so its ``force_evaluations`` are
the ladder's (``n`` times the HMC kernel's, counted as integrator steps) and its moves are the
ladder's too. A T-REX swap of a pair passes ``U_k`` through the bridge and ``U_{k+1}`` through
its inverse: two ``flow_proposal`` moves of ``K`` layers each, stated per ladder trajectory in
``flow_passes`` (the inverse is counted as a layer pass, as the forward; its bisection's real
cost is in the seconds). A swap that is accepted brings each of its two rungs a configuration
whose force at the new coupling the next trajectory's first kick needs:
``swap_force_refresh``, one force evaluation each, ``force_refreshes`` per ladder trajectory
(the file's mean over ladders). So a ladder trajectory costs ``n N_LF + flow_passes K +
force_refreshes``; plain parallel tempering has ``flow_passes`` 0.

A new move is one line of :data:`MOVES` with its own derivation, in the same unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dlhmc.lattice.u1_instanton import patch_extents

if TYPE_CHECKING:
    from dlhmc.analysis.chains import ChainSet


@dataclass(frozen=True)
class Move:
    """A kind of move: ``count`` per trajectory of a chain file and ``lf_each``, the leapfrog
    steps (force evaluations) one of them is counted as."""

    count: Callable[[ChainSet], float]
    lf_each: Callable[[ChainSet], float]


def winding_hit_lf(lattice: tuple[int, int], size: int) -> float:
    """One instanton hit of 2D U(1) is ``P / V`` force evaluations, ``P`` its patch plaquettes
    (``W^2``, or ``V`` for the delocalized instanton ``W = 0``), ``V`` the lattice's."""
    return math.prod(patch_extents(lattice, size)) / math.prod(lattice)


def _hits(chains: ChainSet) -> float:
    return float(chains.instanton_hits)


def _refreshes(chains: ChainSet) -> float:
    """Fraction of trajectories after which a hit was accepted (0 for a file without the
    record: such old files undercount by at most one force evaluation per trajectory)."""
    if chains.instanton_hits == 0 or "instanton_accepted" not in chains.data.variables:
        return 0.0
    return float(np.mean(chains.values("instanton_accepted") > 0))


def _per_traj(name: str) -> Callable[[ChainSet], float]:
    """The count a chain file states as attribute ``name`` (0 where absent: not this kind)."""
    return lambda chains: float(chains.attr(name, 0))


def _flow_layers(chains: ChainSet) -> float:
    """``K`` of a flow's chain file (``ValueError`` naming the file where it is missing)."""
    layers = chains.attr("flow_layers")
    if layers is None:
        raise ValueError(f"{chains.path}: missing attribute 'flow_layers' (a flow's passes and "
                         "forces are counted in its layers)")
    return float(layers)


# kind of move -> (moves per trajectory, leapfrog steps each); the module docstring derives each.
MOVES = {
    "winding_hit": Move(
        _hits, lambda chains: winding_hit_lf(chains.lattice, chains.instanton_size)
    ),
    "force_refresh": Move(_refreshes, lambda chains: 1.0),
    "flow_proposal": Move(_per_traj("flow_passes"), _flow_layers),
    "flow_force": Move(_per_traj("flow_forces"), lambda chains: 2 * _flow_layers(chains) + 1),
    "swap_force_refresh": Move(_per_traj("force_refreshes"), lambda chains: 1.0),
}


def moves_lf_per_traj(chains: ChainSet) -> float:
    """Leapfrog-step equivalents per trajectory of every move of :data:`MOVES` the file has."""
    total = 0.0
    for move in MOVES.values():
        count = move.count(chains)
        if count:
            total += count * move.lf_each(chains)
    return total
