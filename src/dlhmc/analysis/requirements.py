"""What the analysis needs of a chain set, in a torch-free module: the workflow's config check
(:mod:`dlhmc.config_check`) refuses runs that could not be analyzed, before planning them."""

# Fewer trajectories per chain cannot show an autocorrelation (pyerrors needs 5 as well).
MIN_TRAJ = 10
