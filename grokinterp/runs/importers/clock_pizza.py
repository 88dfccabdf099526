"""Clock-vs-pizza models (Zhong, Liu, Tegmark, Andreas 2023, "The Clock and the Pizza"):
``model_<id>.pt`` (a column-layout state dict, :mod:`.state_dicts`, saved on a GPU) with the
``config_<id>.json`` it was trained with in the same folder.

Their transformer: tokens ``[a, b]`` (``diff_vocab``: ``b`` is the token ``C + b``), learned positional
embeddings, per layer an attention of rate ``r = attn_coeff``, ``A = r * softmax(q k^T / sqrt(d_head))
+ (1 - r)``, with no causal mask (their ``mask`` buffer is never applied, whatever the config's
``attention_dir`` says), an MLP of width 4·d_model with biases (ReLU or GeLU), no LayerNorm, logits
``x W_U`` at the last position. Imported as a bidirectional :class:`~grokinterp.models.TransformerConfig`
with ``attn_rate = attn_coeff``.

The config's ``funcs`` is read as text, never evaluated: ``lambda x: (x[0]+x[1])%C`` (also ``-`` and
``*``) gives the op. The config records the train fraction ``frac`` but not how the pairs were drawn,
so the split is marked assumed. ``eqn_sign`` (an appended ``=`` token) is refused: where that token
sits in their vocabulary is not recorded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .base import Imported, Layout, check_keys
from .progress_measures import PIZZA_MODEL_NAME
from .reading import read_json_file
from .splits import assumed_task
from .state_dicts import Architecture, column_layout, from_column_layout

__all__ = ["CLOCK_PIZZA"]

_CONFIG_KEYS = ("name", "funcs", "func", "C", "n_heads", "d_model", "d_head", "n_layers", "attention_dir", "act_fn", "epoch",
                "batch_size", "lr", "weight_decay", "frac", "attn_coeff", "runid", "diff_vocab", "eqn_sign")
_REQUIRED = ("C", "n_heads", "d_model", "attn_coeff", "funcs")
_ACTS = {"ReLU": "relu", "relu": "relu", "GeLU": "gelu", "gelu": "gelu"}
# their code applies no mask, so these values (their spelling "casual" included) all mean the same forward
_ATTENTION_DIRS = ("casual", "causal", "bidirectional")
_FUNC = re.compile(r"^lambda\s+x\s*:\s*\(\s*x\[0\]\s*([+\-*])\s*x\[1\]\s*\)\s*%\s*(\d+)$")
_OPS = {"+": "add", "-": "sub", "*": "mul"}


def _matches(path: Path, obj: Any) -> bool:
    return bool(PIZZA_MODEL_NAME.match(path.name)) and column_layout(obj)


def _flag(cfg: dict, name: str) -> bool:
    value = cfg.get(name, False)
    if value not in (0, 1, False, True):
        raise ValueError(f"config {name}={value!r}; expected true/false (or 0/1)")
    return bool(value)


def _load(path: Path, obj: Any) -> Imported:
    run_id = PIZZA_MODEL_NAME.match(path.name).group(1)
    cfg_path = path.with_name(f"config_{run_id}.json")
    if not cfg_path.is_file():
        raise ValueError(f"its config {cfg_path.name} is not beside it; a clock-vs-pizza model is read with its config")
    cfg = read_json_file(cfg_path)
    check_keys(cfg, _CONFIG_KEYS, _REQUIRED, cfg_path.name)
    if cfg.get("runid", run_id) != run_id:
        raise ValueError(f"{cfg_path.name} is for run {cfg['runid']!r}, the model file for {run_id!r}")
    if cfg.get("func") is not None:
        raise ValueError(f"{cfg_path.name} sets func={cfg['func']!r}; only the 'funcs' lambda text is supported")
    if _flag(cfg, "eqn_sign"):
        raise ValueError("eqn_sign=true (an appended = token) is not supported: its token id is not recorded")
    m = _FUNC.match(str(cfg["funcs"]).strip())
    C = cfg["C"]
    if m is None or int(m.group(2)) != C:
        raise ValueError(f"funcs {cfg['funcs']!r} is not one of 'lambda x: (x[0]+x[1])%C' (or -, *) with C={C}")
    if cfg.get("act_fn", "ReLU") not in _ACTS:
        raise ValueError(f"act_fn {cfg.get('act_fn')!r}; supported: {sorted(_ACTS)}")
    if cfg.get("attention_dir", "casual") not in _ATTENTION_DIRS:
        raise ValueError(f"attention_dir {cfg.get('attention_dir')!r}; supported: {list(_ATTENTION_DIRS)}")
    rate = cfg["attn_coeff"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"attn_coeff {rate!r}; expected a number in [0, 1]")
    arch = Architecture(act=_ACTS[cfg.get("act_fn", "ReLU")], attn_rate=float(rate), attention_dir="bidirectional", p=C,
                        diff_vocab=_flag(cfg, "diff_vocab"), eq_token=False, use_mask=False)
    config, weights, notes = from_column_layout(obj, arch)
    for name, value in (("n_heads", config.n_heads), ("d_model", config.d_model), ("n_layers", config.n_layers),
                        ("d_head", config.d_head)):
        if name in cfg and cfg[name] != value:
            raise ValueError(f"{cfg_path.name} says {name}={cfg[name]!r} but the weights have {value}")
    task = assumed_task(C, _OPS[m.group(1)], cfg.get("frac"))
    split = (f"assumed: {cfg_path.name} records frac={cfg.get('frac')} but not how the pairs were drawn "
             "(grokinterp's seed-0 permutation is used)")
    epoch = int(cfg["epoch"]) if isinstance(cfg.get("epoch"), int) else None
    return Imported("clock_pizza", config, weights, epoch, task, True, split, None, {}, notes)


CLOCK_PIZZA = Layout(
    name="clock_pizza",
    recognises="a column-layout state dict in a file named model_<id>.pt with config_<id>.json beside it",
    suffixes=(".pt",),
    matches=_matches,
    load=_load,
)
