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
from dlhmc.plan.bridges import (
    BRIDGE_SAMPLER,
    bridge_settings,
    bridge_train_settings,
    ensemble_label,
    ensemble_point,
    exchanges,
    trex_settings,
)
from dlhmc.plan.experiments import (
    finetune_train_settings,
    finetunes,
    is_flow,
    learner_key,
    learners,
    train_shape,
    transfer_train_settings,
)
from dlhmc.plan.hmc_grid import Point, hmc_options, hmc_points
from dlhmc.plan.paths import (
    FLOW_SAMPLERS,
    TRANSFER_STAGES,
    beta_dir,
    beta_label,
    bridge_dir,
    derivative_csv,
    exchange_chain,
    exchange_dir,
    flow_chain,
    lattice_label,
    lattice_shape,
    learned_dir,
    model_files,
    transfer_chain,
    volume_transfer_chain,
)

# Training settings the workflow reads itself: how a job is launched, where its model trains,
# how the volume curriculum fine-tunes it and how a flow's flow-HMC chains are sampled.
NOT_TRAIN_OPTIONS = ("ranks", "lattice", "finetune_steps", "finetune_lr", "flow_hmc")
# Infer settings of L2HMC runs only: a flow's chains have no layers to record.
L2HMC_INFER_OPTIONS = ("layer_samples",)


def cli_options(settings: Mapping, skip: Iterable[str] = ()) -> str:
    """`--key value ...` for every setting (lists as several values), in config order."""
    words = []
    for key, value in settings.items():
        if key in skip:
            continue
        words.append(f"--{key.replace('_', '-')}")
        words.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(words)


def lattice_option(wildcards) -> str:
    """`--lattice` values of the job's volume: 16x16 -> '16 16'."""
    return wildcards.lattice.replace("x", " ")


class Plan:
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
        train.lattice at the first beta, and its training seconds count each run once."""
        exp, variant = wildcards.exp, self.variant(wildcards)
        if wildcards.lattice not in self.train_volumes(exp, variant):
            raise ValueError(
                f"experiments.{exp}.{learner_key(variant)}.lattice: no model is trained on "
                f"{wildcards.lattice} (trained on {', '.join(self.train_volumes(exp, variant))})"
            )
        below = self.beta_below(wildcards)
        if below is not None:
            return model_files(exp, wildcards.lattice, below, variant)
        if self.finetuning(wildcards):
            return model_files(exp, self.train_volume(wildcards), wildcards.beta, variant)
        return []

    def train_options(self, wildcards) -> str:
        """All training settings of the job's learner, as `dlhmc train` options; a fine-tuning
        job's steps and learning rate are finetune_steps and finetune_lr."""
        settings = self.train_settings(wildcards)
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
        """The experiment's infer settings; a flow's without those of L2HMC runs only."""
        skip = L2HMC_INFER_OPTIONS if is_flow(self.train_settings(wildcards)) else ()
        return cli_options(self.experiment(wildcards)["infer"], skip=skip)

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

    def hmc_point(self, wildcards) -> Point:
        """(nlf, eps, integrator, hits, size) of an HMC job, from its file name (the bridges'
        ensemble: its point's)."""
        exp = self.experiment(wildcards)
        points = hmc_points(exp)
        label = ensemble_label(exp)
        if label is not None and wildcards.point == label:
            return ensemble_point(exp)
        if wildcards.point not in points:
            raise ValueError(
                f"experiments.{wildcards.exp}.hmc: {wildcards.point} is not a grid point "
                f"(have {', '.join(points)})"
            )
        return points[wildcards.point]

    def hmc_options(self, wildcards) -> str:
        """The point's options; the bridges' ensemble also stores its links (--save-every)."""
        exp = self.experiment(wildcards)
        options = hmc_options(exp["group"], self.hmc_point(wildcards))
        if wildcards.point == ensemble_label(exp):
            options += f" --save-every {exp['bridges']['save_every']}"
        return options

    # ---- bridges and replica exchange (bridges.smk, exchange.smk) ----------------------------

    def ensemble_chain(self, name: str, lattice: str, beta: str) -> str:
        """The bridges' HMC ensemble at one beta (configurations stored)."""
        return f"{beta_dir(name, lattice, beta)}/hmc/{ensemble_label(self.experiments[name])}.nc"

    def bridge_source(self, wildcards) -> str:
        """Beta label a bridge into the job's beta starts from: the beta below on the ladder."""
        exp = self.experiment(wildcards)
        if bridge_settings(exp) is None:
            raise ValueError(f"experiments.{wildcards.exp}.bridges: not set, no bridge jobs")
        below = self.beta_below(wildcards)
        if below is None:
            raise ValueError(
                f"experiments.{wildcards.exp}.betas: beta {wildcards.beta} is the first of the "
                "ladder, no bridge leads into it"
            )
        return below

    def bridge_data(self, wildcards) -> str:
        """The ensemble (with its links) of the beta below: what the bridge trains on."""
        return self.ensemble_chain(wildcards.exp, wildcards.lattice, self.bridge_source(wildcards))

    def bridge_train_options(self, wildcards, input) -> str:
        """`--sampler bridge --beta-from b_k --data <ensemble of b_k>` and the bridges'
        training settings (the target beta, lattice, seed ... are the train rule's)."""
        below = self.bridge_source(wildcards)
        settings = cli_options(bridge_train_settings(self.experiment(wildcards)))
        return f"--sampler {BRIDGE_SAMPLER} --beta-from {below} --data {input.data} {settings}"

    def bridge_checkpoint(self, wildcards) -> str:
        self.bridge_source(wildcards)
        return f"{bridge_dir(wildcards.exp, wildcards.lattice, wildcards.beta)}/model/checkpoint.pt"

    def derivative_chains(self, wildcards) -> list[str]:
        """The ensembles of the pair (beta below, beta): `dlhmc derivative --chains B1 B2`."""
        below = self.bridge_source(wildcards)
        return [
            self.ensemble_chain(wildcards.exp, wildcards.lattice, beta)
            for beta in (below, wildcards.beta)
        ]

    def derivative_files(self, wildcards) -> list[str]:
        """Every derivative CSV of an experiment (none without bridges)."""
        name = wildcards.exp
        if bridge_settings(self.experiments[name]) is None:
            return []
        return [
            derivative_csv(name, lattice, beta)
            for lattice in self.volumes(name)
            for beta in self.betas(name)[1:]
        ]

    def exchange_settings(self, wildcards) -> dict:
        exp = self.experiment(wildcards)
        if wildcards.exchange not in exchanges(exp):
            what = "trex" if trex_settings(exp) is None else "bridges"
            raise ValueError(
                f"experiments.{wildcards.exp}.{what}: not set, so there is no "
                f"{wildcards.exchange} run"
            )
        return trex_settings(exp)

    def exchange_bridges(self, wildcards) -> list[str]:
        """T-REX: the bridge of every neighbouring pair, in ladder order; none for plain PT."""
        self.exchange_settings(wildcards)
        if wildcards.exchange != "trex":
            return []
        return [
            f"{bridge_dir(wildcards.exp, wildcards.lattice, beta)}/model/checkpoint.pt"
            for beta in self.betas(wildcards.exp)[1:]
        ]

    def exchange_options(self, wildcards) -> str:
        """`--betas` of the ladder and the experiment's trex settings (``dlhmc trex``)."""
        settings = self.exchange_settings(wildcards)
        betas = " ".join(self.betas(wildcards.exp))
        return f"--betas {betas} {cli_options(settings)}".rstrip()

    def exchange_dirs(self, wildcards) -> list[str]:
        """Every replica-exchange directory of an experiment (none without trex)."""
        name = wildcards.exp
        return [
            exchange_dir(name, lattice, kind)
            for kind in exchanges(self.experiments[name])
            for lattice in self.volumes(name)
        ]

    def exchange_chains(self, wildcards) -> list[str]:
        """The chain files inside :meth:`exchange_dirs`, one per beta: analysed as any other."""
        name = wildcards.exp
        return [
            exchange_chain(name, lattice, kind, beta)
            for kind in exchanges(self.experiments[name])
            for lattice in self.volumes(name)
            for beta in self.betas(name)
        ]

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
