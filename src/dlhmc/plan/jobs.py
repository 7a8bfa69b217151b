"""The input and option functions of the rules, and the files each experiment ends in.

Every method that takes ``wildcards`` reads the fields of a result path by name: ``exp``,
``lattice``, ``beta`` and, by rule, ``variant``, ``point`` or ``stage`` (Snakemake's
``Wildcards``, or any object with those attributes).  A path no rule of the config makes (a beta
outside the ladder, say) raises ``ValueError`` naming the config key, instead of planning a job
that would fail or train something nobody asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dlhmc.analysis.registry import report_files
from dlhmc.plan.bridge_jobs import BridgeJobs
from dlhmc.plan.experiments import (
    finetune_from,
    finetune_train_settings,
    finetunes,
    is_flow,
    learner_key,
    learners,
    train_shape,
    transfer_train_settings,
)
from dlhmc.plan.hmc_grid import hmc_points
from dlhmc.plan.inference import infer_settings
from dlhmc.plan.options import cli_options, lattice_option  # noqa: F401 (the rules' helpers)
from dlhmc.plan.paths import (
    FLOW_SAMPLERS,
    TRANSFER_STAGES,
    beta_dir,
    beta_label,
    flow_chain,
    lattice_label,
    lattice_shape,
    learned_dir,
    model_files,
    transfer_chain,
    volume_transfer_chain,
)
from dlhmc.plan.train_runs import settings_at

# Training settings the workflow reads itself: how a job is launched, where its model trains,
# how the volume curriculum fine-tunes it and how a flow's flow-HMC chains are sampled.
# A learner's overrides are resolved per beta (dlhmc.plan.train_runs.settings_at).
NOT_TRAIN_OPTIONS = ("ranks", "lattice", "finetune_steps", "finetune_lr", "finetune_from",
                     "flow_hmc", "overrides")  # fmt: skip
# Infer settings of L2HMC runs only: a flow's chains have no layers to record.
L2HMC_INFER_OPTIONS = ("layer_samples",)


class Plan(BridgeJobs):
    """The jobs of the validated experiments (:func:`dlhmc.plan.experiments.load_experiments`)."""

    def __init__(self, experiments: Mapping[str, dict]):
        self.experiments = experiments

    # ---- one job ------------------------------------------------------------------------------

    def experiment(self, wildcards) -> dict:
        if wildcards.exp not in self.experiments:
            raise ValueError(
                f"experiments.{wildcards.exp}: no such experiment in the config "
                f"(have {', '.join(self.experiments)})"
            )
        return self.experiments[wildcards.exp]

    def variant(self, wildcards) -> str | None:
        """The variant a train or infer job belongs to (None: the ladder's own model)."""
        variant = getattr(wildcards, "variant", None)
        if variant is not None and variant not in self.experiment(wildcards).get("variants", {}):
            raise ValueError(
                f"experiments.{wildcards.exp}.variants: no variant {variant!r} in the config"
            )
        return variant

    def train_settings(self, wildcards) -> dict:
        """Training settings of the job's learner: `train`, or a variant merged into it."""
        return learners(self.experiment(wildcards))[learner_key(self.variant(wildcards))]

    def ladder(self, wildcards) -> list[str]:
        """Beta labels of the experiment's ladder; fails clearly for a beta outside the config."""
        labels = [beta_label(b) for b in self.experiment(wildcards)["betas"]]
        if wildcards.beta not in labels:
            raise ValueError(
                f"experiments.{wildcards.exp}.betas: beta {wildcards.beta} is not in the ladder "
                f"{labels}"
            )
        return labels

    def beta_below(self, wildcards) -> str | None:
        """Label of the beta below the job's on the ladder; None for the first."""
        labels = self.ladder(wildcards)
        k = labels.index(wildcards.beta)
        return labels[k - 1] if k else None

    def train_volume(self, wildcards) -> str:
        """Volume label of the learner's own training: its lattice when it names one, else the
        job's volume."""
        shape = lattice_shape(wildcards.lattice)
        return lattice_label(train_shape(self.train_settings(wildcards), shape))

    def finetuning(self, wildcards) -> bool:
        """Whether the job's model is fine-tuned on its volume (the volume curriculum) rather
        than trained there (or on train.lattice) from the start."""
        return (
            finetunes(self.train_settings(wildcards))
            and self.train_volume(wildcards) != wildcards.lattice
        )

    def train_init(self, wildcards) -> list[str]:
        """Model of the previous beta of the ladder (same volume and learner); the first beta
        starts fresh, or, when fine-tuned, from the model of train.lattice at that beta. So a
        fine-tuned model's --init chain is its volume's ladder below it, then the one model of
        train.lattice at the first beta, and its training seconds count each run once. With
        ``finetune_from: train_lattice`` every fine-tuning run starts from the model of
        train.lattice at its own beta (its --init chain: that volume's ladder up to this beta)."""
        exp, variant = wildcards.exp, self.variant(wildcards)
        if wildcards.lattice not in self.train_volumes(exp, variant):
            raise ValueError(
                f"experiments.{exp}.{learner_key(variant)}.lattice: no model is trained on "
                f"{wildcards.lattice} (trained on {', '.join(self.train_volumes(exp, variant))})"
            )
        below = self.beta_below(wildcards)
        from_small = finetune_from(self.train_settings(wildcards)) == "train_lattice"
        if below is not None and not (from_small and self.finetuning(wildcards)):
            return model_files(exp, wildcards.lattice, below, variant)
        if self.finetuning(wildcards):
            return model_files(exp, self.train_volume(wildcards), wildcards.beta, variant)
        return []

    def train_options(self, wildcards) -> str:
        """All training settings of the job's learner at its beta (its overrides applied), as
        `dlhmc train` options; a fine-tuning job's steps and learning rate are finetune_steps and
        finetune_lr."""
        self.ladder(wildcards)
        settings = settings_at(self.train_settings(wildcards), wildcards.beta)
        if self.finetuning(wildcards):
            settings = finetune_train_settings(settings)
        return cli_options(settings, skip=NOT_TRAIN_OPTIONS)

    def infer_source(self, wildcards) -> str:
        """Volume label the job's model was trained on: the learner's lattice when it names one
        (a local model transferred to this volume), this volume when trained or fine-tuned here."""
        return wildcards.lattice if self.finetuning(wildcards) else self.train_volume(wildcards)

    def infer_checkpoint(self, wildcards) -> str:
        """The model an L2HMC inference job (l2hmc.nc) samples with."""
        if is_flow(self.train_settings(wildcards)):
            raise ValueError(
                f"experiments.{wildcards.exp}.{learner_key(self.variant(wildcards))}.sampler: a "
                f"flow, whose chains are {' and '.join(f'{s}.nc' for s in FLOW_SAMPLERS)}, not "
                "l2hmc.nc"
            )
        return self._model_checkpoint(wildcards)

    def _model_checkpoint(self, wildcards) -> str:
        trained = self.infer_source(wildcards)
        where = learned_dir(wildcards.exp, trained, wildcards.beta, self.variant(wildcards))
        return f"{where}/model/checkpoint.pt"

    def infer_lattice_option(self, wildcards) -> str:
        """`--lattice ...` when the model was trained on another volume, else nothing (the
        command line of an untransferred job names no lattice: the checkpoint's is used)."""
        if self.infer_source(wildcards) == wildcards.lattice:
            return ""
        return f"--lattice {lattice_option(wildcards)}"

    def infer_options(self, wildcards) -> str:
        """The infer settings of the job's learner and beta (infer.overrides applied); a flow's
        without those of L2HMC runs only."""
        self.ladder(wildcards)
        skip = L2HMC_INFER_OPTIONS if is_flow(self.train_settings(wildcards)) else ()
        learner = learner_key(self.variant(wildcards))
        settings = infer_settings(self.experiment(wildcards), learner, wildcards.beta)
        return cli_options(settings, skip=skip)

    # ---- a flow learner's two samplers (infer.smk, rule infer_flow) ----------------------------

    def flow_checkpoint(self, wildcards) -> str:
        """The flow a flow-sampler job (``wildcards.flow_sampler``: flow_imh or flow_hmc)
        samples with; a learner that is no flow, or flow_hmc chains of a flow without flow_hmc
        settings, are refused naming the key."""
        key = f"experiments.{wildcards.exp}.{learner_key(self.variant(wildcards))}"
        train = self.train_settings(wildcards)
        if not is_flow(train):
            raise ValueError(
                f"{key}.sampler: not a flow, so it has no {wildcards.flow_sampler}.nc chains"
            )
        if wildcards.flow_sampler == "flow_hmc" and "flow_hmc" not in train:
            raise ValueError(f"{key}.flow_hmc: not set, so the flow has no flow-HMC chains")
        return self._model_checkpoint(wildcards)

    def flow_infer_options(self, wildcards) -> str:
        """The infer settings, and for flow HMC ``--flow-hmc`` with the learner's nlf and eps."""
        options = self.infer_options(wildcards)
        if wildcards.flow_sampler != "flow_hmc":
            return options
        hmc = self.train_settings(wildcards)["flow_hmc"]
        return f"{options} --flow-hmc --nlf {hmc['nlf']} --eps {hmc['eps']}"

    # ---- the beta transfer (transfer.smk) -----------------------------------------------------

    def transfer_source(self, wildcards) -> tuple[str, str]:
        """Training volume and beta label of the model a transfer starts from: the beta below."""
        exp = self.experiment(wildcards)
        if "beta_transfer" not in exp:
            raise ValueError(
                f"experiments.{wildcards.exp}.beta_transfer: not set, no transfer jobs"
            )
        below = self.beta_below(wildcards)
        if below is None:
            raise ValueError(
                f"experiments.{wildcards.exp}.betas: beta {wildcards.beta} is the first of the "
                "ladder, no model below it to transfer"
            )
        shape = lattice_shape(wildcards.lattice)
        return lattice_label(train_shape(exp["train"], shape)), below

    def transfer_init(self, wildcards) -> list[str]:
        """Model files of the beta below (same training volume): the start of the retraining."""
        lattice, below = self.transfer_source(wildcards)
        return model_files(wildcards.exp, lattice, below)

    def transfer_checkpoint(self, wildcards) -> str:
        """none: the model of the beta below; retrained: that model retrained at this beta."""
        lattice, below = self.transfer_source(wildcards)
        if wildcards.stage == "none":
            return f"{beta_dir(wildcards.exp, lattice, below)}/model/checkpoint.pt"
        return f"{beta_dir(wildcards.exp, lattice, wildcards.beta)}/transfer/model/checkpoint.pt"

    def transfer_lattice_option(self, wildcards) -> str:
        """`--lattice ...` when the model was trained on train.lattice, another volume."""
        lattice, _ = self.transfer_source(wildcards)
        return "" if lattice == wildcards.lattice else f"--lattice {lattice_option(wildcards)}"

    def transfer_infer_options(self, wildcards) -> str:
        """The ladder's infer settings, at this beta whatever beta the model was trained at."""
        return f"{self.infer_options(wildcards)} --beta {wildcards.beta}"

    def transfer_train_options(self, wildcards) -> str:
        """The ladder's training settings, shortened to the transfer's retraining."""
        settings = transfer_train_settings(self.experiment(wildcards))
        return cli_options(settings, skip=NOT_TRAIN_OPTIONS)

    # ---- the volume curriculum's transfer rows (curriculum.smk) --------------------------------

    def volume_transfer_checkpoint(self, wildcards) -> str:
        """The model of train.lattice at this beta, which the transfer row samples unchanged."""
        if not self.finetuning(wildcards):
            raise ValueError(
                f"experiments.{wildcards.exp}.{learner_key(self.variant(wildcards))}"
                f".finetune_steps: no model is fine-tuned on {wildcards.lattice}, so it has no "
                "volume-transfer row"
            )
        trained = self.train_volume(wildcards)
        where = learned_dir(wildcards.exp, trained, wildcards.beta, self.variant(wildcards))
        return f"{where}/model/checkpoint.pt"

    def volume_transfer_lattice_option(self, wildcards) -> str:
        return f"--lattice {lattice_option(wildcards)}"

    def volume_transfer_chains(self, wildcards) -> list[str]:
        """Transfer-row chain files of every fine-tuned (learner, volume, beta); none without
        the curriculum."""
        name = wildcards.exp
        exp = self.experiments[name]
        return [
            volume_transfer_chain(name, lattice, beta, variant)
            for variant in self.learner_names(name)
            if finetunes(learners(exp)[learner_key(variant)])
            for lattice in self.volumes(name)
            if lattice != lattice_label(learners(exp)[learner_key(variant)]["lattice"])
            for beta in self.betas(name)
        ]

    # ---- the files of an experiment -----------------------------------------------------------

    def volumes(self, name: str) -> list[str]:
        return [lattice_label(shape) for shape in self.experiments[name]["lattices"]]

    def betas(self, name: str) -> list[str]:
        return [beta_label(b) for b in self.experiments[name]["betas"]]

    def learner_names(self, name: str) -> list[str | None]:
        """The learners of an experiment: None (the ladder's own model) and every variant."""
        return [None, *self.experiments[name].get("variants", {})]

    def train_volumes(self, name: str, variant: str | None = None) -> list[str]:
        """The volumes a learner's models are trained on: its lattice, or every sampled volume;
        with the volume curriculum, its lattice and every sampled volume (fine-tuned)."""
        exp = self.experiments[name]
        train = learners(exp)[learner_key(variant)]
        volumes = {lattice_label(train_shape(train, shape)) for shape in exp["lattices"]}
        if finetunes(train):
            volumes |= set(self.volumes(name))
        return sorted(volumes)

    def flow_learner(self, name: str, variant: str | None) -> bool:
        """Whether a learner is a flow: its chains are flow_imh.nc (and flow_hmc.nc), not
        l2hmc.nc, and its metrics are no L2HMC training run's."""
        return is_flow(learners(self.experiments[name])[learner_key(variant)])

    def trained_models(self, name: str, variants: Iterable[str | None] | None = None) -> list[str]:
        """Checkpoints of every (learner, training volume, beta) of an experiment, or of the
        learners ``variants`` only."""
        return [
            f"{learned_dir(name, lattice, beta, variant)}/model/checkpoint.pt"
            for variant in (self.learner_names(name) if variants is None else variants)
            for lattice in self.train_volumes(name, variant)
            for beta in self.betas(name)
        ]

    def l2hmc_chains(self, name: str) -> list[str]:
        return [
            f"{learned_dir(name, lattice, beta, variant)}/l2hmc.nc"
            for variant in self.learner_names(name)
            if not self.flow_learner(name, variant)
            for lattice in self.volumes(name)
            for beta in self.betas(name)
        ]

    def flow_chains(self, name: str) -> list[str]:
        """Chain files of every flow learner: flow_imh.nc, and flow_hmc.nc with flow_hmc."""
        exp = self.experiments[name]
        return [
            flow_chain(name, lattice, beta, variant, sampler)
            for variant in self.learner_names(name)
            if self.flow_learner(name, variant)
            for sampler in FLOW_SAMPLERS
            if sampler != "flow_hmc" or "flow_hmc" in learners(exp)[learner_key(variant)]
            for lattice in self.volumes(name)
            for beta in self.betas(name)
        ]

    def hmc_chains(self, name: str) -> list[str]:
        points = hmc_points(self.experiments[name])
        return [
            f"{beta_dir(name, lattice, beta)}/hmc/{point}.nc"
            for lattice in self.volumes(name)
            for beta in self.betas(name)
            for point in points
        ]

    def all_chains(self, wildcards) -> list[str]:
        """Every chain file the comparison reads: the learners', then the baselines'."""
        exp = wildcards.exp
        return self.l2hmc_chains(exp) + self.flow_chains(exp) + self.hmc_chains(exp)

    def transfer_chains(self, wildcards) -> list[str]:
        """Beta-transfer chain files (none without beta_transfer): at every beta above the
        first, the model of the beta below without and with a short retraining."""
        if "beta_transfer" not in self.experiments[wildcards.exp]:
            return []
        return [
            transfer_chain(wildcards.exp, lattice, beta, stage)
            for lattice in self.volumes(wildcards.exp)
            for beta in self.betas(wildcards.exp)[1:]
            for stage in TRANSFER_STAGES
        ]

    def report_runs(self, wildcards) -> list[str]:
        """The training runs the report draws (figure 5): the L2HMC learners'. A flow's
        metrics.csv has its own columns (loss, ess; no acceptance or step sizes) and its
        training cost reaches the report through its chain files' training_seconds."""
        name = wildcards.exp
        l2hmc = [v for v in self.learner_names(name) if not self.flow_learner(name, v)]
        return self.trained_models(name, l2hmc)

    def final_targets(self) -> list[str]:
        """What `snakemake` with no target makes: each experiment's table and report."""
        return [
            path
            for name in self.experiments
            for path in [f"results/{name}/tauint.csv", *report_files(f"results/{name}/report")]
        ]
