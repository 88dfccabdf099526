"""From scores to a mask: keep exactly ``round((1 - prune_ratio) * N)`` weights.

Every pruner in :mod:`grokinterp.tickets` ends here. ``prune_ratio`` is the fraction of weights
*removed* (the tickets paper's k); the density is ``1 - prune_ratio``.

Exact count: ``n_keep(N, r) = round((1 - r) * N)`` evaluated exactly on the decimal value of ``r``
(``r = 0.7, N = 10`` keeps 3, not 2 from the float error of ``1 - 0.7``), halves rounded to even
(Python's ``round``).

Tie-breaking (deterministic): weights are ranked by score, highest first; equal scores are ranked
by position — the tensor that comes first in the scores' order (the model's parameter order), then
the row-major index inside the tensor. So among equal scores the earliest weights are kept.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real
from typing import Literal, Mapping

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..errors import GrokinterpError, MaskError
from ..masks import Mask

__all__ = ["Scope", "check_prune_ratio", "mask_from_scores", "n_keep", "top_k_flat"]

Scope = Literal["global", "layer"]


def check_prune_ratio(prune_ratio: float) -> float:
    """``prune_ratio`` as a float in [0, 1), else a :class:`GrokinterpError`."""
    if isinstance(prune_ratio, bool) or not isinstance(prune_ratio, Real):
        raise GrokinterpError(
            f"prune_ratio must be a number in [0, 1) (the fraction of weights removed), got {prune_ratio!r}"
        )
    r = float(prune_ratio)
    if not (0.0 <= r < 1.0) or math.isnan(r):
        raise GrokinterpError(
            f"prune_ratio must lie in [0, 1) (the fraction of weights removed; density = 1 - prune_ratio), got {r}"
        )
    return r


def check_scope(scope: str) -> str:
    if scope not in ("global", "layer"):
        raise GrokinterpError(
            f"scope must be 'global' (one threshold over all pruned tensors) or 'layer' (each tensor keeps "
            f"the same fraction), got {scope!r}"
        )
    return scope


def n_keep(n: int, prune_ratio: float) -> int:
    """``round((1 - prune_ratio) * n)``, computed exactly on the decimal value of ``prune_ratio``."""
    r = Fraction(repr(check_prune_ratio(prune_ratio)))
    return int(round((1 - r) * int(n)))


def top_k_flat(scores: Float[Tensor, " n"], k: int) -> Bool[Tensor, " n"]:
    """Boolean vector keeping the ``k`` highest scores; ties go to the lower index."""
    if scores.ndim != 1:
        raise GrokinterpError(f"top_k_flat expects a flat score vector, got shape {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise GrokinterpError("scores contain NaN; expected finite numbers (or -inf for weights never kept)")
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[order[:k]] = True
    return keep


def mask_from_scores(
    scores: Mapping[str, Tensor], prune_ratio: float, scope: Scope = "global"
) -> Mask:
    """Keep the highest-scoring weights: ``round((1 - prune_ratio) * N)`` of them.

    ``scope="global"``: one ranking over all tensors together (``N`` = total count), so layers end up
    with different densities. ``scope="layer"``: each tensor keeps ``round((1 - prune_ratio) * n_i)``
    of its own ``n_i`` weights. Ties are broken by position (see the module docstring).
    Returns a bool mask with the same names and shapes as ``scores``.
    """
    check_scope(scope)
    prune_ratio = check_prune_ratio(prune_ratio)
    if not scores:
        raise MaskError("no tensors to prune: the score dict is empty (check `include`)")
    if scope == "layer":
        return {
            name: top_k_flat(s.detach().reshape(-1).double(), n_keep(s.numel(), prune_ratio)).reshape(s.shape)
            for name, s in scores.items()
        }
    flat = torch.cat([s.detach().reshape(-1).double().cpu() for s in scores.values()])
    keep = top_k_flat(flat, n_keep(flat.numel(), prune_ratio))
    out: Mask = {}
    start = 0
    for name, s in scores.items():
        out[name] = keep[start : start + s.numel()].reshape(s.shape).to(s.device)
        start += s.numel()
    return out
