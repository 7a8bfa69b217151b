"""Training the learned samplers, split by the data each part owns.

``loop``: what every trained sampler shares (optimizer, generators, checkpoints, resume, MPI
averaging, metrics and events, the loop itself); ``trainer``: the L2HMC trainer and ``train``,
which builds the trainer of a run's ``--sampler`` (:data:`dlhmc.trained_samplers.SAMPLERS`) from
resolved settings; ``flow_trainer``: the reverse-KL training of a normalizing flow; ``loss``: the
L2HMC loss and the Metropolis update of its chain buffer; ``schedules``: learning-rate factor and
annealing as pure functions of the step; ``rundir``: the run directory (metrics.csv, config.yaml,
hash logs, resume and warm-start checks).
"""
