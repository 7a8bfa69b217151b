"""Beta transfer (experiment key beta_transfer): the paper's claim that a model trained at a smaller
beta needs only minimal retraining at a larger one, measured at every beta of the ladder but the
first, on every volume, next to the ladder's own model:

  transfer/none.nc        the model of the beta below, sampled at this beta as it is;
  transfer/model/         that model retrained at this beta for beta_transfer * train.steps steps;
  transfer/retrained.nc   the retrained model sampled at this beta.

Both rules are the ladder's train and infer rules (same resumable training, same infer settings
and seed) with other paths and options, so they cannot drift apart; their input and option
functions are the transfer_* methods of dlhmc.plan.jobs.Plan.
"""


use rule train as transfer_train with:
    input:
        init=PLAN.transfer_init,
    output:
        checkpoint="results/{exp}/{lattice}/beta{beta}/transfer/model/checkpoint.pt",
        metrics="results/{exp}/{lattice}/beta{beta}/transfer/model/metrics.csv",
        config="results/{exp}/{lattice}/beta{beta}/transfer/model/config.yaml",
    log:
        "logs/{exp}/{lattice}/beta{beta}/transfer_train.log",
    params:
        work="results/{exp}/{lattice}/beta{beta}/transfer/train_work",
        options=PLAN.transfer_train_options,


use rule infer as transfer_infer with:
    input:
        checkpoint=PLAN.transfer_checkpoint,
    output:
        "results/{exp}/{lattice}/beta{beta}/transfer/{stage}.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/transfer_{stage}.log",
    params:
        options=PLAN.transfer_infer_options,
        lattice=PLAN.transfer_lattice_option,
