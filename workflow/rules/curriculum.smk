"""Volume curriculum (a learner with train.lattice and train.finetune_steps > 0): the models are
trained on the small volume train.lattice along the ladder, as without the curriculum, and then
fine-tuned on every other volume of `lattices` by the train rule itself (its job on that volume
starts from the fine-tuned model of the beta below, the first beta from the small volume's
model, or, with finetune_from: train_lattice, from the small volume's model of the same beta;
finetune_steps steps at finetune_lr, see dlhmc.plan.jobs.Plan.train_options). The infer rule
samples each volume with its fine-tuned model. One more file per fine-tuned volume and beta:

  transfer/volume.nc   the small volume's model of this beta, sampled here as it is

so the report shows what fine-tuning bought (role transfer_volume, dlhmc analyze
--volume-transfer). Both rules are the infer rule with another model and path.
"""


use rule infer as volume_transfer_infer with:
    input:
        checkpoint=PLAN.volume_transfer_checkpoint,
    output:
        "results/{exp}/{lattice}/beta{beta}/transfer/volume.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/transfer_volume.log",
    params:
        lattice=PLAN.volume_transfer_lattice_option,


use rule volume_transfer_infer as volume_transfer_infer_variant with:
    output:
        "results/{exp}/{lattice}/beta{beta}/learned/{variant}/transfer/volume.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/{variant}/transfer_volume.log",
