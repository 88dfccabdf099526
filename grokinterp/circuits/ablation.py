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

Every direction depends on the pair through its group sum ``s = x_a + sign x_b`` only
(:func:`~grokinterp.fourier.basis.sum_direction_values`), so the decomposition works on tables over
s: the logits summed per s (``S[s, c]``, with ``cnt[s]`` pairs) give every component
(``coef = U S`` on the full grid; a least-squares fit weighted by ``cnt`` on part of it), and the
restricted logits of a pair are a row of the (n, p) table of its s. The losses of all the
frequencies alone are computed together: restricted from the (K, n, p) tables, excluded from
``L - C_k[s]`` in blocks of rows and frequencies (at most :data:`ABLATION_BLOCK_ELEMENTS` float64
values at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..fourier.basis import BasisKind, FourierBasis, group_sums, op_sign, sum_direction_values
from ..fourier.grid import GridAnalysis, as_grid
from ..fourier.pairs import ObservedPairs, observed_pairs
from ..errors import GrokinterpError
from ..metrics import cross_entropy_f64
from ..tasks import ModularArithmetic
from ..models.weights import ModelLike

__all__ = [
    "ABLATION_BLOCK_ELEMENTS",
    "FrequencyAblation",
    "FrequencyDecomposition",
    "cross_entropy",
    "excluded_loss",
    "frequency_ablation",
    "restricted_loss",
]

Kind = Literal["restricted", "excluded"]
Split = Literal["train", "test", "all"]

#: Most float64 values an ablation forms at once (2^22 = 32 MiB): the excluded logits of all
#: frequencies, (K, rows, p), are built in blocks of rows and frequencies of this size.
ABLATION_BLOCK_ELEMENTS = 2**20


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

    With ``u_r(s)`` the unit directions (cos and sin of each frequency in ``freqs``) as functions of
    the group sum s and ``S[s, c] = Σ_{pairs with sum s} L[pair, c]`` over the ``observed`` pairs
    (default: the full group grid):

    * full grid: the constant is the mean ``L̄[c]`` and ``coef[r, c] = Σ_s u_r(s) S[s, c]`` (a
      projection: the directions are orthonormal there and orthogonal to the constant);
    * part of the grid: constant and coefficients of a direction set W minimise
      ``Σ_pairs (L[pair, c] - β_0[c] - Σ_{r∈W} β_r[c] u_r(s))²``, i.e. the least squares over s
      weighted by the pair count ``cnt[s]`` with target ``S[s] / cnt[s]``, fitted per set.

    A split row with group sum s then has component ``C_W[s, c] = Σ_{r∈W} β_r[c] u_r(s)``, restricted
    logits ``β_0 + C_W[s]`` and excluded logits ``L - C_W[s]``; rows with an operand outside the
    group (token 0 in the multiplicative basis) keep their logits."""

    def __init__(
        self, logits: Float[Tensor, "p_sq p"], B: FourierBasis, sign: int, freqs: list[int], inputs: Tensor,
        observed: ObservedPairs | None = None,
    ):
        p, n = B.p, B.n
        observed = observed if observed is not None else observed_pairs(B)
        coord = B.group_coordinate()
        inputs = torch.as_tensor(inputs).long().cpu()
        self.basis, self.n = B, n
        self.rows = inputs[:, 0] * p + inputs[:, 1]
        ca, cb = coord[inputs[:, 0]], coord[inputs[:, 1]]
        self.inside = (ca >= 0) & (cb >= 0)
        self.pos = torch.where(self.inside, ca * n + cb, torch.zeros_like(ca))  # group-grid position
        self.sums = group_sums(self.pos, n, sign)  # s of each split row (0 for rows outside the group)
        L = logits.detach().cpu()  # the direction tables are CPU float64; so are the fits
        self.L_split = L[self.rows].double()
        self.U, self.owner = sum_direction_values(B, freqs, sign)  # (m, n)
        self.freqs = sorted({int(k) for k in self.owner.tolist()})
        self.all_inside = bool(self.inside.all())
        self.full = observed.full
        obs_sums = group_sums(observed.positions, n, sign)
        self.S = torch.zeros(n, L.shape[1], dtype=torch.float64)  # (n, p): the observed logits summed per s
        block = max(1, ABLATION_BLOCK_ELEMENTS // L.shape[1])
        for rows, s in zip(observed.rows.split(block), obs_sums.split(block)):
            self.S.index_add_(0, s, L[rows].double())
        self.count = torch.bincount(obs_sums, minlength=n).double()  # pairs per group sum
        if self.full:
            self.mean = self.S.sum(0) / observed.count  # constant component per answer c: the grid mean
            self.coef = self.U @ self.S  # (m, p): each direction's component, per answer c
        else:
            seen = self.count > 0
            self._weight = self.count[seen].sqrt()[:, None]
            self._target = self.S[seen] / self.count[seen, None] * self._weight  # sqrt(cnt) · per-s mean
            self._U_seen = self.U[:, seen]
            self._fits: dict[tuple, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------------------ fits
    def _design(self, U_rows: Tensor) -> Tensor:
        """Weighted design ``sqrt(cnt[s]) [1, u_r(s)]`` over the sums seen; ``U_rows`` (..., r, n_seen)."""
        ones = torch.ones(*U_rows.shape[:-2], 1, U_rows.shape[-1], dtype=torch.float64)
        return torch.cat([ones, U_rows], dim=-2).transpose(-1, -2) * self._weight

    def _fit(self, which: Tensor) -> tuple[Tensor, Tensor]:
        """(constant (p,), coefficients (|which|, p)) of the selected directions and a constant,
        fitted to each answer's logits on the observed pairs."""
        if self.full:
            return self.mean, self.coef[which]
        key = tuple(which.tolist())
        if key not in self._fits:
            sol = torch.linalg.lstsq(self._design(self._U_seen[which]), self._target, driver="gelsd").solution
            self._fits[key] = (sol[0], sol[1:])
        return self._fits[key]

    def _frequency_index(self) -> Tensor:
        """(K, 2) direction rows of each frequency alone (cos, sin), ``m`` (a zero row) where the
        sine is dropped."""
        m, K = self.U.shape[0], len(self.freqs)
        slot = torch.searchsorted(torch.tensor(self.freqs, dtype=torch.long), self.owner)  # frequency of each row
        r = torch.arange(m)
        first = torch.full((K,), m, dtype=torch.long).scatter_reduce_(0, slot, r, "amin")
        last = torch.full((K,), -1, dtype=torch.long).scatter_reduce_(0, slot, r, "amax")
        return torch.stack([first, torch.where(last != first, last, m)], dim=1)

    def _frequency_fits(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Constant (K, p) and coefficients (K, 2, p) of each frequency alone (zero for a dropped row)."""
        K, p = index.shape[0], self.S.shape[1]
        if self.full:
            coef = torch.cat([self.coef, self.coef.new_zeros(1, p)])
            return self.mean.expand(K, p), coef[index]
        U = torch.cat([self._U_seen, self._U_seen.new_zeros(1, self._U_seen.shape[1])])
        design = self._design(U[index])  # (K, n_seen, 3); a dropped row is a zero column (gelsd: coefficient 0)
        block = max(1, ABLATION_BLOCK_ELEMENTS // max(1, self._target.numel()))
        sols = [torch.linalg.lstsq(d, self._target.expand(d.shape[0], -1, -1), driver="gelsd").solution for d in design.split(block)]
        sol = torch.cat(sols)
        return sol[:, 0], sol[:, 1:]

    # ----------------------------------------------------------------------- logits of one set
    def component(self, which: Tensor) -> Tensor:
        """Sum of the selected directions' components on the split rows: (N, p)."""
        table = self.U[which].T @ self._fit(which)[1]  # (n, p): C_W[s]
        return table[self.sums] * self.inside[:, None]

    def restricted(self, which: Tensor) -> Tensor:
        const, coef = self._fit(which)
        kept = (const[None, :] + self.U[which].T @ coef)[self.sums]
        return kept if self.all_inside else torch.where(self.inside[:, None], kept, self.L_split)

    def excluded(self, which: Tensor) -> Tensor:
        return self.L_split - self.component(which)

    # ------------------------------------------------------------------------------ losses
    def losses(self, labels: Int[Tensor, " N"], kind: Kind, per_frequency: bool = True) -> tuple[float, dict[int, float]]:
        """Cross-entropy (float64) of the restricted or excluded logits on the split rows, for all
        the frequencies together and, with ``per_frequency``, for each alone; the frequencies alone
        in one batch (see the module docstring)."""
        if kind not in ("restricted", "excluded"):
            raise GrokinterpError(f"kind must be 'restricted' or 'excluded', got {kind!r}")
        labels = torch.as_tensor(labels).long().cpu()
        if labels.shape != self.rows.shape:
            raise GrokinterpError(f"expected {self.rows.numel()} labels, one per split row, got shape {tuple(labels.shape)}")
        everything = torch.arange(self.U.shape[0])
        const, coef = self._fit(everything)
        inside = self.inside
        if self.all_inside:
            s_in, y_in, L_in = self.sums, labels, self.L_split
        else:
            s_in, y_in, L_in = self.sums[inside], labels[inside], self.L_split[inside]
        L_out, y_out = self.L_split[~inside], labels[~inside]
        outside = float((L_out.logsumexp(-1) - L_out.gather(-1, y_out[:, None])[:, 0]).sum()) if len(y_out) else 0.0
        N = self.rows.numel()

        def sums(const: Tensor, components: Tensor) -> Tensor:  # (K, p), (K, n, p) -> (K,) summed row losses
            if kind == "restricted":
                return _restricted_sums(const[:, None, :] + components, s_in, y_in)
            return _excluded_sums(L_in, s_in, y_in, components)

        loss = (float(sums(const[None], (self.U.T @ coef)[None])[0]) + outside) / N
        if not (per_frequency and self.freqs):
            return loss, {}
        index = self._frequency_index()
        k_const, k_coef = self._frequency_fits(index)
        U = torch.cat([self.U, self.U.new_zeros(1, self.n)])  # row m: the dropped sine
        per = []
        block = max(1, ABLATION_BLOCK_ELEMENTS // (self.n * self.S.shape[1]))  # frequencies per (κ, n, p) table
        for k0 in range(0, len(self.freqs), block):
            i = slice(k0, k0 + block)
            components = torch.einsum("kjs,kjc->ksc", U[index[i]], k_coef[i])  # C_k[s, c] = Σ_j u_kj(s) β_kj[c]
            per.append(sums(k_const[i], components))
        per = torch.cat(per)
        return loss, {k: (float(per[i]) + outside) / N for i, k in enumerate(self.freqs)}


def _restricted_sums(tables: Float[Tensor, "K n p"], sums: Tensor, labels: Tensor) -> Float[Tensor, " K"]:
    """``Σ_rows (logsumexp_c T_k[s, c] - T_k[s, y])`` over rows with group sum s and label y, for each
    table ``T_k`` over s: the log-sum-exp once per s, weighted by the rows with that s."""
    n, p = tables.shape[1], tables.shape[2]
    rows_per_s = torch.bincount(sums, minlength=n).double()
    lse = torch.logsumexp(tables, dim=-1)  # (K, n)
    picked = tables.reshape(tables.shape[0], n * p)[:, sums * p + labels]  # (K, rows)
    return lse @ rows_per_s - picked.sum(1)


def _excluded_sums(L: Float[Tensor, "N p"], sums: Tensor, labels: Tensor, components: Float[Tensor, "K n p"]) -> Float[Tensor, " K"]:
    """``Σ_rows (logsumexp_c (L - C_k[s])[c] - (L - C_k[s])[y])`` for each component table ``C_k``
    over the group sum s, as matrix products.

    With ``α_i = max_c L[i, c]``, ``A[i, c] = exp(L[i, c] - α_i)``, ``β_ks = max_c -C_k[s, c]`` and
    ``E_k[s, c] = exp(-C_k[s, c] - β_ks)`` (every entry in (0, 1]),
    ``logsumexp_c (L[i] - C_k[s_i]) = α_i + β_{k s_i} + log Σ_c A[i, c] E_k[s_i, c]``: for the rows
    of one sum s the sums over c of all frequencies are one product ``A[rows of s] E[:, s]^T``, and the
    rows of all sums go through one batched product (rows padded per sum). No term of the sum
    cancels another, so it is as exact as the direct log-sum-exp; a sum below 1e-250 (logits and
    components apart by more than ~575 nats) is recomputed directly."""
    K, n, p = components.shape
    counts = torch.bincount(sums, minlength=n)
    order = torch.argsort(sums, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    s_sorted = sums[order]
    slot = torch.arange(len(sums)) - starts[s_sorted]  # place of each row among the rows of its sum
    width = int(counts.max()) if len(sums) else 0
    alpha = L.max(dim=-1).values
    A = torch.zeros(n, width, p, dtype=torch.float64)
    step = max(1, ABLATION_BLOCK_ELEMENTS // p)
    for r0 in range(0, len(order), step):  # filled in blocks of rows
        i = order[r0 : r0 + step]
        A[s_sorted[r0 : r0 + step], slot[r0 : r0 + step]] = torch.exp(L[i] - alpha[i, None])
    base = float((alpha - L.gather(-1, labels[:, None])[:, 0]).sum())  # Σ_i α_i - L[i, y_i]
    out = torch.empty(K, dtype=torch.float64)
    n_k = max(1, ABLATION_BLOCK_ELEMENTS // max(1, n * max(width, p)))
    for k0 in range(0, K, n_k):
        C = components[k0 : k0 + n_k]  # (κ, n, p)
        beta = (-C).max(dim=-1).values  # (κ, n)
        E = torch.exp(-C - beta[..., None])
        S = torch.bmm(A, E.permute(1, 2, 0))  # (n, width, κ): Σ_c A[i, c] E_k[s, c] for row i of sum s
        S = S[s_sorted, slot]  # (N, κ), rows in sorted order
        small = S < 1e-250
        log_S = S.log()
        if small.any():  # those rows' log-sum-exp directly
            rows, ks = torch.nonzero(small, as_tuple=True)
            X = L[order[rows]] - C[ks, s_sorted[rows]]
            log_S[rows, ks] = torch.logsumexp(X, dim=-1) - alpha[order[rows]] - beta[ks, s_sorted[rows]]
        picked_C = C.reshape(C.shape[0], n * p)[:, sums * p + labels].sum(1)  # Σ_i C_k[s_i, y_i]
        out[k0 : k0 + n_k] = base + beta @ counts.double() + log_S.sum(0) + picked_C
    return out


def _setup(model, task, freqs, basis) -> tuple[GridAnalysis, ModularArithmetic, FourierBasis, int, list[int]]:
    if task is None:
        raise GrokinterpError("restricted / excluded loss need the task (for its split and labels)")
    g = as_grid(model, task, basis)
    B = g.basis
    sign = op_sign(g.task.op)
    if freqs is None:
        freqs = g.key_frequencies()
    freqs = sorted({B.check_freq(k) for k in freqs})
    return g, g.task, B, sign, freqs


def _ablate(
    logits: Tensor, labels: Tensor, inputs: Tensor, B: FourierBasis, sign: int, freqs: list[int], kind: str,
    per_frequency: bool = True, split: str = "train", observed: ObservedPairs | None = None,
) -> FrequencyAblation:
    if kind not in ("restricted", "excluded"):
        raise GrokinterpError(f"kind must be 'restricted' or 'excluded', got {kind!r}")
    dec = FrequencyDecomposition(logits, B, sign, freqs, inputs, observed)
    loss, per = dec.losses(labels, kind, per_frequency)
    return FrequencyAblation(kind, freqs, loss, per, cross_entropy(dec.L_split, labels), split)


def frequency_ablation(
    model: ModelLike | GridAnalysis,
    task: ModularArithmetic,
    kind: Kind,
    freqs: list[int] | None = None,
    split: Split = "train",
    basis: BasisKind | FourierBasis | None = None,
) -> FrequencyAblation:
    """Restricted or excluded loss (see the module docstring): the components are taken over the
    task's pairs (projections on the full grid, least-squares fits on part of it); ``freqs`` default:
    the key frequencies. ``model`` may be a :class:`~grokinterp.fourier.grid.GridAnalysis` (its grid
    forward is reused)."""
    g, task, B, sign, freqs = _setup(model, task, freqs, basis)
    return _ablate(g.logits, task.labels(split), task.inputs(split), B, sign, freqs, kind, split=split,
                   observed=g.observed)


def restricted_loss(
    model: ModelLike | GridAnalysis,
    task: ModularArithmetic,
    freqs: list[int] | None = None,
    split: Split = "train",
    basis: BasisKind | FourierBasis | None = None,
) -> FrequencyAblation:
    """Loss with only the constant and the cos/sin(w_k(a+b)) components of the logits kept, for the
    frequencies together (``.loss``) and each alone (``.per_frequency``). Nanda et al. 2023, Sec. 5.1."""
    return frequency_ablation(model, task, "restricted", freqs, split, basis)


def excluded_loss(
    model: ModelLike | GridAnalysis,
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
