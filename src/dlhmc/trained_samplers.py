"""What ``dlhmc train --sampler NAME`` trains: one registry by name, free of torch.

Each entry names the module that builds and checks its trainer (imported on demand, so the
settings, the config check and the workflow read the names without torch), the training settings
it reads (every sampler that does not list one must leave it at its default, so that no
setting is silently ignored; several samplers may list the same one, as flow and bridge list
``flow_layers``), the gauge groups it can train and where its checkpoint keeps its
architecture.  A new trained sampler is one module with ``check``, ``build``, ``weight_bound``
and ``depth`` (see :mod:`dlhmc.training.trainer`) plus one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainedSampler:
    name: str
    # ``check(theory, settings)``, ``build(settings, options, ctx)``, ``weight_bound(theory,
    # settings)`` and ``depth(settings)`` (layers holding activations, for the memory check).
    module: str
    options: tuple[str, ...]
    groups: tuple[str, ...] | None  # None: every group
    checkpoint_key: str  # the checkpoint entry holding the architecture
    keeps_chains: bool  # whether the checkpoint holds a chain buffer (Markov-chain training)

    def trainer_module(self):
        return importlib.import_module(self.module)


SAMPLERS = {
    "l2hmc": TrainedSampler(
        "l2hmc", "dlhmc.training.trainer",
        options=("nlf", "eps_init", "network", "mask", "mask_seed", "conv_channels", "winding",
                 "local_conv", "plaq_weight", "therm_hmc"),
        groups=None, checkpoint_key="l2hmc", keeps_chains=True,
    ),
    "flow": TrainedSampler(
        "flow", "dlhmc.training.flow_trainer", options=("flow_layers", "flow_gradient"),
        groups=("U1",), checkpoint_key="flow", keeps_chains=False,
    ),
    # A flow between two couplings, trained on stored configurations: no sampler of its own
    # (dlhmc infer refuses it); dlhmc derivative and dlhmc trex load it (load_bridge).
    "bridge": TrainedSampler(
        "bridge", "dlhmc.training.bridge_trainer", options=("flow_layers", "beta_from", "data"),
        groups=("U1",), checkpoint_key="flow", keeps_chains=False,
    ),
}  # fmt: skip


def trained_sampler(name: str) -> TrainedSampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {name!r}") from None
