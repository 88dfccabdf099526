"""Restricted and excluded loss (Nanda et al. 2023, Sec. 5.1), on the train split.

Over the task's pairs, for each answer c, the logits are split into a constant, the components along
the grids cos(w_k(a+b)), sin(w_k(a+b)) of the chosen frequencies, and the rest. The *restricted*
logits keep the constant and those components only; the *excluded* logits remove exactly those
components. The loss is then the cross-entropy on the train split. A model that computes with the
frequencies has restricted loss close to (often below) its loss, and a large excluded loss.

On the full (a, b) grid (``pairs="all"``) the directions are orthonormal and the components are
projections, the constant the mean over the grid, as in the paper. On a task with part of the grid
(``pairs="a>b"`` / ``"a>=b"``) the directions are not orthogonal there: constant and components are a
least-squares fit of each answer's logits on the task's pairs, so the logits on pairs outside the task
play no part.

``sub`` / ``div`` use a - b; ``mul`` / ``div`` work in the multiplicative basis, where the
decomposition acts on the pairs with no zero operand (pairs with a 0 keep their logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..fourier.basis import BasisKind, FourierBasis, op_sign, sum_direction_table
from ..fourier.pairs import ObservedPairs, observed_pairs
from ..errors import GrokinterpError
from ..metrics import cross_entropy_f64
from ..fourier.spectra import key_frequencies, resolve_basis
from ..tasks import ModularArithmetic
from ..models.weights import ModelLike, ModelWeights, as_weights, check_task, grid_activations

__all__ = [
    "FrequencyAblation",
    "FrequencyDecomposition",
    "cross_entropy",
    "excluded_loss",
    "frequency_ablation",
    "restricted_loss",
]

Kind = Literal["restricted", "excluded"]
Split = Literal["train", "test", "all"]


@dataclass(frozen=True)
class FrequencyAblation:
    """Loss after keeping (restricted) or removing (excluded) frequency components of the logits.

    ``loss``: all ``freqs`` together; ``per_frequency[k]``: frequency k alone (restricted: constant
    plus k only; excluded: only k removed); ``full_loss``: the unablated loss on the same split.
    """

    kind: Kind
    freqs: list[int]
    loss: float
    per_frequency: dict[int, float] = field(default_factory=dict)
    full_loss: float = float("nan")
    split: str = "train"


class FrequencyDecomposition:
    """Components of grid logits along the frequency directions, for the rows of one split.

    ``observed``: the task's pairs the components are taken over (default the full group grid, where
    they are projections; on part of the grid they are least-squares fits, with the constant fitted
    alongside)."""

    def __init__(
        self, logits: Float[Tensor, "p_sq p"], B: FourierBasis, sign: int, freqs: list[int], inputs: Tensor,
        observed: ObservedPairs | None = None,
    ):
        p, n = B.p, B.n
        observed = observed if observed is not None else observed_pairs(B)
        coord = B.group_coordinate()
        self.rows = inputs[:, 0] * p + inputs[:, 1]
        ca, cb = coord[inputs[:, 0]], coord[inputs[:, 1]]
        self.inside = (ca >= 0) & (cb >= 0)
        self.pos = torch.where(self.inside, ca * n + cb, torch.zeros_like(ca))  # group-grid position
        L = logits.detach().double().cpu()  # the direction tables are CPU float64; so are the fits
        self.L_split = L[self.rows]
        self.D, self.owner = sum_direction_table(B, freqs, sign)  # (m, n²)
        self.all_inside = bool(self.inside.all())
        self.D_split = self.D[:, self.pos] * self.inside  # (m, N): the directions on the split's rows
        self.full = observed.full
        L_obs = L[observed.rows]
        if self.full:
            self.mean = L_obs.mean(0)  # constant component per answer c
            self.coef = self.D @ L_obs  # (m, p): each direction's component, per answer c
        else:
            self.L_obs, self.D_obs = L_obs, self.D[:, observed.positions]  # (M, p), (m, M)
            self._fits: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _fit(self, which: Tensor) -> tuple[Tensor, Tensor]:
        """(constant (p,), coefficients (|which|, p)) of the selected directions and a constant,
        fitted to each answer's logits on the observed pairs."""
        if self.full:
            return self.mean, self.coef[which]
        key = tuple(which.tolist())
        if key not in self._fits:
            X = torch.cat([torch.ones(self.D_obs.shape[1], 1, dtype=torch.float64), self.D_obs[which].T], dim=1)
            sol = torch.linalg.lstsq(X, self.L_obs).solution
            self._fits[key] = (sol[0], sol[1:])
        return self._fits[key]

    def component(self, which: Tensor) -> Tensor:
        """Sum of the selected directions' components on the split rows: (N, p)."""
        return self.D_split[which].T @ self._fit(which)[1]

    def restricted(self, which: Tensor) -> Tensor:
        kept = self._fit(which)[0][None, :] + self.component(which)
        return kept if self.all_inside else torch.where(self.inside[:, None], kept, self.L_split)

    def excluded(self, which: Tensor) -> Tensor:
        return self.L_split - self.component(which)


def _setup(model, task, freqs, basis) -> tuple[ModelWeights, ModularArithmetic, FourierBasis, int, list[int]]:
    w = as_weights(model)
    if task is None:
        raise GrokinterpError("restricted / excluded loss need the task (for its split and labels)")
    task = check_task(w, task)
    B = resolve_basis(w, task, basis)
    sign = op_sign(task.op)
    if freqs is None:
        freqs = key_frequencies(w, task, basis=B)
    freqs = sorted({B.check_freq(k) for k in freqs})
    return w, task, B, sign, freqs


def _ablate(
    logits: Tensor, labels: Tensor, inputs: Tensor, B: FourierBasis, sign: int, freqs: list[int], kind: str,
    per_frequency: bool = True, split: str = "train", observed: ObservedPairs | None = None,
) -> FrequencyAblation:
    if kind not in ("restricted", "excluded"):
        raise GrokinterpError(f"kind must be 'restricted' or 'excluded', got {kind!r}")
    dec = FrequencyDecomposition(logits, B, sign, freqs, inputs, observed)
    op = dec.restricted if kind == "restricted" else dec.excluded
    everything = torch.ones_like(dec.owner, dtype=torch.bool)
    per = {}
    if per_frequency:
        per = {k: cross_entropy(op(dec.owner == k), labels) for k in freqs}
    return FrequencyAblation(kind, freqs, cross_entropy(op(everything), labels), per, cross_entropy(dec.L_split, labels), split)


def frequency_ablation(
    model: ModelLike,
    task: ModularArithmetic,
    kind: Kind,
    freqs: list[int] | None = None,
    split: Split = "train",
    basis: BasisKind | FourierBasis | None = None,
) -> FrequencyAblation:
    """Restricted or excluded loss (see the module docstring): the components are taken over the
    task's pairs (projections on the full grid, least-squares fits on part of it); ``freqs`` default:
    the key frequencies."""
    w, task, B, sign, freqs = _setup(model, task, freqs, basis)
    logits = grid_activations(w).logits
    return _ablate(logits, task.labels(split), task.inputs(split), B, sign, freqs, kind, split=split,
                   observed=observed_pairs(B, task))


def restricted_loss(
    model: ModelLike,
    task: ModularArithmetic,
    freqs: list[int] | None = None,
    split: Split = "train",
    basis: BasisKind | FourierBasis | None = None,
) -> FrequencyAblation:
    """Loss with only the constant and the cos/sin(w_k(a+b)) components of the logits kept, for the
    frequencies together (``.loss``) and each alone (``.per_frequency``). Nanda et al. 2023, Sec. 5.1."""
    return frequency_ablation(model, task, "restricted", freqs, split, basis)


def excluded_loss(
    model: ModelLike,
    task: ModularArithmetic,
    freqs: list[int] | None = None,
    split: Split = "train",
    basis: BasisKind | FourierBasis | None = None,
) -> FrequencyAblation:
    """Loss with the cos/sin(w_k(a+b)) components of the logits removed, for the frequencies together
    (``.loss``) and each alone (``.per_frequency``). Nanda et al. 2023, Sec. 5.1."""
    return frequency_ablation(model, task, "excluded", freqs, split, basis)


def cross_entropy(logits: Tensor, labels: Tensor) -> float:
    """:func:`grokinterp.metrics.cross_entropy_f64` as a Python float."""
    return float(cross_entropy_f64(logits, labels))
