"""The paper's published figure-3 points ship with the package and load as typed in the paper."""

from __future__ import annotations

from dlhmc.analysis.paper import PAPER_LATTICE, paper_points

# Foreman, Jin, Osborn, arXiv:2105.03418, figure 3 (16x16, N_LF * tau_int of Q_R, seed 003).
PUBLISHED = {
    "HMC": [78, 304, 1.07e3, 7.4e3, 4.6e4, 1.35e5],
    "trained": [2.1, 11.7, 33.6, 61.8, 64.8, 99.2],
}


def test_paper_points_are_the_published_twelve():
    points = paper_points()
    assert list(points.columns) == ["beta", "sampler", "cost"]
    assert len(points) == 12 and PAPER_LATTICE == "16x16"
    for sampler, costs in PUBLISHED.items():
        rows = points[points["sampler"] == sampler].sort_values("beta")
        assert rows["beta"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        assert rows["cost"].tolist() == costs

