"""Which lattices the ``local`` family's link masks fit, as a rule free of torch.

The workflow plans with it (a config whose local model would meet a volume its masks do not
fit must fail while planning, naming the key, not in the first training job hours later), and
the layers check the same rule geometrically when they build their masks
(``tests/test_local_masks.py`` checks that both agree on every extent).

Why these rules: a U(1) sub-update moves the links of direction ``mu`` whose coordinate across
``mu`` is ``o mod p``; two moving links that are neighbours across ``mu`` would share their
active plaquette, which happens on the torus exactly when the extent across is ``1 mod p``
(the last column wraps onto the first).  SU(3) moves the links at sites of one parity, so a
staple through ``n + nu`` must reach the other parity: every extent even.
"""

from __future__ import annotations


def mask_problem(group: str, lattice, period: int) -> str | None:
    """What keeps the local masks of ``group`` (U(1) ``period``) off ``lattice``, or ``None``."""
    lattice = tuple(int(n) for n in lattice)
    if group == "SU3":
        if any(n % 2 for n in lattice):
            return (f"network local for SU3 needs even extents (checkerboard masks), "
                    f"got lattice {lattice}")
        return None
    if any(n % period == 1 and n > 1 for n in lattice):
        need = "even extents" if period == 2 else "extents other than 4k + 1 (k >= 1)"
        return f"the local link masks of period {period} need {need}, got {lattice}"
    return None
