"""Scalar measures of a model's weights: Fourier sparsity (Gini) and weight norms.

Nanda et al. 2023 (Sec. 5.2) track the Gini coefficient of the norms of the Fourier components of
``W_E`` and of ``W_L = W_out W_U`` (both rise as the circuit forms and memorisation is cleaned up)
and the total sum of squared weights (it falls under weight decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from jaxtyping import Float
from torch import Tensor

from ..fourier.basis import BasisKind, FourierBasis, fft1d
from ..errors import GrokinterpError
from ..fourier.spectra import resolve_basis
from ..tasks import ModularArithmetic
from ..models.weights import ModelLike, as_weights

__all__ = ["FourierGini", "WeightNorms", "fourier_gini", "gini", "weight_norms"]


def gini(x: Float[Tensor, " n"]) -> float:
    """Gini coefficient of non-negative values: ``Σ_i (2i - n - 1) x_(i) / (n Σ x)`` over the sorted
    values (1-based i): 0 when all are equal, ``(n-1)/n`` when one value holds everything."""
    x = torch.as_tensor(x).double().flatten()
    if x.numel() == 0:
        raise GrokinterpError("gini needs at least one value")
    if (x < 0).any():
        raise GrokinterpError("gini expects non-negative values (norms)")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * i - n - 1) * x.sort().values).sum() / (n * total))


@dataclass(frozen=True)
class FourierGini:
    """Gini coefficients of the Fourier-component norms of ``W_E`` (over the input tokens) and of
    ``W_L`` (over the answers)."""

    embed: float
    logit: float


def _component_norms(matrix: Tensor, basis: FourierBasis) -> Tensor:
    # matrix (..., p) over tokens: the norm of each basis component across the leading axes
    return fft1d(matrix.double(), basis).square().sum(0).sqrt()


def fourier_gini(
    model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> FourierGini:
    """Gini of the norms of the n Fourier components (every basis row, constant included) of ``W_E``
    and of ``W_L`` (Nanda et al. 2023, Sec. 5.2)."""
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    return FourierGini(gini(_component_norms(w.W_E.T, B)), gini(_component_norms(w.W_L, B)))


@dataclass(frozen=True)
class WeightNorms:
    """``l1 = Σ|w|``, ``l2 = sqrt(Σ w²)`` and ``sum_sq = Σ w²`` over every parameter (biases included;
    masked weights count as 0)."""

    l1: float
    l2: float
    sum_sq: float


def weight_norms(model: ModelLike, mask: Mapping[str, Tensor] | None = None) -> WeightNorms:
    """L1 / L2 norms and the sum of squared weights of all parameters (after ``mask``)."""
    w = as_weights(model, mask)
    l1 = sum(float(t.double().abs().sum()) for t in w.tensors.values())
    sq = sum(float(t.double().square().sum()) for t in w.tensors.values())
    return WeightNorms(l1, math.sqrt(sq), sq)
