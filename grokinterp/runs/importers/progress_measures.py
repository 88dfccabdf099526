"""The progress-measures paper's own files (Nanda et al. 2023, their training code).

A file is a column-layout state dict (:mod:`.state_dicts`), bare or as ``{"model": state_dict,
"config": Config, "train_losses": [...], "test_losses": [...], "epoch": e}`` (intermediate saves carry
``train_loss`` / ``test_loss`` instead of the lists). Their ``Config`` (a dataclass, read as an inert
object, or a dict) gives p, the function (``fn_name``: add, subtract, x2xyy2), the activation
(``act_type`` ReLU / GeLU), ``use_ln`` and the split: ``random.seed(seed); random.shuffle`` of all p²
pairs (a-major), the first ``int(frac_train * p²)`` train — rebuilt exactly as
``ModularArithmetic(..., split="python_shuffle")``. Their attention is causal (the ``mask`` buffer).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional

from ...models import TransformerConfig
from ...tasks import ModularArithmetic
from .base import TORCH_SUFFIXES, Imported, Layout, check_keys, recorded_losses
from .config_fields import check_allowed_values, check_shape_fields
from .reading import fields_of
from .splits import python_shuffle_task
from .state_dicts import Architecture, column_layout, from_column_layout

__all__ = ["CONFIG_FIELDS", "PROGRESS_MEASURES", "PIZZA_MODEL_NAME", "nanda_architecture", "nanda_task"]

#: The fields of the progress-measures code's ``Config``.
CONFIG_FIELDS = (
    "lr", "weight_decay", "p", "d_model", "fn_name", "frac_train", "num_epochs", "save_models", "save_every",
    "stopping_thresh", "seed", "num_layers", "batch_style", "d_vocab", "n_ctx", "d_mlp", "num_heads", "d_head",
    "act_type", "device", "use_ln", "take_metrics_every_n_epochs",
)
_FN_NAMES = {"add": "add", "subtract": "sub", "x2xyy2": "x2+xy+y2"}
_ACTS = {"ReLU": "relu", "GeLU": "gelu"}
_FILE_KEYS = ("model", "config", "train_losses", "test_losses", "epoch", "train_loss", "test_loss")
#: Clock-vs-pizza model files are named ``model_<run id>.pt`` (their config: ``config_<run id>.json``).
PIZZA_MODEL_NAME = re.compile(r"^model_([A-Za-z0-9]+)\.pt$")


def nanda_architecture(fields: Optional[Mapping[str, Any]]) -> Architecture:
    """The :class:`Architecture` a progress-measures ``Config`` describes (causal, rate 1)."""
    fields = fields or {}
    unknown = sorted(set(fields) - set(CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"the config has fields {unknown} the progress-measures Config does not define; known: {list(CONFIG_FIELDS)}")
    check_allowed_values(fields, {"use_ln": (False,), "act_type": tuple(_ACTS), "fn_name": tuple(_FN_NAMES)}, "the config")
    return Architecture(act=_ACTS[fields.get("act_type", "ReLU")], p=fields.get("p"))


def check_nanda_shapes(fields: Optional[Mapping[str, Any]], config: TransformerConfig) -> None:
    """The ``Config``'s sizes (layers, d_model, heads, d_head, d_mlp, d_vocab, n_ctx) must be the weights'."""
    check_shape_fields(fields or {}, {
        "num_layers": config.n_layers, "d_model": config.d_model, "num_heads": config.n_heads, "d_head": config.d_head,
        "d_mlp": config.d_mlp, "d_vocab": config.d_vocab, "n_ctx": config.n_ctx,
    }, "the config")


def nanda_task(fields: Optional[Mapping[str, Any]], p: int) -> tuple[Optional[ModularArithmetic], bool, str]:
    """``(task, task_assumed, split)`` from a progress-measures ``Config``."""
    fields = fields or {}
    if fields.get("seed") is not None and fields.get("frac_train") is not None:
        op = _FN_NAMES[fields.get("fn_name", "add")]
        task = python_shuffle_task(p, op, fields["seed"], fields["frac_train"])
        return task, False, f"python_shuffle: random.seed({task.seed}); random.shuffle of all pairs; first {task.n_train} train"
    return None, True, "assumed: the file's config records no seed and frac_train"


def _state_dict(obj: Any) -> Any:
    return obj if column_layout(obj) else (obj.get("model") if isinstance(obj, Mapping) else None)


def _matches(path: Path, obj: Any) -> bool:
    return not PIZZA_MODEL_NAME.match(path.name) and column_layout(_state_dict(obj))


def _load(path: Path, obj: Any) -> Imported:
    bare = column_layout(obj)
    if not bare:
        check_keys(obj, _FILE_KEYS, ("model",), "the file")
    file = {} if bare else obj
    fields = fields_of(file.get("config"))
    config, weights, notes = from_column_layout(_state_dict(obj), nanda_architecture(fields))
    check_nanda_shapes(fields, config)
    task, assumed, split = nanda_task(fields, config.p)
    losses = recorded_losses(file)
    epoch = int(file["epoch"]) if file.get("epoch") is not None else None
    return Imported("progress_measures", config, weights, epoch, task, assumed, split, None, losses, notes)


PROGRESS_MEASURES = Layout(
    name="progress_measures",
    recognises="a column-layout state dict (embed.W_E (d_model, d_vocab), attn.W_O (d_model, heads*d_head)), bare or "
    "as 'model' with the progress-measures Config, in a file not named like a clock-vs-pizza model_<id>.pt",
    suffixes=TORCH_SUFFIXES,
    matches=_matches,
    load=_load,
)
