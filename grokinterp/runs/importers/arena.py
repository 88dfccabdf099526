"""ARENA's saved grokking runs: ``{"state_dicts": [...], "epochs": [...], "train_losses": [...],
"test_losses": [...], "config": ...}``, the progress-measures ``Config`` fields either under
``config`` or at the top level. Each state dict is in the column layout of the progress-measures code
(:mod:`.state_dicts`); the split is rebuilt from ``seed`` and ``frac_train`` as that code made it
(:mod:`.progress_measures`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .base import TORCH_SUFFIXES, Imported, Layout, check_keys, recorded_losses
from .progress_measures import CONFIG_FIELDS, check_nanda_shapes, nanda_architecture, nanda_task
from .reading import fields_of
from .state_dicts import from_column_layout

__all__ = ["ARENA"]

_FILE_KEYS = ("state_dicts", "epochs", "train_losses", "test_losses", "config")


def _matches(path: Path, obj: Any) -> bool:
    return isinstance(obj, Mapping) and "state_dicts" in obj


def _load(path: Path, obj: Any) -> Imported:
    check_keys(obj, (*_FILE_KEYS, *CONFIG_FIELDS), ("state_dicts", "epochs"), "the file")
    fields = dict(fields_of(obj.get("config")) or {})
    for name in CONFIG_FIELDS:
        if name in obj:
            if name in fields and fields[name] != obj[name]:
                raise ValueError(f"{name} is {obj[name]!r} at the top level but {fields[name]!r} in config")
            fields[name] = obj[name]
    states, epochs = list(obj["state_dicts"]), [int(e) for e in obj["epochs"]]
    if not states or len(states) != len(epochs):
        raise ValueError(f"{len(states)} state_dicts but {len(epochs)} epochs")
    if sorted(set(epochs)) != epochs:
        raise ValueError("epochs must be distinct and increasing")
    arch = nanda_architecture(fields)
    checkpoints, config, notes = {}, None, ()
    for e, sd in zip(epochs, states):
        c, w, notes = from_column_layout(sd, arch)
        if config is not None and c != config:
            raise ValueError(f"the state dict at epoch {e} has another architecture than the first")
        config, checkpoints[e] = c, w
    check_nanda_shapes(fields, config)
    task, assumed, split = nanda_task(fields, config.p)
    losses = recorded_losses(obj)
    return Imported("arena", config, checkpoints[epochs[-1]], epochs[-1], task, assumed, split, checkpoints, losses, notes)


ARENA = Layout(
    name="arena",
    recognises="a dict with 'state_dicts' and 'epochs' (ARENA's saved runs; column-layout state dicts)",
    suffixes=TORCH_SUFFIXES,
    matches=_matches,
    load=_load,
)
