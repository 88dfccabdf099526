"""Masks: a dict of bool tensors named like the model's parameters (``True`` = kept).

A mask acts by multiplication in the forward pass (``W * mask``), so a pruned weight never changes
the function and its gradient is zero. Names are the state-dict names of the parameters
(:func:`parameters_of`; :func:`grokinterp.models.named_weights` gives the same names). A mask is
everyone's concept: the trainer applies it, the run store saves it, the tickets make it, the
analyses read it. Functions here take a module or a name -> tensor mapping, so they sit below the
models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping, Union

import torch
from torch import Tensor, nn

from .errors import CheckpointError, MaskError
from .safeio import read_safetensors, write_safetensors

__all__ = [
    "Mask",
    "apply_mask_",
    "check_mask",
    "compare_masks",
    "density",
    "layer_density",
    "load_mask",
    "mask_digest",
    "masked_weights",
    "parameters_of",
    "save_mask",
]

Mask = dict[str, Tensor]
Params = Union[nn.Module, Mapping[str, Tensor]]


def parameters_of(params: Params) -> dict[str, Tensor]:
    """The tensors a mask may name: a module's parameters under their state-dict names, or a
    mapping ``name -> tensor`` as it is."""
    if isinstance(params, nn.Module):
        return {n: p for n, p in params.state_dict(keep_vars=True).items() if isinstance(p, nn.Parameter)}
    if isinstance(params, Mapping):
        return dict(params)
    raise MaskError(f"expected a model or a dict of parameters, got {type(params).__name__}")


def check_mask(model: Params, mask: Mapping[str, Tensor]) -> Mask:
    """Validate a mask against a model (or its parameters); returns it as a dict of bool tensors.

    Raises :class:`MaskError` naming unknown names, shape mismatches or non-boolean entries.
    """
    if not isinstance(mask, Mapping):
        raise MaskError(f"a mask must be a dict of bool tensors named like the parameters, got {type(mask).__name__}")
    params = parameters_of(model)
    unknown = sorted(set(mask) - set(params))
    if unknown:
        raise MaskError(f"mask names {unknown} are not parameters of the model; expected names among {sorted(params)}")
    out: Mask = {}
    for name, m in mask.items():
        if not isinstance(m, Tensor):
            raise MaskError(f"mask entry {name!r} must be a tensor, got {type(m).__name__}")
        if tuple(m.shape) != tuple(params[name].shape):
            raise MaskError(
                f"mask entry {name!r} has shape {tuple(m.shape)}, expected {tuple(params[name].shape)} (the parameter's)"
            )
        if m.dtype != torch.bool:
            if m.is_floating_point() or not torch.isin(m.unique(), torch.tensor([0, 1], dtype=m.dtype)).all():
                raise MaskError(f"mask entry {name!r} must be boolean (or 0/1 integers), got dtype {m.dtype}")
            m = m.bool()
        out[name] = m
    return out


def masked_weights(model: Params, mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``{name: W * mask}`` for the masked parameters (differentiable in ``W``)."""
    params = parameters_of(model)
    return {name: params[name] * m for name, m in mask.items()}


@torch.no_grad()
def apply_mask_(model: Params, mask: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights in place (the function with the mask is unchanged)."""
    params = parameters_of(model)
    for name, m in mask.items():
        params[name].mul_(m)


def density(mask: Mapping[str, Tensor]) -> float:
    """Fraction of weights kept over all masked tensors (``1 - prune_ratio``)."""
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    return kept / total if total else 1.0


def layer_density(mask: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction kept per masked tensor."""
    return {name: float(m.float().mean()) for name, m in mask.items()}


def save_mask(mask: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, object] | None = None) -> Path:
    """Write a mask as safetensors (uint8 tensors), atomically."""
    tensors = {name: m.to(torch.uint8).contiguous() for name, m in mask.items()}
    meta = {"grokinterp_kind": "mask"}
    if metadata:
        meta["info"] = json.dumps(dict(metadata))
    return write_safetensors(tensors, path, meta)


def load_mask(path: str | Path) -> Mask:
    """Read a mask written by :func:`save_mask`."""
    tensors, meta = read_safetensors(path)
    if meta.get("grokinterp_kind") != "mask":
        raise CheckpointError(f"{path} is not a grokinterp mask file (metadata kind {meta.get('grokinterp_kind')!r})")
    for name, t in tensors.items():
        if t.dtype not in (torch.uint8, torch.bool) or (t.numel() and int(t.to(torch.uint8).max()) > 1):
            raise CheckpointError(f"{path}: mask entry {name!r} is not 0/1 (dtype {t.dtype}); expected a saved mask")
    if not tensors:
        raise CheckpointError(f"{path}: holds no mask entries")
    return {name: t.bool() for name, t in tensors.items()}


def mask_digest(mask: Mapping[str, Tensor]) -> str:
    """SHA-256 of a mask's names, shapes and kept entries (name order does not matter): the mask's
    part of a run's identity."""
    h = hashlib.sha256()
    for name in sorted(mask):
        m = mask[name].bool().contiguous()
        h.update(json.dumps([name, list(m.shape)]).encode())
        h.update(m.to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_pair(mask_a: Mapping[str, Tensor], mask_b: Mapping[str, Tensor]) -> None:
    if set(mask_a) != set(mask_b):
        raise MaskError(
            f"the two masks cover different tensors: only in the first {sorted(set(mask_a) - set(mask_b))}, "
            f"only in the second {sorted(set(mask_b) - set(mask_a))}; expected the same names"
        )
    for name in mask_a:
        if tuple(mask_a[name].shape) != tuple(mask_b[name].shape):
            raise MaskError(
                f"mask entry {name!r} has shape {tuple(mask_a[name].shape)} in the first mask and "
                f"{tuple(mask_b[name].shape)} in the second; expected equal shapes"
            )


def compare_masks(mask_a: Mapping[str, Tensor], mask_b: Mapping[str, Tensor]):
    """Per-tensor overlap of two masks over the same names, as a pandas DataFrame.

    One row per tensor plus a final row ``"overall"`` (counts pooled over every tensor). Columns:
    ``numel``, ``kept_a``, ``kept_b``, ``kept_both`` (``|A ∩ B|``), ``kept_either`` (``|A ∪ B|``),
    ``changed`` (entries that differ, ``|A △ B|``) and ``jaccard_distance`` = ``1 - |A ∩ B| / |A ∪ B|``
    over the kept sets (0 when both keep nothing).
    """
    import pandas as pd

    _check_pair(mask_a, mask_b)
    rows = []
    for name in mask_a:
        a, b = mask_a[name].bool(), mask_b[name].bool()
        rows.append(
            {
                "name": name,
                "numel": a.numel(),
                "kept_a": int(a.sum()),
                "kept_b": int(b.sum()),
                "kept_both": int((a & b).sum()),
                "kept_either": int((a | b).sum()),
            }
        )
    total = {"name": "overall", **{k: sum(r[k] for r in rows) for k in ("numel", "kept_a", "kept_b", "kept_both", "kept_either")}}
    rows.append(total)
    for r in rows:
        r["changed"] = r["kept_either"] - r["kept_both"]
        r["jaccard_distance"] = 1.0 - r["kept_both"] / r["kept_either"] if r["kept_either"] else 0.0
    return pd.DataFrame(rows).set_index("name")
