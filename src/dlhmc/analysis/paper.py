"""The published points of the L2HMC paper, drawn next to ours in figure 1.

Foreman, Jin, Osborn, "Deep learning Hamiltonian Monte Carlo", arXiv:2105.03418, figure 3:
``N_LF * tau_int`` of ``Q_R`` against beta on a 16x16 lattice, for generic HMC and the trained
sampler. The numbers live in ``data/paper_fig3.csv`` with their source in its header.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

# The paper's lattice: its points are comparable with ours only on this one.
PAPER_LATTICE = "16x16"
PAPER_SOURCE = "Foreman, Jin, Osborn, arXiv:2105.03418, fig. 3"


def paper_points() -> pd.DataFrame:
    """Columns ``beta``, ``sampler`` (``HMC`` or ``trained``), ``cost`` (``N_LF tau_int(Q_R)``)."""
    with resources.files("dlhmc.analysis").joinpath("data/paper_fig3.csv").open() as f:
        return pd.read_csv(f, comment="#")
