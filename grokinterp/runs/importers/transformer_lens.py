"""TransformerLens files: a HookedTransformer state dict, bare or in the grokking demo's ``.pth``.

The demo's file: ``{"model": state_dict, "config": HookedTransformerConfig, "checkpoints": [...],
"checkpoint_epochs": [...], "train_losses": [...], "test_losses": [...], "train_indices": ...,
"test_indices": ...}`` (any of the keys but ``model`` may be absent). The demo trains addition mod p
over all p² pairs (a-major) split by a seeded ``torch.randperm``, and stores the split's indices: the
task is rebuilt from ``train_indices`` exactly. A bare state dict says nothing of its task.

The config's fields that change the forward are checked (``normalization_type`` None, ``act_fn``
relu / gelu, ``attn_only``, ``positional_embedding_type``, ``parallel_attn_mlp``, ``gated_mlp``,
``final_rms``, ``n_key_value_heads``, ``attention_dir``, the attention scale) and its size fields
compared with the tensors; other fields (device, seed, ...) do not change the logits.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .base import TORCH_SUFFIXES, Imported, Layout, check_keys, recorded_losses
from .config_fields import attn_scale_ok, check_allowed_values, check_shape_fields
from .reading import fields_of
from .splits import stored_indices_task
from .state_dicts import Architecture, from_hooked_transformer, hooked_transformer_layout

__all__ = ["TRANSFORMER_LENS"]

_FILE_KEYS = ("model", "config", "checkpoints", "checkpoint_epochs", "train_losses", "test_losses", "train_indices", "test_indices")
_FORWARD_FIELDS = {
    "normalization_type": (None,),
    "act_fn": ("relu", "gelu"),
    "attn_only": (False,),
    "positional_embedding_type": ("standard",),
    "parallel_attn_mlp": (False,),
    "gated_mlp": (False,),
    "final_rms": (False,),
    "n_key_value_heads": (None,),
    "attention_dir": ("causal",),
}


def _matches(path: Path, obj: Any) -> bool:
    if hooked_transformer_layout(obj):
        return True
    return isinstance(obj, Mapping) and hooked_transformer_layout(obj.get("model"))


def _load(path: Path, obj: Any) -> Imported:
    bare = hooked_transformer_layout(obj)
    if not bare:
        check_keys(obj, _FILE_KEYS, ("model",), "the file")
    file = {} if bare else obj
    fields = fields_of(file.get("config")) or {}
    check_allowed_values(fields, _FORWARD_FIELDS, "the config")
    arch = Architecture(act=fields.get("act_fn", "relu"))
    config, weights, notes = from_hooked_transformer(obj if bare else file["model"], arch)
    problem = attn_scale_ok(fields, config.d_head)
    if problem:
        raise ValueError(f"the config's {problem}")
    check_shape_fields(fields, {
        "n_layers": config.n_layers, "d_model": config.d_model, "n_heads": config.n_heads, "d_head": config.d_head,
        "d_mlp": config.d_mlp, "d_vocab": config.d_vocab, "n_ctx": config.n_ctx,
    }, "the config")
    checkpoints, epoch = None, None
    if file.get("checkpoints") is not None:
        states = list(file["checkpoints"])
        epochs = [int(e) for e in file.get("checkpoint_epochs", range(len(states)))]
        if len(epochs) != len(states) or not states:
            raise ValueError(f"{len(states)} checkpoints but {len(epochs)} checkpoint_epochs")
        checkpoints = {}
        for e, sd in zip(epochs, states):
            c, w, _ = from_hooked_transformer(sd, arch)
            if replace(c, freeze_biases=config.freeze_biases) != config:  # zero biases at init are still biases
                raise ValueError(f"the checkpoint at epoch {e} has another architecture than the final model")
            checkpoints[e] = w
        epoch = max(epochs)
    elif "checkpoint_epochs" in file:
        raise ValueError("checkpoint_epochs without checkpoints")
    if file.get("train_indices") is not None:
        task = stored_indices_task(config.p, "add", file["train_indices"], file.get("test_indices"))
        split, assumed = "the file's stored train_indices (TransformerLens demo: addition over all pairs)", False
    else:
        task, split, assumed = None, "assumed: the file records no task or split", True
    losses = recorded_losses(file)
    return Imported("transformer_lens", config, weights, epoch, task, assumed, split, checkpoints, losses, notes)


TRANSFORMER_LENS = Layout(
    name="transformer_lens",
    recognises="a HookedTransformer state dict (embed.W_E (d_vocab, d_model), attn.W_O (heads, d_head, d_model)), "
    "bare or as 'model' in a TransformerLens grokking-demo file",
    suffixes=TORCH_SUFFIXES,
    matches=_matches,
    load=_load,
)
