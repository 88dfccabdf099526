"""grokinterp's own checkpoint file: a ``.safetensors`` whose metadata has ``grokinterp_kind =
"checkpoint"``, the model config (``model``, JSON), optionally the task (``task``) and ``epoch``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ...models import config_from_dict
from ...tasks import task_from_dict
from .base import Imported, Layout

__all__ = ["GROKINTERP"]


def _meta_json(meta: Mapping[str, str], key: str):
    try:
        return json.loads(meta[key])
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"checkpoint metadata lacks a valid {key!r} entry") from None


def _matches(path: Path, obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 2 and obj[1].get("grokinterp_kind") == "checkpoint"


def _load(path: Path, obj: Any) -> Imported:
    tensors, meta = obj
    config = config_from_dict(_meta_json(meta, "model"))
    task = task_from_dict(_meta_json(meta, "task")) if "task" in meta else None
    epoch = int(meta["epoch"]) if "epoch" in meta else None
    split = "recorded in the checkpoint's task" if task is not None else "assumed: the checkpoint records no task"
    return Imported("grokinterp", config, tensors, epoch, task, task is None, split)


GROKINTERP = Layout(
    name="grokinterp",
    recognises="a .safetensors file written by grokinterp (metadata grokinterp_kind='checkpoint')",
    suffixes=(".safetensors",),
    matches=_matches,
    load=_load,
)
