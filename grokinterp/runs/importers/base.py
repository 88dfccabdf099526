"""What an importer declares (:class:`Layout`) and what it returns (:class:`Imported`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from torch import Tensor

from ...models import ModelConfig
from ...tasks import ModularArithmetic

__all__ = ["TORCH_SUFFIXES", "Imported", "Layout", "check_keys", "recorded_losses"]

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")  # the file names torch.save-d layouts are read from


def recorded_losses(file) -> dict[str, list[float]]:
    """The per-epoch ``train_losses`` / ``test_losses`` lists a legacy file records, as
    ``{"train_loss": [...], "test_loss": [...]}`` (only those present)."""
    return {f"{s}_loss": [float(x) for x in file[f"{s}_losses"]] for s in ("train", "test") if file.get(f"{s}_losses") is not None}


@dataclass(frozen=True)
class Imported:
    """A file read by an importer.

    ``weights`` (named like :func:`grokinterp.models.named_weights`) at ``epoch`` (``None`` when the
    file does not say); ``checkpoints`` every saved epoch's weights when the file holds a training
    history (else ``None``); ``task`` the task the file describes (``None`` when it says nothing);
    ``task_assumed`` True when the task or its train/test split is not what the file records but a
    guess; ``split`` how the split was obtained, in words; ``losses`` per-epoch loss lists the file
    records (``{"train_loss": [...], ...}``, index = epoch); ``notes`` anything else the caller
    should know (an output column dropped, a loss list left out).
    """

    layout: str
    config: ModelConfig
    weights: Mapping[str, Tensor]
    epoch: Optional[int]
    task: Optional[ModularArithmetic]
    task_assumed: bool
    split: str
    checkpoints: Optional[Mapping[int, Mapping[str, Tensor]]] = None
    losses: Mapping[str, list] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def info(self, path: Path) -> dict:
        """The ``info`` dict of :func:`grokinterp.load_checkpoint`."""
        return {
            "format": "grokinterp" if self.layout == "grokinterp" else "legacy",
            "layout": self.layout,
            "epoch": self.epoch,
            "task": self.task,
            "task_assumed": self.task_assumed,
            "split": self.split,
            "notes": list(self.notes),
            "path": str(path),
        }


@dataclass(frozen=True)
class Layout:
    """One declared file layout.

    ``recognises``: how a file is told to be of this layout (in words, for error messages);
    ``suffixes``: the file suffixes it reads; ``matches(path, obj)``: True when the file's
    structure is this layout's (the strict checks of every key, option and shape are ``load``'s,
    which refuses what it does not implement); ``load(path, obj)``: the :class:`Imported`.
    """

    name: str
    recognises: str
    suffixes: tuple[str, ...]
    matches: Callable[[Path, Any], bool]
    load: Callable[[Path, Any], Imported]


def check_keys(found: Iterable[str], allowed: Iterable[str], required: Iterable[str], what: str) -> None:
    """Raise (a ``ValueError`` the importer turns into its error) on keys outside ``allowed`` or a
    missing ``required`` key, naming both and what is supported."""
    found, allowed = set(map(str, found)), set(allowed)
    unknown = sorted(found - allowed)
    missing = sorted(set(required) - found)
    if unknown:
        raise ValueError(f"{what} has keys {unknown} this layout does not define; supported keys: {sorted(allowed)}")
    if missing:
        raise ValueError(f"{what} lacks the keys {missing}; found {sorted(found)}")
