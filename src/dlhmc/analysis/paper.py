"""The published numbers the report puts next to ours (Foreman, Jin, Osborn, arXiv:2105.03418).

Shipped as package data so that figures can overlay the paper's points without a network
connection or a copy of the paper; the file's header comment names the figure and observable.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

FIG3_LATTICE = (16, 16)


def paper_points() -> pd.DataFrame:
    """Figure 3 of the paper on the ``16x16`` lattice: columns ``beta``, ``sampler``
    (``hmc`` or ``l2hmc``) and ``cost`` (``N_LF * tau_int`` of ``Q_R``), one row per point."""
    source = resources.files("dlhmc.analysis") / "data" / "paper_fig3.csv"
    with source.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, comment="#", dtype={"beta": float, "sampler": str,
                                                       "cost": float})
