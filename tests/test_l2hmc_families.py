"""The families behind one contract: checkpoints keep the key layout they have always had."""

from __future__ import annotations

import pytest
import torch
from l2hmc_helpers import randomize

from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics
from dlhmc.toy.gmm import GaussianMixture

# (theory, config, the prefix the family's weights have always been stored under)
CASES = {
    "u1_dense": (lambda: U1Theory((4, 4), 2.0), dict(nlf=3, hidden=(8,), winding=1), ""),
    "u1_local": (lambda: U1Theory((4, 4), 2.0), dict(nlf=2, hidden=(4,), network="local"),
                 "local."),
    "su3_dense": (lambda: SU3Theory((2, 2, 2, 2), 5.0), dict(nlf=2, hidden=(4,)), ""),
    "su3_local": (lambda: SU3Theory((2, 2, 2, 2), 5.0),
                  dict(nlf=2, hidden=(4,), network="local"), "local."),
    "toy": (lambda: GaussianMixture(), dict(nlf=2, hidden=(8,)), ""),
}


def old_layout(dyn: L2HMCDynamics, prefix: str) -> dict[str, torch.Tensor]:
    """The state dict as checkpoints of the networks' first home stored it: the step sizes,
    then the family's weights under ``prefix`` (dense: ``vnets.*``, ``xnets.*``)."""
    weights = {"log_eps_v": dyn.log_eps_v.detach(), "log_eps_x": dyn.log_eps_x.detach()}
    weights.update({prefix + k: v for k, v in dyn.layers.state_dict().items()})
    return weights


@pytest.mark.parametrize("name", CASES)
def test_checkpoint_with_the_old_key_layout_loads_and_gives_the_same_proposal(name):
    make, kw, prefix = CASES[name]
    theory = make()
    trained = randomize(L2HMCDynamics(theory, L2HMCConfig(**kw)), scale=0.1, seed=1)
    stored = old_layout(trained, prefix)
    assert list(trained.state_dict()) == list(stored)
    if prefix == "":
        assert any(k.startswith("vnets.") for k in stored)
        assert any(k.startswith("xnets.") for k in stored)
    fresh = randomize(L2HMCDynamics(theory, L2HMCConfig(**kw)), scale=0.1, seed=2)
    fresh.load_state_dict(stored)
    x = theory.hot_start(3, torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = trained.propose(x, torch.Generator().manual_seed(5))
        b = fresh.propose(x, torch.Generator().manual_seed(5))
    assert torch.equal(a.x, b.x) and torch.equal(a.sumlogdet, b.sumlogdet)
    assert torch.equal(a.dH, b.dH)
    different = randomize(L2HMCDynamics(theory, L2HMCConfig(**kw)), scale=0.1, seed=2)
    with torch.no_grad():
        c = different.propose(x, torch.Generator().manual_seed(5))
    assert not torch.equal(a.sumlogdet, c.sumlogdet) or not torch.equal(a.x, c.x)


def test_a_key_outside_the_layout_is_refused():
    theory = U1Theory((4, 4), 2.0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(4,)))
    weights = dyn.state_dict()
    weights["layers.vnets.0.net.extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        dyn.load_state_dict(weights)
