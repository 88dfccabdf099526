"""Importers for transformer checkpoints saved before grokinterp.

Two state-dict layouts are understood (detected from the tensor shapes):

* **TransformerLens HookedTransformer** (``.pth`` of the TransformerLens grokking demo:
  ``{"model": state_dict, "checkpoints": [...], "checkpoint_epochs": [...], "train_losses": ...,
  "test_losses": ..., "train_indices": ..., "test_indices": ...}``): ``embed.W_E`` (d_vocab, d_model),
  ``blocks.0.attn.W_Q`` (n_heads, d_model, d_head), ``blocks.0.attn.W_O`` (n_heads, d_head, d_model),
  ``blocks.0.mlp.W_in`` (d_model, d_mlp), ``unembed.W_U`` (d_model, d_vocab_out), biases ``b_*``.
  Converted with TransformerLens's own ``convert_tl_checkpoint``.
* **Progress-measures paper** (Nanda et al. 2023): ``embed.W_E`` (d_model, d_vocab),
  ``pos_embed.W_pos`` (n_ctx, d_model), ``blocks.0.attn.W_Q/W_K/W_V`` (n_heads, d_head, d_model),
  ``blocks.0.attn.W_O`` (d_model, n_heads * d_head), ``blocks.0.mlp.W_in`` (d_mlp, d_model),
  ``b_in`` (d_mlp), ``W_out`` (d_model, d_mlp), ``b_out`` (d_model), ``unembed.W_U`` (d_model, d_vocab).

Either becomes a grokinterp transformer with the same logits over the p answers (an output column
for the ``=`` token, present when d_vocab_out = p + 1, is dropped: it is never a correct answer).

Files are read with ``torch.load(weights_only=True)``. A pickled config object (the demo saves its
``HookedTransformerConfig``) is rebuilt as an inert attribute bag: no code from the file runs.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from einops import rearrange
from torch import Tensor

from ..errors import CheckpointError, GrokinterpError
from ..metrics import evaluate
from ..models import Model, TransformerConfig, answer_logits, convert_hooked_transformer_state, make_transformer, named_weights
from ..tasks import ModularArithmetic
from .store import load_weights

__all__ = ["LEGACY_SUFFIXES", "convert_legacy_state_dict", "load_legacy", "load_legacy_run", "read_legacy_file"]

LEGACY_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class _InertObject:
    """Stand-in for a class a legacy file names: takes arguments and state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state


def read_legacy_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)``; globals the safe loader refuses (pickled config
    classes) are mapped to inert stand-ins. Corrupt files raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as e:  # torch raises RuntimeError / EOFError / zip errors on corrupt files
        raise CheckpointError(f"{path}: not a readable torch file (truncated or corrupt?): {e}") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        stand_ins = [(type(name.rsplit(".", 1)[-1], (_InertObject,), {}), name) for name in names]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln] or [str(e).splitlines()[0]]
        raise CheckpointError(
            f"{path}: refused by the safe loader (weights_only=True), which never runs code from a file: {lines[0]}"
        ) from None


def _state_dict_of(obj: Any, path: Path) -> Mapping[str, Tensor]:
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        return obj["model"]
    if isinstance(obj, Mapping) and "embed.W_E" in obj:
        return obj
    if isinstance(obj, Mapping) and obj.get("checkpoints"):
        return obj["checkpoints"][-1]
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{path}: no transformer state dict found (expected a state dict with 'embed.W_E', or a dict with a "
        f"'model' state dict); found {keys}"
    )


def _config_act(obj: Any) -> str:
    cfg = obj.get("config") if isinstance(obj, Mapping) else None
    act = getattr(cfg, "act_fn", None) if cfg is not None else None
    if isinstance(cfg, Mapping):
        act = cfg.get("act_fn", cfg.get("act_type"))
    act = (act or "relu").lower()
    return {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu"}.get(act, act)


def convert_legacy_state_dict(sd: Mapping[str, Tensor], act: str = "relu") -> tuple[TransformerConfig, dict]:
    """Detect the layout of a legacy state dict and return ``(config, weights)`` where ``weights``
    are named like :func:`grokinterp.models.named_weights` of a transformer built from ``config``."""
    sd = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    if any(re.search(r"(^|\.)ln", k) for k in sd):
        raise CheckpointError("LayerNorm weights found: only models without LayerNorm are supported")
    for key in ("embed.W_E", "unembed.W_U", "blocks.0.attn.W_O", "blocks.0.mlp.W_in"):
        if key not in sd:
            raise CheckpointError(f"legacy state dict lacks {key!r}; found keys {sorted(sd)[:10]}")
    n_layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    tl_layout = sd["blocks.0.attn.W_O"].ndim == 3
    W_U = sd["unembed.W_U"]
    if tl_layout:
        d_vocab, d_model = sd["embed.W_E"].shape
        n_heads, _, d_head = sd["blocks.0.attn.W_Q"].shape
        d_mlp = sd["blocks.0.mlp.W_in"].shape[1]
    else:
        d_model, d_vocab = sd["embed.W_E"].shape
        n_heads, d_head, _ = sd["blocks.0.attn.W_Q"].shape
        d_mlp = sd["blocks.0.mlp.W_in"].shape[0]
    d_out = W_U.shape[1]
    W_pos = sd.get("pos_embed.W_pos")
    n_ctx = W_pos.shape[0] if W_pos is not None else 2
    p = d_out - 1 if d_out == d_vocab and n_ctx == 3 else d_out
    eq_token = d_vocab == p + 1
    if not (d_vocab in (p, p + 1) and n_ctx >= (3 if eq_token else 2)):
        raise CheckpointError(
            f"legacy model shapes do not fit modular arithmetic: d_vocab={d_vocab}, d_vocab_out={d_out}, n_ctx={n_ctx}"
        )
    biases = [v for k, v in sd.items() if re.search(r"\.b_[A-Za-z]+$", k)]
    if "unembed.b_U" in sd and sd["unembed.b_U"].abs().max() > 0:
        raise CheckpointError("a non-zero unembedding bias b_U is not supported")
    config = TransformerConfig(
        p=p, n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head, d_mlp=d_mlp, act=act,
        eq_token=eq_token, pos_embed=W_pos is not None and bool(W_pos.abs().max() > 0),
        freeze_biases=all(float(b.abs().max()) == 0 for b in biases),
    )
    model = make_transformer(config)
    expected = named_weights(model)
    if tl_layout:
        tl_sd = dict(sd)
        if W_pos is None:
            tl_sd["pos_embed.W_pos"] = torch.zeros(config.n_ctx, d_model)
        tl_sd["pos_embed.W_pos"] = tl_sd["pos_embed.W_pos"][: config.n_ctx]
        tl_sd["unembed.W_U"] = W_U[:, :p]
        tl_sd.pop("unembed.b_U", None)
        try:
            out = convert_hooked_transformer_state(tl_sd, model)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"cannot convert the HookedTransformer state dict: {e}") from None
    else:
        out = {
            "embed.weight": sd["embed.W_E"].T,
            "pos_embed.weight": (W_pos if W_pos is not None else torch.zeros(config.n_ctx, d_model))[: config.n_ctx],
            "unembed.weight": W_U[:, :p].T,
        }
        for i in range(n_layers):
            b = f"blocks.{i}."
            for x in "QKV":
                out[f"{b}attn.{x.lower()}.weight"] = rearrange(sd[f"{b}attn.W_{x}"], "h d m -> (h d) m")
            out[f"{b}attn.o.weight"] = sd[f"{b}attn.W_O"]
            out[f"{b}mlp.in.weight"] = sd[f"{b}mlp.W_in"]
            out[f"{b}mlp.out.weight"] = sd[f"{b}mlp.W_out"]
            for name, key, size in (("in", "b_in", d_mlp), ("out", "b_out", d_model)):
                out[f"{b}mlp.{name}.bias"] = sd.get(f"{b}mlp.{key}", torch.zeros(size))
            for x, size in (("q", n_heads * d_head), ("k", n_heads * d_head), ("v", n_heads * d_head), ("o", d_model)):
                out[f"{b}attn.{x}.bias"] = torch.zeros(size)
    for name, p in expected.items():  # state dicts saved without bias entries: the biases are zero
        if name.endswith(".bias") and name not in out:
            out[name] = torch.zeros(p.shape)
    weights = {k: v.detach().to(torch.float32).contiguous() for k, v in out.items() if k in expected}
    return config, weights


def load_legacy(path: str | Path) -> tuple[Model, dict]:
    """A legacy checkpoint file as ``(model, info)`` (the final ``model`` state when the file also
    holds a checkpoint list)."""
    path = Path(path)
    obj = read_legacy_file(path)
    try:
        config, weights = convert_legacy_state_dict(_state_dict_of(obj, path), _config_act(obj))
        model = load_weights(make_transformer(config), weights, path)
    except (CheckpointError, GrokinterpError) as e:
        message = str(e)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return model, {"format": "legacy", "epoch": None, "task": _legacy_task(obj, config.p), "path": str(path)}


def _legacy_task(obj: Any, p: int) -> ModularArithmetic | None:
    if not isinstance(obj, Mapping) or obj.get("train_indices") is None:
        return None
    idx = torch.as_tensor(obj["train_indices"]).reshape(-1).tolist()
    n = p * p
    if idx and max(idx) < n:
        return ModularArithmetic(p, "add", "all", frac_train=len(idx) / n, train_index=tuple(idx))
    return None


def load_legacy_run(path: str | Path) -> dict:
    """A legacy ``.pth`` with ``checkpoints`` and ``checkpoint_epochs``, as the fields of a
    :class:`~grokinterp.runs.Run`.

    The history has one row per checkpoint epoch: train/test loss as recorded in the file (when it
    has per-epoch lists) and train/test accuracy evaluated from the checkpoint (when the file's
    train indices define the split; the task is assumed to be addition over all p² pairs, as in
    the TransformerLens grokking demo).
    """
    path = Path(path)
    obj = read_legacy_file(path)
    if not isinstance(obj, Mapping) or not obj.get("checkpoints"):
        raise CheckpointError(f"{path}: holds no 'checkpoints' list; use load_checkpoint for a single state dict")
    act = _config_act(obj)
    epochs = [int(e) for e in obj.get("checkpoint_epochs", range(len(obj["checkpoints"])))]
    if len(epochs) != len(obj["checkpoints"]):
        raise CheckpointError(f"{path}: {len(obj['checkpoints'])} checkpoints but {len(epochs)} checkpoint_epochs")
    try:
        converted = [convert_legacy_state_dict(sd, act) for sd in obj["checkpoints"]]
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    config = converted[0][0]
    by_epoch = {e: w for e, (_, w) in zip(epochs, converted)}
    task = _legacy_task(obj, config.p)
    history = []
    model = make_transformer(config)
    for e in epochs:
        row: dict = {"epoch": e}
        for split in ("train", "test"):
            losses = obj.get(f"{split}_losses")
            if losses is not None and e < len(losses):
                row[f"{split}_loss"] = float(losses[e])
        if task is not None:
            load_weights(model, by_epoch[e], path)
            scores = evaluate(lambda x: answer_logits(model, x), task, named_weights(model))
            row.update({k: v for k, v in scores.items() if not k.endswith("_loss") or k not in row})
        history.append(row)
    record = {"model": {"kind": "transformer", **config.to_dict()}, "task": task.to_dict() if task else None,
              "legacy_file": str(path)}
    return dict(path=path, config=record, task=task, model_config=config, history=history,
                checkpoint_epochs=sorted(by_epoch), mask=None, _weights_at=lambda e: by_epoch[e])
