"""The local family's mask rule (torch-free, for planning) agrees with the masks themselves, and
the plan refuses a volume a local model's masks do not fit (issue 21 H)."""

from __future__ import annotations

import itertools

import pytest
from test_plan import experiment

from dlhmc.families.local_masks import mask_problem
from dlhmc.families.local_su3 import parity_masks
from dlhmc.families.local_u1 import link_masks
from dlhmc.plan.experiments import check_experiment


def geometric_problem(build, *args) -> bool:
    try:
        build(*args)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("period", [2, 4])
def test_u1_rule_is_the_masks_own(period):
    for shape in itertools.product(range(2, 14), repeat=2):
        rule = mask_problem("U1", shape, period) is not None
        assert rule == geometric_problem(link_masks, shape, period), (shape, period)


def test_su3_rule_is_the_masks_own():
    for shape in itertools.product(range(2, 7), repeat=4):
        rule = mask_problem("SU3", shape, 4) is not None
        assert rule == geometric_problem(parity_masks, shape), shape


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (dict(lattices=[[5, 5]], train={"network": "local"}), "experiments.tiny.lattices[0]"),
        (dict(lattices=[[4, 4], [9, 8]], train={"network": "local", "local_period": 2}),
         "experiments.tiny.lattices[1]"),
        (dict(lattices=[[8, 8]], train={"network": "local", "lattice": [5, 5]}),
         "experiments.tiny.train.lattice"),
        (dict(lattices=[[5, 4]], variants={"loc": {"network": "local"}}),
         "experiments.tiny.lattices[0]"),
    ],
)
def test_a_volume_the_local_masks_do_not_fit_is_refused_while_planning(changes, named):
    problems = check_experiment("tiny", experiment(**changes))
    assert any(p.startswith(f"{named}: the local link masks") for p in problems), problems


@pytest.mark.parametrize(
    "changes",
    [dict(lattices=[[5, 5]]), dict(lattices=[[6, 6]], train={"network": "local"}),
     dict(lattices=[[6, 6]], train={"network": "local", "local_period": 2})],
)
def test_volumes_that_fit_pass(changes):
    assert not [p for p in check_experiment("tiny", experiment(**changes)) if "masks" in p]


def test_instanton_hits_beyond_the_bound_are_refused_while_planning():
    """Issue 21 M, workflow side: the bound of dlhmc hmc --instanton-hits, checked by the plan."""
    from dlhmc.groups import MAX_INSTANTON_HITS

    exp = experiment(hmc={"instanton_hits": [0, MAX_INSTANTON_HITS + 1]})
    problems = check_experiment("tiny", exp)
    assert any(p.startswith("experiments.tiny.hmc.instanton_hits: expected at most") for p in
               problems), problems
    assert not check_experiment("tiny", experiment(hmc={"instanton_hits": [0, 10]}))
