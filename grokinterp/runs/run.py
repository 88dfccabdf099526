"""A run read back: :class:`Run` and :func:`load_run`, and :func:`load_checkpoint` for one file.

A run folder (grokinterp's own layout, :mod:`grokinterp.runs.layout`) or a legacy file with a
checkpoint list (:mod:`grokinterp.runs.importers`) becomes the same :class:`Run`: its record, task,
model config, history, checkpoint epochs and mask; ``model_at(epoch)`` builds the model at a
checkpoint and ``model_weights(epoch)`` gives its :class:`~grokinterp.models.ModelWeights` (the
run's mask applied) without building one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from torch import Tensor

from ..errors import CheckpointError, GrokinterpError
from ..masks import Mask, load_mask
from ..metrics import GrokkingTimes, grokking_times
from ..models import Model, ModelConfig, ModelWeights, build_model, config_from_dict
from ..safeio import read_json, read_safetensors
from ..tasks import Task, task_from_dict
from .importers import LEGACY_SUFFIXES, load_legacy, load_legacy_run
from .layout import RunPaths
from .spec import check_key, spec_key
from .store import load_weights, read_metrics

__all__ = ["Run", "as_run", "load_checkpoint", "load_run"]


@dataclass
class Run:
    """A training run read back: record (``config``), task, model config, history, checkpoints, mask."""

    path: Optional[Path]
    config: dict
    task: Optional[Task]
    model_config: ModelConfig
    history: list[dict]
    checkpoint_epochs: list[int]
    mask: Optional[Mask] = None
    _weights_at: Callable[[int], Mapping[str, Tensor]] = field(default=None, repr=False)

    @property
    def frame(self):
        """The history as a pandas DataFrame (one row per evaluated epoch)."""
        import pandas as pd

        return pd.DataFrame(self.history)

    @property
    def times(self) -> GrokkingTimes:
        return grokking_times(self.history)

    @property
    def key(self) -> str:
        """The run's spec key (:mod:`grokinterp.runs.spec`)."""
        return spec_key(self.config)

    def checkpoint_epoch(self, epoch: int | None = None) -> int:
        """A checkpoint epoch of the run (default: the last), or an error listing them."""
        if not self.checkpoint_epochs:
            raise CheckpointError(f"{self.path}: the run has no checkpoints")
        epoch = self.checkpoint_epochs[-1] if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch not in self.checkpoint_epochs:
            raise GrokinterpError(
                f"no checkpoint at epoch {epoch} in {self.path}; available: {self.checkpoint_epochs[:5]}"
                f"{' ...' if len(self.checkpoint_epochs) > 5 else ''} {self.checkpoint_epochs[-1:]}"
            )
        return epoch

    def weights_at(self, epoch: int | None = None) -> Mapping[str, Tensor]:
        """The stored tensors at a checkpoint epoch (default: the last), unmasked."""
        return self._weights_at(self.checkpoint_epoch(epoch))

    def model_weights(self, epoch: int | None = None, masked: bool = True) -> ModelWeights:
        """:class:`~grokinterp.models.ModelWeights` at a checkpoint epoch, the run's mask applied
        unless ``masked=False``; no model is built."""
        w = ModelWeights(self.model_config, dict(self.weights_at(epoch)))
        return w.with_mask(self.mask) if masked else w

    def model_at(self, epoch: int | None = None) -> Model:
        """A fresh model holding the weights at a checkpoint epoch (default: the last), unmasked."""
        e = self.checkpoint_epoch(epoch)
        return load_weights(build_model(self.model_config), self._weights_at(e), f"{self.path} epoch {e}")


def as_run(run) -> Run:
    """A :class:`Run` from a Run or a run-directory path."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, Path)):
        return load_run(run)
    raise GrokinterpError(f"expected a run directory path or a Run, got {type(run).__name__}")


def load_run(path: str | Path) -> Run:
    """Read a run directory (or a legacy TransformerLens ``.pth`` with its checkpoint list)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or file")
    if path.is_file():
        if path.suffix in LEGACY_SUFFIXES:
            return Run(**load_legacy_run(path))
        raise CheckpointError(f"{path}: is a file; expected a run directory (or use load_checkpoint)")
    paths = RunPaths(path)
    config = read_json(paths.config)
    if not isinstance(config, dict):
        raise CheckpointError(f"{paths.config}: holds a {type(config).__name__}, expected a run record (a JSON object)")
    check_key(paths.config, config)  # an edited record would describe a run that was never trained
    try:
        model_cfg = config_from_dict(config["model"])
        task = task_from_dict(config["task"])
    except (KeyError, TypeError, GrokinterpError) as e:
        raise CheckpointError(f"{paths.config}: missing or invalid task/model entry ({e})") from None
    mask = load_mask(paths.mask) if paths.mask.exists() else None

    def weights_at(epoch: int) -> Mapping[str, Tensor]:
        return read_safetensors(paths.checkpoint(epoch))[0]

    return Run(path, config, task, model_cfg, read_metrics(paths.metrics), paths.checkpoint_epochs(), mask, weights_at)


def load_checkpoint(path: str | Path, task: Task | None = None) -> tuple[Model, dict]:
    """Load one checkpoint file into a fresh model, through the importer registry
    (:mod:`grokinterp.runs.importers`): grokinterp's own ``.safetensors``, a TransformerLens
    HookedTransformer state dict or grokking-demo ``.pth``, the progress-measures paper's files,
    ARENA's saved runs (the last state dict) or a clock-vs-pizza ``model_<id>.pt`` with its
    ``config_<id>.json``. Legacy files are read with ``torch.load(weights_only=True,
    map_location="cpu")``; a file of no declared layout, or with an option grokinterp does not
    implement, raises :class:`CheckpointError` saying what was found and what is supported.

    Returns ``(model, info)``; ``info`` has ``format`` ("grokinterp" or "legacy"), ``layout``,
    ``epoch`` (if known), ``task`` (the task the file records, rebuilt with its real split when the
    file says how it was made; ``task`` given here replaces it), ``task_assumed`` (True when the
    task or its split is a guess), ``split`` (how the split was obtained, in words), ``notes``.
    """
    model, info = load_legacy(path)
    if task is not None:
        info.update(task=task, task_assumed=False, split="given by the caller")
    return model, info
