"""The families behind one contract: the registry, the settings each family owns, and the
migration of format-1 checkpoints (each family's weights under its own prefix)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from l2hmc_helpers import randomize

from dlhmc import checkpoint as ckpt
from dlhmc.families import FAMILIES, families, family
from dlhmc.families.adapters import ADAPTERS, adapter_for
from dlhmc.families.contract import FamilyLayers, LayerFamily
from dlhmc.groups import GROUPS
from dlhmc.lattice import make_theory
from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics, check_network
from dlhmc.theory import LinkAdapter
from dlhmc.toy.gmm import GaussianMixture

# (theory, config, the prefix format 1 stored the family's weights under)
CASES = {
    "u1_dense": (lambda: U1Theory((4, 4), 2.0), dict(nlf=3, hidden=(8,), winding=1), ""),
    "u1_local": (lambda: U1Theory((4, 4), 2.0), dict(nlf=2, hidden=(4,), network="local"),
                 "local."),
    "su3_dense": (lambda: SU3Theory((2, 2, 2, 2), 5.0), dict(nlf=2, hidden=(4,)), ""),
    "su3_local": (lambda: SU3Theory((2, 2, 2, 2), 5.0),
                  dict(nlf=2, hidden=(4,), network="local"), "local."),
    "toy": (lambda: GaussianMixture(), dict(nlf=2, hidden=(8,)), ""),
}


def format1(dyn: L2HMCDynamics, prefix: str, network: bool = True) -> dict:
    """A checkpoint of format 1 for ``dyn``: the step sizes, then the family's weights under
    ``prefix`` (dense: ``vnets.*``, ``xnets.*`` at the top), with or without ``network``."""
    weights = {"log_eps_v": dyn.log_eps_v.detach(), "log_eps_x": dyn.log_eps_x.detach()}
    weights.update({prefix + k: v for k, v in dyn.layers.state_dict().items()})
    l2hmc = dyn.config.to_dict()
    if not network:
        del l2hmc["network"]
    return {"format": 1, "l2hmc": l2hmc, "model": weights}


@pytest.mark.parametrize("name", CASES)
def test_format1_checkpoint_migrates_and_gives_the_same_proposal(name):
    make, kw, prefix = CASES[name]
    theory = make()
    trained = randomize(L2HMCDynamics(theory, L2HMCConfig(**kw)), scale=0.1, seed=1)
    old = format1(trained, prefix, network="network" in kw)
    if prefix == "":
        assert any(k.startswith("vnets.") for k in old["model"])
    state = ckpt.migrate(old)
    assert state["format"] == ckpt.FORMAT
    assert list(state["model"]) == list(trained.state_dict())
    assert L2HMCConfig.from_dict(state["l2hmc"]) == trained.config
    fresh = randomize(L2HMCDynamics(theory, L2HMCConfig(**kw)), scale=0.1, seed=2)
    fresh.load_state_dict(state["model"])
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


def test_format1_key_of_another_family_is_refused():
    dyn = L2HMCDynamics(U1Theory((4, 4), 2.0), L2HMCConfig(nlf=2, hidden=(4,), network="local"))
    old = format1(dyn, "")  # local weights stored the dense way
    with pytest.raises(ValueError, match="does not belong to network local"):
        ckpt.migrate(old)


def test_a_key_outside_the_layout_is_refused():
    theory = U1Theory((4, 4), 2.0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(4,)))
    weights = dyn.state_dict()
    weights["layers.vnets.0.net.extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        dyn.load_state_dict(weights)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_keeps_the_contract(name):
    fam = family(name)
    assert isinstance(fam, LayerFamily) and fam.name == name
    assert fam.groups <= set(ADAPTERS)
    defaults = {f.name for f in dataclasses.fields(L2HMCConfig)}
    assert set(fam.options) <= defaults
    for group in fam.groups:
        if group in GROUPS:  # a small even torus of every group the family moves
            dims = GROUPS[group].dims
            theory = make_theory(group, (4,) * dims if dims <= 2 else (2,) * dims, 2.0)
        else:
            theory = GaussianMixture()
        config = L2HMCConfig(nlf=1, hidden=(4,), network=name)
        check_network(theory, config)
        layers = L2HMCDynamics(theory, config).layers
        assert layers.n_sub_updates >= 1
        assert isinstance(layers, torch.nn.Module) and isinstance(layers, FamilyLayers)


def test_options_belong_to_one_family():
    owners = [option for fam in families() for option in fam.options]
    assert len(owners) == len(set(owners))


@pytest.mark.parametrize("setting", [dict(mask="random"), dict(conv_channels=(4,)),
                                     dict(mask_seed=3)])
def test_a_setting_of_another_family_is_refused(setting):
    with pytest.raises(ValueError, match=f"{next(iter(setting))}: a setting of network dense"):
        L2HMCConfig(network="local", **setting)
    L2HMCConfig(network="dense", **setting)


def test_local_period_belongs_to_local():
    with pytest.raises(ValueError, match="local_period: a setting of network local"):
        L2HMCConfig(network="dense", local_period=2)
    with pytest.raises(ValueError, match="local_period: expected one of"):
        L2HMCConfig(network="local", local_period=3)


def test_unknown_family_and_unsupported_group_name_the_setting():
    with pytest.raises(ValueError, match=f"network: expected one of {', '.join(FAMILIES)}"):
        L2HMCConfig(network="flow-ish")
    with pytest.raises(ValueError, match="network: local is not yet implemented for GMM"):
        check_network(GaussianMixture(), L2HMCConfig(network="local"))


@pytest.mark.parametrize("make", [lambda: U1Theory((4, 4), 2.0),
                                  lambda: SU3Theory((2, 2, 2, 2), 5.0), GaussianMixture])
def test_each_theory_has_its_adapter(make):
    import math

    theory = make()
    adapter = adapter_for(theory)
    assert isinstance(adapter, LinkAdapter)
    # The adapter's units times their components are exactly the momentum coordinates.
    assert adapter.n_units * adapter.components == math.prod(theory.momentum_shape(1))


def test_a_theory_without_adapter_is_refused():
    class Other(GaussianMixture):
        name = "Other"

    with pytest.raises(ValueError, match="group: no learned sampler moves Other"):
        adapter_for(Other())


def test_the_registry_is_torch_free():
    """The workflow and the config checks read the family names while planning, without torch."""
    import subprocess
    import sys

    code = ("import sys; from dlhmc.families import NETWORKS; "
            "assert {'dense', 'local'} <= set(NETWORKS); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("hidden", [(4,), (16, 8)])
def test_weight_bound_is_a_lower_bound_of_the_built_model(name, hidden):
    """The memory check refuses absurd widths from this bound, before building anything: it
    must never exceed the real count, and must grow with the real input widths."""
    fam = family(name)
    for group in sorted(fam.groups & set(GROUPS)):
        dims = GROUPS[group].dims
        theory = make_theory(group, (4,) * dims if dims <= 2 else (2,) * dims, 2.0)
        config = L2HMCConfig(nlf=2, hidden=hidden, network=name)
        built = sum(p.numel() for p in L2HMCDynamics(theory, config).parameters())
        bound = fam.weight_bound(theory, config)
        assert built / 10 < bound <= built, (group, built, bound)


def test_weight_bound_of_a_huge_width_exceeds_any_memory():
    """Issue 21 A: ``--hidden 10000000`` on 8x8 passed a check that assumed one input."""
    theory = U1Theory((8, 8), 2.0)
    config = L2HMCConfig(nlf=4, hidden=(10_000_000,))
    assert 8 * family("dense").weight_bound(theory, config) > 24 * 2**30
