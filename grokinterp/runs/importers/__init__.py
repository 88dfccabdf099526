"""Importers: every file layout grokinterp reads, declared in one registry (:data:`LAYOUTS`).

=====================  =====================================================================
layout                 files
=====================  =====================================================================
``grokinterp``         grokinterp's own ``.safetensors`` checkpoints
``transformer_lens``   a HookedTransformer state dict, bare or in TransformerLens's grokking demo
                       ``.pth`` (checkpoints, losses, the stored train/test indices)
``progress_measures``  the progress-measures paper's files (Nanda et al. 2023): column-layout
                       state dict and its ``Config`` (split: seeded Python shuffle)
``arena``              ARENA's saved runs: ``state_dicts`` + ``epochs`` (+ config fields)
``clock_pizza``        ``model_<id>.pt`` + ``config_<id>.json`` (Zhong et al. 2023; attention rate,
                       bidirectional attention, diff_vocab)
=====================  =====================================================================

A file is read (``torch.load(weights_only=True, map_location="cpu")``, never executing pickled code),
the one layout whose structure it has is chosen, and that layout checks every key, option and shape:
what it does not implement exactly raises :class:`~grokinterp.CheckpointError` naming what was found
and what is supported. A file of no declared layout is refused with the list of layouts. The split is
rebuilt whenever the file says how it was made and marked assumed (``task_assumed``) otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from ...errors import CheckpointError
from ...metrics import split_scores
from ...models import Model, ModelWeights, TransformerConfig, build_model, config_to_dict
from ...safeio import read_safetensors
from ..store import load_weights
from .arena import ARENA
from .base import Imported, Layout
from .clock_pizza import CLOCK_PIZZA
from .grokinterp_format import GROKINTERP
from .progress_measures import PROGRESS_MEASURES
from .reading import describe, read_legacy_file
from .state_dicts import Architecture, from_column_layout, from_hooked_transformer, layout_of
from .transformer_lens import TRANSFORMER_LENS

__all__ = [
    "LAYOUTS",
    "LEGACY_SUFFIXES",
    "Imported",
    "Layout",
    "convert_legacy_state_dict",
    "import_file",
    "load_legacy",
    "load_legacy_run",
    "read_legacy_file",
    "supported_layouts",
]

#: Every layout grokinterp reads, in the order they are tried.
LAYOUTS: tuple[Layout, ...] = (GROKINTERP, TRANSFORMER_LENS, PROGRESS_MEASURES, ARENA, CLOCK_PIZZA)
#: Suffixes of files read with torch.load (everything but grokinterp's own .safetensors).
LEGACY_SUFFIXES = tuple(sorted({s for layout in LAYOUTS for s in layout.suffixes if s != ".safetensors"}))


def supported_layouts() -> str:
    """The declared layouts, one per line, as error messages list them."""
    return "\n".join(f"  {layout.name}: {layout.recognises}" for layout in LAYOUTS)


def _read(path: Path) -> Any:
    return read_safetensors(path) if path.suffix == ".safetensors" else read_legacy_file(path)


def import_file(path: str | Path) -> Imported:
    """Read a checkpoint file of any declared layout as an :class:`Imported`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; use load_run for run directories")
    candidates = [layout for layout in LAYOUTS if path.suffix in layout.suffixes]
    if not candidates:
        suffixes = sorted({s for layout in LAYOUTS for s in layout.suffixes})
        raise CheckpointError(f"{path}: no declared layout reads {path.suffix or 'suffix-less'} files; suffixes read: {suffixes}")
    obj = _read(path)
    matching = [layout for layout in candidates if layout.matches(path, obj)]
    if not matching:
        raise CheckpointError(f"{path}: holds {describe(obj)}, which is none of the layouts grokinterp reads:\n{supported_layouts()}")
    layout = matching[0]
    try:
        return layout.load(path, obj)
    except CheckpointError as e:
        message = str(e)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: read as {layout.name}: {message}") from None
    except ValueError as e:  # the layout's own checks (and grokinterp's config errors)
        raise CheckpointError(f"{path}: read as {layout.name}: {e}") from None


def load_legacy(path: str | Path) -> tuple[Model, dict]:
    """A checkpoint file of any declared layout as ``(model, info)``: the final weights, and
    ``info`` (format, layout, epoch, task, task_assumed, split, notes, path)."""
    path = Path(path)
    imported = import_file(path)
    model = load_weights(build_model(imported.config), imported.weights, path)
    return model, imported.info(path)


def convert_legacy_state_dict(sd: Mapping[str, Tensor], act: str = "relu") -> tuple[TransformerConfig, dict]:
    """A bare legacy state dict (HookedTransformer or column layout, causal, rate 1) as
    ``(config, weights)`` named like :func:`grokinterp.models.named_weights`."""
    layout = layout_of(sd)
    if layout is None:
        raise CheckpointError(f"not a transformer state dict of a known layout; found {describe(sd)}")
    convert = from_hooked_transformer if layout == "hooked_transformer" else from_column_layout
    try:
        config, weights, _ = convert(sd, Architecture(act=act))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    return config, weights


def load_legacy_run(path: str | Path) -> dict:
    """A file holding a training history (TransformerLens demo ``checkpoints``, ARENA
    ``state_dicts``) as the fields of a :class:`~grokinterp.runs.Run`.

    One history row per checkpoint epoch: the losses the file records per epoch (a loss list is used
    only when it has an entry for every checkpoint epoch, index = epoch), and loss and accuracy
    evaluated from the checkpoint when the file says what its split was (not when it is assumed).
    """
    path = Path(path)
    imported = import_file(path)
    if not imported.checkpoints:
        raise CheckpointError(f"{path}: holds no checkpoint history; use load_checkpoint for a single model")
    epochs = sorted(imported.checkpoints)
    config, task = imported.config, imported.task
    notes = list(imported.notes)
    usable = {}
    for name, values in imported.losses.items():
        if len(values) > epochs[-1]:
            usable[name] = values
        else:
            notes.append(f"{name} list ({len(values)} entries) does not cover epoch {epochs[-1]}; left out of the history")
    history = []
    for e in epochs:
        row: dict = {"epoch": e, **{name: values[e] for name, values in usable.items()}}
        if task is not None and not imported.task_assumed:
            w = ModelWeights(config, imported.checkpoints[e])
            for split in ("train", "test"):
                loss, acc = split_scores(task, w.logits(task.inputs(split)), task.labels(split))
                row.setdefault(f"{split}_loss", loss)
                row[f"{split}_acc"] = acc
        history.append(row)
    record = {"model": config_to_dict(config), "task": task.to_dict() if task else None, "legacy_file": str(path),
              "layout": imported.layout, "task_assumed": imported.task_assumed, "split": imported.split, "notes": notes}
    checkpoints = imported.checkpoints
    return dict(path=path, config=record, task=task, model_config=config, history=history,
                checkpoint_epochs=epochs, mask=None, _weights_at=lambda e: checkpoints[e])
