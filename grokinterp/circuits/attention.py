"""Attention of a modular-arithmetic transformer from the answer position (Nanda et al. 2023, Sec. 4.1).

In the grokked one-layer transformer each head, read from the ``=`` position, splits its attention
between ``a`` and ``b``, and how it splits is itself periodic in (a, b) at a key frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from ..fourier.basis import BasisKind, FourierBasis, fft2d
from ..errors import GrokinterpError
from ..fourier.grid import GridAnalysis, as_grid
from ..fourier.spectra import frequency_fractions, pair_frequency_fractions
from ..tasks import ModularArithmetic
from ..models.weights import ModelLike

__all__ = ["AttentionSummary", "attention_summary"]


@dataclass(frozen=True)
class AttentionSummary:
    """Attention from the answer (last) position over the task's pairs, for one layer.

    ``mean`` (heads, n_ctx): mean attention to each position (a, b, and ``=`` when present) over the
    task's pairs; ``to_a`` / ``to_b`` (heads, p, p): attention to a / b for every pair, indexed
    ``[a, b]``, NaN on pairs outside the task; ``fractions`` (heads, f): fraction of the centred
    ``to_a`` variance over the task's pairs explained by each frequency's 2D terms (column 0 is 0; a
    least-squares fit on part of the grid); ``frequency`` / ``fraction`` (heads,): the dominant one and
    its share.
    """

    layer: int
    mean: Float[Tensor, "heads n_ctx"]
    to_a: Float[Tensor, "heads p p"]
    to_b: Float[Tensor, "heads p p"]
    fractions: Float[Tensor, "heads f"]
    frequency: Int[Tensor, " heads"]
    fraction: Float[Tensor, " heads"]
    basis: FourierBasis


def attention_summary(
    model: ModelLike | GridAnalysis,
    task: ModularArithmetic | None = None,
    layer: int | None = None,
    basis: BasisKind | FourierBasis | None = None,
) -> AttentionSummary:
    """Per-head attention from the answer position to a and b over the task's pairs (the full grid
    without a task), and the spectrum of the attention to a (``layer`` default: the last).
    ``model`` may be a :class:`~grokinterp.fourier.grid.GridAnalysis` (its grid forward is reused)."""
    g = as_grid(model, task, basis)
    w = g.weights
    if w.kind != "transformer":
        raise GrokinterpError("attention_summary needs a transformer; the HookedMLP has no attention")
    n_layers = w.config.n_layers
    layer = n_layers - 1 if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise GrokinterpError(f"layer must be an integer in [0, {n_layers}), got {layer!r}")
    B, task, observed = g.basis, g.task, g.observed
    pattern = g.activations.pattern[:, layer]  # (p², heads, n_ctx)
    if observed.full:
        grid = rearrange(pattern, "(a b) h s -> s a b h", a=w.p)
        coeffs = fft2d(grid[0].double(), B)
        coeffs[0, 0] = 0.0
        fractions, total = frequency_fractions(coeffs, B)
        mean = pattern.mean(0)
    else:
        fractions, total = pair_frequency_fractions(pattern[:, :, 0], observed)
        rows = task.all_pairs[:, 0] * w.p + task.all_pairs[:, 1]
        mean = pattern[rows].mean(0)
        outside = torch.ones(w.p * w.p, dtype=torch.bool)
        outside[rows] = False
        grid = rearrange(pattern.masked_fill(outside[:, None, None], float("nan")), "(a b) h s -> s a b h", a=w.p)
    fraction, freq = fractions.max(dim=1)
    flat = total <= 1e-12
    freq = torch.where(flat, torch.zeros_like(freq), freq)
    fraction = torch.where(flat, torch.zeros_like(fraction), fraction)
    return AttentionSummary(
        layer=layer,
        mean=mean,
        to_a=rearrange(grid[0], "a b h -> h a b"),
        to_b=rearrange(grid[1], "a b h -> h a b"),
        fractions=fractions.float(),
        frequency=freq,
        fraction=fraction.float(),
        basis=B,
    )
