"""TensorBoard event files beside ``metrics.csv``, to follow a long training live.

A training on a cluster runs for hours in a batch job; ``tensorboard --logdir RUN_DIR`` (or
``--logdir results/``, for every run of an experiment) shows its loss, acceptance, charge
change and step sizes while it runs.  ``metrics.csv`` stays the record the workflow reads;
the event files are a view of the same rows, written only where TensorBoard is installed
(the optional ``monitor`` extra: ``pip install 'dlhmc[monitor]'``), so a run never depends
on it.  A resumed run purges the events written after its checkpoint, as it truncates
``metrics.csv``, so both show each step once.
"""

from __future__ import annotations

import math
from pathlib import Path

EVENTS_DIR = "events"
# Columns that are not a per-step quantity worth a curve (the step is the x axis).
SKIPPED = frozenset({"step", "reason"})


class EventLog:
    """Scalars of every metrics row under ``train/<column>``; a no-op without TensorBoard."""

    def __init__(self, run_dir: Path, first_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is not installed: metrics.csv only
            self.writer = None
            return
        self.writer = SummaryWriter(str(Path(run_dir) / EVENTS_DIR), purge_step=first_step + 1)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def write(self, row: dict) -> None:
        if self.writer is None:
            return
        step = int(row["step"])
        for name, value in row.items():
            if name in SKIPPED or isinstance(value, str) or not math.isfinite(value):
                continue
            self.writer.add_scalar(f"train/{name}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
