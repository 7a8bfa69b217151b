"""The jobs of bridges and replica exchange (bridges.smk, exchange.smk, and their HMC ensembles).

A mixin of :class:`dlhmc.plan.jobs.Plan`: the rules' input and option functions for the
experiment keys ``bridges`` and ``trex`` (:mod:`dlhmc.plan.bridges` holds their settings and
checks).  Two ensembles per beta store their links (``dlhmc hmc --save-every``), runs of the
bridges' HMC point that differ only in the seed: the bridge of a pair trains on the *training*
ensemble of the beta below, and ``dlhmc derivative`` evaluates it on the other.  A bridge
evaluated on the configurations it was fitted to is no longer importance sampling with a fixed
proposal and is biased (measured on 8x8, beta 2 -> 2.5: 4.5 errors low on its training chains,
within an error on other chains), and holding out part of one ensemble would leave the flow
estimator a fraction of the configurations the other estimators use.
"""

from __future__ import annotations

from dlhmc.plan.bridges import (
    BRIDGE_SAMPLER,
    bridge_settings,
    bridge_sources,
    bridge_train_settings,
    ensemble_label,
    ensemble_point,
    exchanges,
    training_label,
    trex_settings,
)
from dlhmc.plan.hmc_grid import Point, hmc_options, hmc_points
from dlhmc.plan.options import cli_options
from dlhmc.plan.paths import (
    beta_dir,
    bridge_dir,
    derivative_csv,
    exchange_chain,
    exchange_dir,
)

# Seeds of the HMC jobs: the experiment's seed plus this (the grid's and the ensembles' runs,
# which repeat a grid point's chains), plus one more for the bridges' training ensembles.
HMC_SEED_OFFSET = 2


class BridgeJobs:
    """Bridges, derivatives and replica exchange; the HMC jobs, whose ensembles they use."""

    def hmc_point(self, wildcards) -> Point:
        """(nlf, eps, integrator, hits, size) of an HMC job, from its file name (the bridges'
        ensembles: their point's)."""
        exp = self.experiment(wildcards)
        points = hmc_points(exp)
        if wildcards.point in self._ensembles(exp):
            return ensemble_point(exp)
        if wildcards.point not in points:
            raise ValueError(
                f"experiments.{wildcards.exp}.hmc: {wildcards.point} is not a grid point "
                f"(have {', '.join(points)})"
            )
        return points[wildcards.point]

    def hmc_options(self, wildcards) -> str:
        """The point's options; the bridges' ensembles also store their links (--save-every)."""
        exp = self.experiment(wildcards)
        options = hmc_options(exp["group"], self.hmc_point(wildcards))
        if wildcards.point in self._ensembles(exp):
            options += f" --save-every {exp['bridges']['save_every']}"
        return options

    def hmc_seed(self, wildcards) -> int:
        """The grid's seed, whose chains the evaluation ensemble repeats; another for the
        bridges' training ensemble (independent chains)."""
        exp = self.experiment(wildcards)
        extra = int(wildcards.point == training_label(exp))
        return exp["seed"] + HMC_SEED_OFFSET + extra

    @staticmethod
    def _ensembles(exp) -> tuple[str, ...]:
        label = ensemble_label(exp)
        return () if label is None else (label, training_label(exp))

    def ensemble_chain(self, name: str, lattice: str, beta: str, training: bool = False) -> str:
        """The bridges' HMC ensemble at one beta (configurations stored): the one derivatives
        are measured on, or with ``training`` the one a bridge from this beta trains on."""
        exp = self.experiments[name]
        label = training_label(exp) if training else ensemble_label(exp)
        return f"{beta_dir(name, lattice, beta)}/hmc/{label}.nc"

    def bridge_source(self, wildcards) -> str:
        """Beta label a bridge into the job's beta starts from: the beta below on the ladder,
        or ``beta - s`` for a spacing ``s`` of ``bridges.spacings``
        (:func:`dlhmc.plan.bridges.bridge_sources`)."""
        exp = self.experiment(wildcards)
        if bridge_settings(exp) is None:
            raise ValueError(f"experiments.{wildcards.exp}.bridges: not set, no bridge jobs")
        sources = bridge_sources(exp)
        if wildcards.beta not in sources:
            raise ValueError(
                f"experiments.{wildcards.exp}.betas: no bridge leads into beta {wildcards.beta} "
                f"(bridges lead into {', '.join(sources)})"
            )
        return sources[wildcards.beta]

    def bridge_data(self, wildcards) -> str:
        """The training ensemble (with its links) of the beta below: what the bridge trains on."""
        below = self.bridge_source(wildcards)
        return self.ensemble_chain(wildcards.exp, wildcards.lattice, below, training=True)

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
        """Every derivative CSV of an experiment, one per bridge (none without bridges)."""
        name = wildcards.exp
        return [
            derivative_csv(name, lattice, beta)
            for lattice in self.volumes(name)
            for beta in bridge_sources(self.experiments[name])
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
