"""Input and option functions of the beta-transfer rules (transfer.smk): which model a transfer
starts from, and the shortened training settings of its retraining."""


def transfer_source(wildcards):
    """Training volume and beta label of the model a transfer starts from: the beta below."""
    exp = experiment(wildcards)
    if "beta_transfer" not in exp:
        raise WorkflowError(
            f"experiments.{wildcards.exp}.beta_transfer: not set, no transfer jobs"
        )
    labels = ladder(wildcards)
    k = labels.index(wildcards.beta)
    if k == 0:
        raise WorkflowError(
            f"experiments.{wildcards.exp}.betas: beta {wildcards.beta} is the first of the "
            "ladder, no model below it to transfer"
        )
    shape = [int(n) for n in wildcards.lattice.split("x")]
    return lattice_label(train_shape(exp["train"], shape)), labels[k - 1]


def transfer_init(wildcards):
    """Model files of the beta below (same training volume): the start of the retraining."""
    lattice, below = transfer_source(wildcards)
    return model_files(wildcards.exp, lattice, below)


def transfer_checkpoint(wildcards):
    """none: the model of the beta below; retrained: that model retrained at this beta."""
    lattice, below = transfer_source(wildcards)
    if wildcards.kind == "none":
        return f"{beta_dir(wildcards.exp, lattice, below)}/model/checkpoint.pt"
    return f"{beta_dir(wildcards.exp, lattice, wildcards.beta)}/transfer/model/checkpoint.pt"


def transfer_lattice_option(wildcards, input):
    """`--lattice ...` when the model was trained on train.lattice, another volume."""
    lattice, _ = transfer_source(wildcards)
    return (
        "" if lattice == wildcards.lattice else f"--lattice {lattice_option(wildcards)}"
    )


def transfer_infer_options(wildcards):
    """The ladder's infer settings, at this beta whatever beta the model was trained at."""
    return f"{cli_options(experiment(wildcards)['infer'])} --beta {wildcards.beta}"


def transfer_train_options(wildcards):
    """The ladder's training settings with beta_transfer of its steps; a configured warm-up or
    annealing length shrinks in proportion, so the schedules keep their shape and stay below
    the steps (unset ones take `dlhmc train`'s defaults, fractions of the steps already).
    """
    train = dict(experiment(wildcards)["train"])
    steps = transfer_steps(experiment(wildcards))
    for key, least in (("warmup", 0), ("anneal_steps", 1)):
        if key in train:
            train[key] = max(least, train[key] * steps // train["steps"])
    train["steps"] = steps
    return cli_options(train, skip=("ranks", "lattice"))
