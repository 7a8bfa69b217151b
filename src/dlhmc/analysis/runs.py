"""Training runs for the report: ``RUN_DIR/metrics.csv`` (one row per step) and ``config.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

import pandas as pd
import yaml

# The columns of a training run's metrics.csv (dlhmc.train) that the report reads.
REPORTED_METRICS = (
    "step",
    "loss",
    "accept",
    "dq2",
    "eps_x_mean",
    "eps_v_mean",
    "seconds",
    "beta",
    "skipped",
)


class RunDirError(ValueError):
    """A training run directory without readable metrics."""


@dataclass(frozen=True)
class TrainingRun:
    path: Path
    metrics: pd.DataFrame
    config: dict | None

    @property
    def learner(self) -> str:
        return learner_name(self.path)


def learner_name(path) -> str:
    """The workflow learner a run directory or chain file belongs to: the variant name of a
    ``.../learned/<name>/...`` path, ``""`` for the ladder's own model (several learners train
    and sample at the same betas of one experiment)."""
    parts = PurePath(str(path)).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "learned":
            return parts[i + 1]
    return ""


def load_run(path: str | Path) -> TrainingRun:
    """Read one run; steps flagged ``skipped`` (non-finite loss, no update) are dropped."""
    path = Path(path)
    metrics_path = path / "metrics.csv"
    if not metrics_path.is_file():
        raise RunDirError(f"{metrics_path}: no such file")
    try:
        metrics = pd.read_csv(metrics_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RunDirError(f"{metrics_path}: not a CSV table ({type(err).__name__})") from None
    missing = [c for c in REPORTED_METRICS if c not in metrics.columns]
    if missing:
        raise RunDirError(f"{metrics_path}: missing column {missing[0]!r}")
    metrics = metrics[metrics.skipped.astype(float) == 0].reset_index(drop=True)
    config = None
    config_path = path / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise RunDirError(f"{config_path}: not valid YAML") from None
    return TrainingRun(path=path, metrics=metrics, config=config)
