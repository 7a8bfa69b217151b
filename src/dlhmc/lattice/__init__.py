"""Lattice gauge theories, looked up by the name users give on the command line and in configs."""

from __future__ import annotations

import importlib

import torch

from dlhmc.groups import GROUPS
from dlhmc.theory import GaugeTheory

# name -> "module:Class" (the groups' registry, dlhmc.groups.GROUPS); imported on demand so
# that U(1) users never load SU(3) code.
THEORIES = {name: facts.theory for name, facts in GROUPS.items()}

PRECISIONS = ("double", "single")


def theory_class(group: str):
    try:
        module, cls = THEORIES[group].split(":")
    except KeyError:
        known = ", ".join(THEORIES)
        raise ValueError(f"unknown gauge group {group!r} (expected one of {known})") from None
    return getattr(importlib.import_module(module), cls)


def make_theory(
    group: str,
    lattice: tuple[int, ...] | list[int],
    beta: float,
    precision: str = "double",
    device: torch.device | str = "cpu",
) -> GaugeTheory:
    """Build the theory object; raises ``ValueError`` naming what is wrong with the request."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})"
        )
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    cls = theory_class(group)
    cls.check_lattice(tuple(lattice))
    return cls(
        tuple(int(n) for n in lattice),
        float(beta),
        precision=precision,
        device=torch.device(device),
    )
