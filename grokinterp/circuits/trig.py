"""Trig-identity checks of the Fourier multiplication algorithm (Nanda et al. 2023, Sec. 4–5).

The algorithm for ``c = a + b mod p`` at a key frequency ``w = 2πk/p``: the embeddings carry
cos(wa), sin(wa); the neurons compute products cos(wa)cos(wb) ... ; the MLP output holds
``cos(w(a+b))``, ``sin(w(a+b))``; the logits are ``cos(w(a+b-c)) = cos(w(a+b))cos(wc) +
sin(w(a+b))sin(wc)``. The checks measure, per key frequency, how much of each stage's variance those
terms explain, and fit the logits to ``Σ_k α_k cos(w_k(a+b-c))``.

In the multiplicative basis (mul / div) ``a, b, c`` are replaced by their discrete logs and only the
pairs and answers with no zero token are used; ``sub`` / ``div`` use ``a - b``.

Every quantity is taken over the task's pairs (:mod:`grokinterp.fourier.pairs`): the full grid for
``pairs="all"``, where the terms are orthogonal; for ``pairs="a>b"`` / ``"a>=b"`` the fits and plane
shares are least-squares projections over those pairs only (the cos/sin(w(a+b)) grids centred over
them, and the logits centred over them per answer as well as over c per pair), so the model's
outputs on pairs outside the task play no part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from ..fourier.basis import BasisKind, FourierBasis, group_sums, op_sign
from ..fourier.pairs import ObservedPairs, observed_pairs
from ..errors import GrokinterpError
from ..fourier.grid import GridAnalysis, as_grid
from ..fourier.spectra import CLUSTER_THRESHOLD, NeuronFrequencies, neuron_frequencies_in
from ..tasks import ModularArithmetic
from ..models.weights import Activations, ModelLike, ModelWeights

__all__ = [
    "FIT_THRESHOLD",
    "FrequencyVerdict",
    "LogitFit",
    "TrigIdentityCheck",
    "TrigPlanes",
    "fit_logits",
    "fit_projected",
    "group_logits",
    "logit_fit",
    "projected_group_logits",
    "trig_identity_check",
]

#: Rows of the grid logits :func:`group_logits` gathers at once, in values (2^22).
GROUP_BLOCK_ELEMENTS = 2**22

#: A frequency's logits count as ``α cos(w(a+b-c))`` when that term explains at least this share of
#: the logit energy in the frequency's cos/sin(w(a+b)) plane.
FIT_THRESHOLD = 0.9


@dataclass(frozen=True)
class LogitFit:
    """Least-squares fit of the logits (centred over c for each pair) to ``Σ_k α_k cos(w_k(a+b-c))``.

    ``alpha[i]`` is the coefficient of ``freqs[i]``, ``per_frequency[i]`` the fraction of the logit
    variance its term explains, ``fraction_explained`` the total (the terms are orthogonal).
    """

    freqs: list[int]
    alpha: Float[Tensor, " k"]
    per_frequency: Float[Tensor, " k"]
    fraction_explained: float


@dataclass(frozen=True)
class FrequencyVerdict:
    """The numbers behind one key frequency, and whether they show the trig-identity circuit.

    * ``n_neurons``: neurons in the frequency's cluster (:func:`grokinterp.fourier.spectra.neuron_frequencies`);
      ``neuron_fraction``: mean fraction of their variance explained by the frequency's 2D terms;
      ``neuron_sum_fraction``: fraction of the cluster's variance along cos/sin(w(a+b)).
    * ``residual_fraction``: fraction of the final residual stream's variance (answer position; the
      MLP output for the MLP) along cos/sin(w(a+b)).
    * ``logit_fraction``: fraction of the logit variance along cos/sin(w(a+b)) (any dependence on c).
    * ``alpha``: coefficient of cos(w(a+b-c)) in the logit fit; ``form_fit``: share of the logit energy
      in the cos/sin(w(a+b)) plane that ``alpha cos(w(a+b-c))`` explains.
    * ``supported``: ``alpha > 0`` and ``form_fit >= fit_threshold``; ``reason`` says why not.
    """

    freq: int
    n_neurons: int
    neuron_fraction: float
    neuron_sum_fraction: float
    residual_fraction: float
    logit_fraction: float
    alpha: float
    form_fit: float
    supported: bool
    reason: str = ""


@dataclass(frozen=True)
class TrigIdentityCheck:
    """Per-frequency verdicts, the logit fit, and the shares of all key frequencies together."""

    freqs: list[int]
    verdicts: list[FrequencyVerdict]
    fit: LogitFit
    residual_fraction: float
    logit_fraction: float
    basis: FourierBasis = field(repr=False)

    @property
    def supported(self) -> bool:
        """Every key frequency supported (and at least one key frequency)."""
        return bool(self.verdicts) and all(v.supported for v in self.verdicts)

    def frame(self):
        """The verdicts as a pandas DataFrame, one row per frequency."""
        import pandas as pd
        from dataclasses import asdict

        return pd.DataFrame([asdict(v) for v in self.verdicts])


# ---------------------------------------------------------------------------------- plane tables
class TrigPlanes:
    """cos/sin(w_k(x_a + s x_b)) over the observed pairs (default: the full group grid) for a set of
    frequencies (float64). On part of the grid the two grids are centred over the observed pairs and
    their 2x2 Gram matrix is kept, so that :meth:`plane_energy` is an orthogonal projection there too.

    Both grids depend on a pair through its group sum ``s = x_a + sign x_b`` only, so they are kept
    as (K, n) tables over s (``cos_c`` / ``sin_c``, the same functions of the answer c) with the
    number of observed pairs per sum: a projection ``Σ_pairs cos(w_k s) X[pair]`` is
    ``cos(w_k s) @ (Σ_{pairs with sum s} X[pair])`` (:meth:`project`), O(M m + K n m) instead of
    O(K M m)."""

    def __init__(self, B: FourierBasis, freqs: list[int], sign: int, observed: ObservedPairs | None = None):
        n = B.n
        observed = observed if observed is not None else observed_pairs(B)
        self.freqs = [B.check_freq(k) for k in freqs]
        x = torch.arange(n, dtype=torch.float64)
        w = 2 * math.pi * torch.tensor(self.freqs, dtype=torch.float64).reshape(-1, 1) / n
        self.cos_c, self.sin_c = torch.cos(w * x), torch.sin(w * x)  # (K, n): over the sum s, and over c
        self.sums = group_sums(observed.positions, n, sign)  # (M,): s of each observed pair
        count = torch.bincount(self.sums, minlength=n).double()  # observed pairs per sum
        self.n = n
        self.n_pairs = observed.count
        self.full = observed.full
        cc, ss, cs = self.cos_c.square() @ count, self.sin_c.square() @ count, (self.cos_c * self.sin_c) @ count
        if self.full:
            self.sq_cos, self.sq_sin = cc, ss  # Σ_pairs cos², Σ_pairs sin²
        else:
            M = self.n_pairs
            self.mean_cos, self.mean_sin = self.cos_c @ count / M, self.sin_c @ count / M
            mc, ms = self.mean_cos, self.mean_sin
            # Gram matrix of the grids centred over the pairs: Σ (cos - mc)² = Σ cos² - M mc², ...
            g_cc, g_ss, g_cs = cc - M * mc.square(), ss - M * ms.square(), cs - M * mc * ms
            gram = torch.stack([torch.stack([g_cc, g_cs], -1), torch.stack([g_cs, g_ss], -1)], -2)  # (K, 2, 2)
            self.gram_pinv = torch.linalg.pinv(gram, hermitian=True, rtol=1e-9)

    def project(self, X: Float[Tensor, "M m"]) -> tuple[Float[Tensor, "K m"], Float[Tensor, "K m"]]:
        """``(Σ_pairs cos(w_k s) X[pair], Σ_pairs sin(w_k s) X[pair])`` over the observed pairs (rows
        of ``X`` in the order of ``observed``), with the grids centred over the pairs on part of the grid."""
        binned = torch.zeros(self.n, X.shape[1], dtype=torch.float64).index_add_(0, self.sums, X.double())
        u_cos, u_sin = self.cos_c @ binned, self.sin_c @ binned
        if not self.full:
            total = X.double().sum(0)
            u_cos, u_sin = u_cos - self.mean_cos[:, None] * total, u_sin - self.mean_sin[:, None] * total
        return u_cos, u_sin

    def plane_energy(self, X: Tensor) -> Tensor:
        """Energy of each column-set ``X`` (M, m) (rows: the observed pairs) in each frequency's plane,
        summed over columns: (K,)."""
        return self.plane_energy_of(*self.project(X))

    def plane_energy_of(self, u_cos: Tensor, u_sin: Tensor) -> Tensor:
        """:meth:`plane_energy` from the projections :meth:`project` gives."""
        if self.full:
            e = u_cos.square().sum(1) / self.sq_cos
            sin = u_sin.square().sum(1)
            return e + torch.where(self.sq_sin > 1e-9, sin / self.sq_sin.clamp(min=1e-300), 0.0)
        u = torch.stack([u_cos, u_sin], dim=1)  # (K, 2, m)
        return torch.einsum("kim,kij,kjm->k", u, self.gram_pinv, u)

    def regressor_energy(self) -> Tensor:
        """``|R_k|²`` of each fit term ``R_k = cos(w_k(s - x_c))`` over the observed pairs and all
        answers, centred over the pairs on part of the grid: (K,)."""
        per_pair = self.cos_c.square().sum(1)  # Σ_c cos²(w(s - c)) is the same for every s
        if self.full:
            return self.n_pairs * per_pair
        # the pair-mean of R_k is mean_cos·cos(w c) + mean_sin·sin(w c); removing it removes its energy
        mean_sq = self.mean_cos.square() * self.cos_c.square().sum(1) + self.mean_sin.square() * self.sin_c.square().sum(1)
        return self.n_pairs * (per_pair - mean_sq)


def _energy(X: Tensor) -> Tensor:
    """``Σ X²`` as one dot product (no squared copy of a large table)."""
    flat = X.reshape(-1)
    return torch.dot(flat, flat)


def _centre(X: Tensor) -> Tensor:
    return X - X.mean(0, keepdim=True)


def group_logits(logits: Tensor, B: FourierBasis, observed: ObservedPairs | None = None) -> Tensor:
    """Logits on the observed pairs (default: the full group grid, rows x_a*n + x_b), answers in group
    order, centred over c, float64; on part of the grid also centred over the pairs per answer."""
    observed = observed if observed is not None else observed_pairs(B)
    source = logits.detach().cpu()
    L = torch.empty(observed.count, B.n, dtype=torch.float64)
    step = max(1, GROUP_BLOCK_ELEMENTS // max(1, source.shape[1]))
    for r0 in range(0, observed.count, step):  # gathered in blocks: one (M, n) float64 table, no full-size copies
        L[r0 : r0 + step] = source[observed.rows[r0 : r0 + step]][:, B.tokens]
    L -= L.mean(1, keepdim=True)
    if not observed.full:
        L -= L.mean(0, keepdim=True)
    return L


def fit_logits(L: Tensor, planes: TrigPlanes) -> tuple[LogitFit, Tensor]:
    """Logit fit and the logit energy in each plane, for centred group logits L (M, n)
    (:func:`group_logits` over the same pairs as ``planes``).

    ``alpha_k = <L, R_k> / |R_k|²`` with ``R_k = cos(w_k(s - x_c))``: the terms of different k are
    orthogonal (their sums over c vanish), on part of the grid too, so this is the least-squares fit."""
    return fit_projected(*planes.project(L), _energy(L), planes)


def fit_projected(u_cos: Tensor, u_sin: Tensor, energy: Tensor, planes: TrigPlanes) -> tuple[LogitFit, Tensor]:
    """:func:`fit_logits` from the logits' projections on the planes (K, n) and their energy ``Σ L²``."""
    inner = (u_cos * planes.cos_c).sum(1) + (u_sin * planes.sin_c).sum(1)  # <L, cos(w(s - x_c))>
    r_sq = planes.regressor_energy()
    alpha = inner / r_sq
    total = energy.clamp(min=torch.finfo(torch.float64).tiny)
    per = inner.square() / r_sq / total
    plane = planes.plane_energy_of(u_cos, u_sin)
    fit = LogitFit(list(planes.freqs), alpha.float(), per.float(), float(per.sum()))
    return fit, plane


def projected_group_logits(
    logits: Tensor, B: FourierBasis, observed: ObservedPairs, planes: TrigPlanes
) -> tuple[Tensor, Tensor, Tensor]:
    """``(u_cos, u_sin, energy)`` of :func:`group_logits` — its projections on the planes
    (:meth:`TrigPlanes.project`) and ``Σ L²`` — accumulated over blocks of pairs, without forming the
    (M, n) float64 table. On part of the grid the logits are centred over the pairs per answer: a
    first pass takes the column means, a second the centred values."""
    source = logits.detach().cpu()
    step = max(1, GROUP_BLOCK_ELEMENTS // max(1, source.shape[1]))
    blocks = [(observed.rows[r0 : r0 + step], planes.sums[r0 : r0 + step]) for r0 in range(0, observed.count, step)]

    def centred_over_c(rows: Tensor) -> Tensor:
        L = source[rows][:, B.tokens].double()
        return L - L.mean(1, keepdim=True)

    mean = None
    if not observed.full:
        total = torch.zeros(B.n, dtype=torch.float64)
        for rows, _ in blocks:
            total += centred_over_c(rows).sum(0)
        mean = total / observed.count
    binned = torch.zeros(B.n, B.n, dtype=torch.float64)
    energy = torch.zeros((), dtype=torch.float64)
    for rows, sums in blocks:
        L = centred_over_c(rows)
        if mean is not None:
            L -= mean
        binned.index_add_(0, sums, L)
        energy += _energy(L)
    # the grids' pair means (part of the grid) multiply Σ_pairs L = 0 after the centring: nothing to subtract
    return planes.cos_c @ binned, planes.sin_c @ binned, energy


def _resolve_setup(model, task, basis, freqs) -> tuple[GridAnalysis, FourierBasis, int, list[int], ObservedPairs]:
    g = as_grid(model, task, basis)
    B = g.basis
    sign = op_sign(g.task.op if g.task is not None else None)
    if freqs is None:
        freqs = g.key_frequencies()
    freqs = sorted({B.check_freq(k) for k in freqs})
    return g, B, sign, freqs, g.observed


def logit_fit(
    model: ModelLike | GridAnalysis,
    task: ModularArithmetic | None = None,
    freqs: list[int] | None = None,
    basis: BasisKind | FourierBasis | None = None,
) -> LogitFit:
    """Fit the logits over the task's pairs (the full grid without a task) to
    ``Σ_k α_k cos(w_k(a+b-c))`` (``freqs`` default: the key frequencies). Nanda et al. 2023, Sec. 5:
    the fit explains most of the logit variance after grokking. ``model`` may be a
    :class:`~grokinterp.fourier.grid.GridAnalysis` (its grid forward is reused)."""
    g, B, sign, freqs, observed = _resolve_setup(model, task, basis, freqs)
    planes = TrigPlanes(B, freqs, sign, observed)
    return fit_projected(*projected_group_logits(g.logits, B, observed, planes), planes)[0]


def trig_identity_check(
    model: ModelLike | GridAnalysis,
    task: ModularArithmetic | None = None,
    freqs: list[int] | None = None,
    basis: BasisKind | FourierBasis | None = None,
    fit_threshold: float = FIT_THRESHOLD,
    cluster_threshold: float = CLUSTER_THRESHOLD,
) -> TrigIdentityCheck:
    """Check each key frequency's stage of the algorithm: neurons (2D terms of frequency k and the
    cos/sin(w(a+b)) share of the cluster), residual and logits (cos/sin(w(a+b)) share), and the fit of
    the logits to ``α cos(w(a+b-c))``; a :class:`FrequencyVerdict` per frequency. Every share is taken
    over the task's pairs (the full grid without a task). ``model`` may be a
    :class:`~grokinterp.fourier.grid.GridAnalysis` (its grid forward and neuron clusters are reused)."""
    if not 0.0 < float(fit_threshold) <= 1.0:
        raise GrokinterpError(f"fit_threshold must lie in (0, 1], got {fit_threshold!r}")
    g, B, sign, freqs, observed = _resolve_setup(model, task, basis, freqs)
    return _trig_check(g.weights, B, sign, freqs, g.activations, float(fit_threshold), float(cluster_threshold), observed,
                       g.neuron_frequencies(cluster_threshold))


def _trig_check(
    w: ModelWeights, B: FourierBasis, sign: int, freqs: list[int], acts: Activations, fit_threshold: float,
    cluster_threshold: float, observed: ObservedPairs | None = None, neurons: NeuronFrequencies | None = None,
) -> TrigIdentityCheck:
    observed = observed if observed is not None else observed_pairs(B)
    planes = TrigPlanes(B, freqs, sign, observed)
    rows = observed.rows
    u_cos, u_sin, logit_energy = projected_group_logits(acts.logits, B, observed, planes)
    fit, logit_plane = fit_projected(u_cos, u_sin, logit_energy, planes)
    logit_total = logit_energy.clamp(min=1e-300)
    R = acts.resid.detach().cpu()[rows].double()  # one float64 copy of the observed rows, centred in place
    R -= R.mean(0, keepdim=True)
    resid_plane = planes.plane_energy(R) / _energy(R).clamp(min=1e-300)
    nf = neurons if neurons is not None else neuron_frequencies_in(w, B, cluster_threshold, acts.post, observed)
    post = acts.post.detach().cpu()
    verdicts = []
    for i, k in enumerate(freqs):
        members = torch.nonzero(nf.cluster == k).flatten()
        if len(members):
            Pk = _centre(post[rows][:, members].double())  # the cluster's neurons only, centred over the pairs
            sum_planes = TrigPlanes(B, [k], sign, observed).plane_energy(Pk)[0]
            neuron_sum = float(sum_planes / Pk.square().sum().clamp(min=1e-300))
            neuron_frac = float(nf.fraction[members].mean())
        else:
            neuron_sum = neuron_frac = 0.0
        plane = float(logit_plane[i])
        form = float(fit.per_frequency[i] * logit_total / plane) if plane > 0 else 0.0
        alpha = float(fit.alpha[i])
        reasons = []
        if not alpha > 0:
            reasons.append(f"alpha = {alpha:.3g} is not positive")
        if not form >= fit_threshold:
            reasons.append(f"cos(w(a+b-c)) explains {form:.2f} of the frequency's logit plane (< {fit_threshold})")
        verdicts.append(
            FrequencyVerdict(
                freq=k,
                n_neurons=len(members),
                neuron_fraction=neuron_frac,
                neuron_sum_fraction=neuron_sum,
                residual_fraction=float(resid_plane[i]),
                logit_fraction=plane / float(logit_total),
                alpha=alpha,
                form_fit=form,
                supported=not reasons,
                reason="; ".join(reasons),
            )
        )
    return TrigIdentityCheck(
        freqs=freqs,
        verdicts=verdicts,
        fit=fit,
        residual_fraction=float(resid_plane.sum()),
        logit_fraction=float(logit_plane.sum() / logit_total),
        basis=B,
    )
