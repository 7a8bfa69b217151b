"""Training an L2HMC sampler, split by the data each part owns.

``loss``: the loss and the Metropolis update of the chain buffer; ``schedules``: learning-rate
factor and annealing as pure functions of the step; ``rundir``: the run directory (metrics.csv,
config.yaml, hash logs, resume and warm-start checks); ``trainer``: the ``Trainer`` of one rank and
``train``, which builds the theory, sampler and schedule from resolved settings.
"""
