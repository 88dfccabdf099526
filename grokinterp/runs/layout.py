"""Every file name of a run folder, and of the folders sweeps make, in one place. ::

    run/
      config.json          the run's record: its spec (identity), schedule, seeds, versions
      metrics.jsonl        one JSON object per evaluated epoch, appended and flushed
      checkpoints/         epoch_000000.safetensors ... (epoch 0 = the starting weights)
      <state>/             extra state a learner saves per checkpoint (edge-popup: scores/)
      mask.safetensors     the mask of a masked run (input), or an edge-popup run's final mask
      resume.safetensors   optimiser and learner state at the last checkpoint (for resume)
      .lock                present while a writer holds the run: who it is

A sweep folder holds one run folder per point and a CSV table. A reproduction folder
(``grokinterp reproduce``) holds ``runs/<spec key>/`` (one run folder each), ``manifest.json``
(which experiment, role and seed each run folder is) and the report as ``report.json``,
``report.md`` and ``report.html``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "MASK",
    "METRICS",
    "LOCK",
    "REPRO_MANIFEST",
    "REPRO_REPORT_HTML",
    "REPRO_REPORT_JSON",
    "REPRO_REPORT_MD",
    "REPRO_RUNS",
    "RESUME",
    "RunPaths",
    "checkpoint_epoch",
    "checkpoint_name",
    "sweep_point_name",
]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MASK = "mask.safetensors"
RESUME = "resume.safetensors"
LOCK = ".lock"  # who writes the run now (the lock itself is held on the folder)

_CKPT = re.compile(r"^epoch_(\d+)\.safetensors$")


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{int(epoch):06d}.safetensors"


def checkpoint_epoch(name: str) -> Optional[int]:
    """The epoch of a checkpoint file name, ``None`` for any other name."""
    m = _CKPT.match(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def mask(self) -> Path:
        return self.root / MASK

    @property
    def resume(self) -> Path:
        return self.root / RESUME

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / checkpoint_name(epoch)

    def state(self, name: str, epoch: int) -> Path:
        """Extra per-checkpoint state of a learner (``scores/epoch_000100.safetensors``)."""
        return self.root / name / checkpoint_name(epoch)

    def checkpoint_epochs(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(e for f in self.checkpoints.iterdir() if (e := checkpoint_epoch(f.name)) is not None)


# sweep folders ----------------------------------------------------------------------------
PRUNE_SWEEP_TABLE = "prune_sweep.csv"
EPOCH_SWEEP_TABLE = "epoch_sweep.csv"
CONTROLS_TABLE = "controls.csv"
CRITICAL_TABLE = "critical.csv"


def sweep_point_name(kind: str, *, ticket_epoch: int | None = None, prune_ratio: float | None = None,
                     method: str | None = None) -> str:
    """Sub-folder name of one point of a sweep: ``t{t}_k{k}`` (tickets), ``ticket_t{t}_k{k}``,
    ``dense_{norm}_t{t}_k{k}``, ``{method}_k{k}`` (controls), ``k{k}`` (critical-ratio search)."""
    k = "" if prune_ratio is None else f"k{prune_ratio:.4f}"
    t = "" if ticket_epoch is None else f"t{ticket_epoch}"
    parts = {
        "ticket": [t, k],
        "controls_ticket": ["ticket", t, k],
        "norm_matched": [f"dense_{method}", t, k],
        "pruned_at_init": [method, k],
        "critical": [k],
    }[kind]
    return "_".join(p for p in parts if p)


# reproduction folders ---------------------------------------------------------------------
REPRO_RUNS = "runs"  # one run folder per spec key
REPRO_MANIFEST = "manifest.json"
REPRO_REPORT_JSON = "report.json"
REPRO_REPORT_MD = "report.md"
REPRO_REPORT_HTML = "report.html"
