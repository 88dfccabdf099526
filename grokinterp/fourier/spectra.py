"""Fourier spectra of a model's weights and neurons, key frequencies, neuron clusters, Fourier entropy.

Every function takes a model (HookedMLP, transformer, or a :class:`grokinterp.models.ModelWeights`)
and optionally the task: the basis is the multiplicative one for ``mul`` / ``div`` tasks and the
additive one otherwise (``basis=`` overrides). Spectra are indexed by frequency, index 0 being the
constant and ``k = 1 .. n//2`` the pair (cos k, sin k) (see :mod:`grokinterp.fourier.basis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from .basis import BasisKind, FourierBasis, basis_for_op, fft1d, fft2d, frequency_power, frequency_power_2d, get_basis
from .basis import spectral_entropy
from .pairs import ObservedPairs, observed_pairs, require_full_grid
from ..errors import GrokinterpError
from ..tasks import ModularArithmetic
from ..models.weights import InputPath, ModelLike, ModelWeights, as_weights, check_task, grid_activations, neuron_input_weights

__all__ = [
    "CLUSTER_THRESHOLD",
    "KEY_FREQUENCY_THRESHOLD",
    "NeuronFrequencies",
    "embedding_spectrum",
    "fourier_entropy",
    "frequency_fractions",
    "frequency_scores",
    "key_frequencies",
    "neuron_activation_spectrum",
    "neuron_frequencies",
    "neuron_frequencies_in",
    "neuron_input_spectrum",
    "neuron_logit_spectrum",
    "pair_frequency_fractions",
    "resolve_basis",
    "select_frequencies",
]

#: A frequency is key when its score is at least this fraction of the largest score (per method).
KEY_FREQUENCY_THRESHOLD = 0.1
#: A neuron belongs to the cluster of its dominant frequency when that frequency explains at least
#: this fraction of its centred activation variance (Nanda et al. 2023: 433 of 512 neurons at 0.85).
CLUSTER_THRESHOLD = 0.85

Method = Literal["logit", "embed", "neuron"]

#: Elements of the float64 (n, n, neurons) 2D transform :func:`neuron_frequencies_in` forms at once
#: (the neurons are transformed in blocks of ``NEURON_BLOCK_ELEMENTS // n²``; 2^23 doubles = 64 MiB).
NEURON_BLOCK_ELEMENTS = 2**23


def resolve_basis(
    model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> FourierBasis:
    """``basis`` if given; else the task's (multiplicative for mul/div); else additive."""
    w = as_weights(model)
    task = check_task(w, task)
    if basis is not None:
        return get_basis(w.p, basis)
    if task is not None:
        return basis_for_op(w.p, task.op)
    return get_basis(w.p, "additive")


def _power_over_tokens(matrix: Float[Tensor, "... p"], basis: FourierBasis) -> Float[Tensor, "... f"]:
    return frequency_power(fft1d(matrix.double(), basis), basis)


# ---------------------------------------------------------------------------------------- spectra
def embedding_spectrum(
    model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> Float[Tensor, " f"]:
    """Per-frequency norm of the embedding: ``sqrt(Σ_d Σ_{rows of k} (F W_E)²)`` (index 0 = constant).
    Nanda et al. 2023, Fig. 3: sparse in the key frequencies after grokking."""
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    return _power_over_tokens(w.W_E.T, B).sum(0).sqrt()


def neuron_input_spectrum(
    model: ModelLike,
    task: ModularArithmetic | None = None,
    basis: BasisKind | FourierBasis | None = None,
    path: InputPath | None = None,
) -> Float[Tensor, "f d_mlp"]:
    """Per-frequency norm of each neuron's input weights over the tokens
    (:func:`grokinterp.models.neuron_input_weights`: ``W_E W_in`` for the MLP, the OV-effective
    ``W_E Σ_h W_V^h W_O^h W_in`` for the transformer by default)."""
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    return _power_over_tokens(neuron_input_weights(w, path).T, B).sqrt().T


def neuron_logit_spectrum(
    model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> Float[Tensor, "f d_mlp"]:
    """Per-frequency norm of each neuron's row of ``W_L = W_out W_U`` over the answer c
    (Nanda et al. 2023, Sec. 4: W_L is almost entirely in the key frequencies)."""
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    return _power_over_tokens(w.W_L, B).sqrt().T


def neuron_activation_spectrum(
    model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> Float[Tensor, "n n d_mlp"]:
    """2D Fourier components of every neuron's activation over the (a, b) grid, centred per neuron
    (the constant·constant component is set to 0): ``F A_i F^T`` with rows ↔ a, columns ↔ b.

    Needs the activations on every pair: a task whose pair set is not the whole grid
    (``pairs="a>b"`` ...) is refused (:func:`neuron_frequencies` fits such a task's pairs instead)."""
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    require_full_grid(observed_pairs(B, check_task(w, task)), "the 2D activation spectrum")
    return _activation_components(w, B)


def _activation_components(w: ModelWeights, B: FourierBasis, post: Tensor | None = None) -> Tensor:
    if post is None:
        post = grid_activations(w).post
    grid = rearrange(post.double(), "(a b) m -> a b m", a=w.p)
    coeffs = fft2d(grid, B)
    coeffs[0, 0] = 0.0
    return coeffs


# -------------------------------------------------------------------------------- neuron clusters
@dataclass(frozen=True)
class NeuronFrequencies:
    """Dominant frequency of each neuron and how much of its variance it explains.

    ``fractions[i, k]``: fraction of neuron i's centred activation variance in the 2D terms of
    frequency k (const·cos/sin k, cos/sin k·const and the four cos/sin k·cos/sin k terms); column 0 is
    0. ``frequency[i]`` the argmax (0 for a constant neuron), ``fraction[i]`` its value,
    ``cluster[i]`` = ``frequency[i]`` when ``fraction[i] >= threshold`` else -1; ``variance[i]`` the
    activation variance over the grid (Nanda et al. 2023, Sec. 4.2).
    """

    frequency: Int[Tensor, " d_mlp"]
    fraction: Float[Tensor, " d_mlp"]
    cluster: Int[Tensor, " d_mlp"]
    variance: Float[Tensor, " d_mlp"]
    fractions: Float[Tensor, "d_mlp f"]
    threshold: float
    basis: FourierBasis

    def clusters(self) -> dict[int, list[int]]:
        """Neuron indices per frequency, for neurons in a cluster (sorted by frequency)."""
        out: dict[int, list[int]] = {}
        for i, k in enumerate(self.cluster.tolist()):
            if k >= 0:
                out.setdefault(k, []).append(i)
        return dict(sorted(out.items()))

    @property
    def explained_share(self) -> float:
        """Fraction of neurons in some cluster."""
        return float((self.cluster >= 0).double().mean())


def frequency_fractions(coeffs: Tensor, B: FourierBasis) -> tuple[Tensor, Tensor]:
    """(d_mlp, f) fractions of variance per frequency, and the total squared norm per neuron."""
    G = frequency_power_2d(coeffs, B)  # (f, f, m)
    total = G.sum((0, 1))
    diag = torch.diagonal(G, dim1=0, dim2=1).T  # (f, m): G[k, k]
    explained = diag + G[0] + G[:, 0]
    explained[0] = 0.0
    fractions = explained / total.clamp(min=torch.finfo(total.dtype).tiny)
    return fractions.T, total


def neuron_frequencies(
    model: ModelLike,
    task: ModularArithmetic | None = None,
    threshold: float = CLUSTER_THRESHOLD,
    basis: BasisKind | FourierBasis | None = None,
) -> NeuronFrequencies:
    """Cluster the neurons by frequency: a neuron's dominant frequency is the k whose 2D terms explain
    the largest fraction of its centred activation over the task's pairs (the full (a, b) grid without
    a task, or for ``pairs="all"``); it joins cluster k when that fraction is at least ``threshold``
    (0.85 by default), else -1. On a part of the grid (``pairs="a>b"`` ...) the fractions are least-squares
    fits on the task's pairs (:func:`pair_frequency_fractions`)."""
    if not 0.0 < float(threshold) <= 1.0:
        raise GrokinterpError(f"threshold must lie in (0, 1], got {threshold!r}")
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    return neuron_frequencies_in(w, B, float(threshold), observed=observed_pairs(B, check_task(w, task)))


def pair_frequency_fractions(values: Float[Tensor, "p_sq m"], observed: ObservedPairs) -> tuple[Tensor, Tensor]:
    """Per column of ``values`` (rows: the a-major token grid), the fraction of its variance over the
    observed pairs that frequency k's 2D terms explain, fitted by least squares on those pairs:
    ``(fractions (m, f), total (m,))`` with ``total`` the centred energy over the observed pairs.

    The terms of k are ``F_i(x_a) F_j(x_b)`` for (i, j) in (k, const), (const, k), (k, k) (cos and sin
    rows); centred over the observed pairs, their span is projected on (they are not orthogonal on a
    part of the grid, and the fractions of different k need not add up to at most 1 there). On the
    full grid this equals :func:`frequency_fractions` of the 2D transform."""
    B = observed.basis
    X = values.detach().cpu()[observed.rows].double()
    X -= X.mean(0, keepdim=True)
    total = X.square().sum(0)
    F = B.matrix.double()
    xa, xb = observed.positions // B.n, observed.positions % B.n
    Fa, Fb = F[:, xa], F[:, xb]  # (n, M): every basis row at each pair's x_a, x_b
    k = torch.arange(1, B.n_freqs + 1)
    rows = torch.stack([2 * k - 1, (2 * k).clamp(max=B.n - 1)], dim=1)  # (f, 2): the cos and sin rows of k
    present = torch.stack([torch.ones_like(k, dtype=torch.bool), 2 * k <= B.n - 1], dim=1)  # even n: k = n/2 has no sine
    fractions = torch.zeros(X.shape[1], B.n_freqs + 1, dtype=torch.float64)
    block = max(1, NEURON_BLOCK_ELEMENTS // (8 * max(1, observed.count)))
    for k0 in range(0, B.n_freqs, block):  # all frequencies' fits at once, a block of them at a time
        r, on = rows[k0 : k0 + block], present[k0 : k0 + block, :, None]
        ca, cb = Fa[r] * on, Fb[r] * on  # (κ, 2, M); an absent sine is a zero column, dropped below
        terms = torch.cat([ca * Fb[0], Fa[0] * cb, rearrange(ca[:, :, None] * cb[:, None, :], "k i j m -> k (i j) m")], dim=1)
        design = terms.transpose(1, 2)  # (κ, M, 8): the terms (k, const), (const, k), (k, k)
        design = design - design.mean(1, keepdim=True)
        U, S, _ = torch.linalg.svd(design, full_matrices=False)
        keep = S > 1e-9 * S.max(dim=1, keepdim=True).values.clamp(min=1e-300)  # (κ, 8): the span's directions
        energy = (torch.einsum("kmr,mc->krc", U, X).square() * keep[..., None]).sum(1)  # (κ, m)
        fractions[:, 1 + k0 : 1 + k0 + len(r)] = (energy / total.clamp(min=torch.finfo(total.dtype).tiny)).T
    return fractions, total


def neuron_frequencies_in(
    w: ModelWeights, B: FourierBasis, threshold: float, post: Tensor | None = None, observed: ObservedPairs | None = None
) -> NeuronFrequencies:
    """:func:`neuron_frequencies` in a given basis (``post``: the grid activations when already
    computed; ``observed``: the task's pairs, default the full grid)."""
    if observed is not None and not observed.full:
        if post is None:
            post = grid_activations(w).post
        fractions, total = pair_frequency_fractions(post, observed)
        variance = total / observed.count
        return _clusters(fractions, total, variance, threshold, B)
    if post is None:
        post = grid_activations(w).post
    # per neuron the fractions read that neuron's column only: a block of neurons at a time keeps the
    # float64 2D transform at (n, n, block) instead of (n, n, d_mlp)
    block = max(1, NEURON_BLOCK_ELEMENTS // (B.n * B.n))
    parts = [frequency_fractions(_activation_components(w, B, cols), B) for cols in post.split(block, dim=1)]
    fractions, total = torch.cat([f for f, _ in parts]), torch.cat([t for _, t in parts])
    return _clusters(fractions, total, total / (B.n * B.n), threshold, B)


def _clusters(fractions: Tensor, total: Tensor, variance: Tensor, threshold: float, B: FourierBasis) -> NeuronFrequencies:
    """Dominant frequency, its share and the cluster of each neuron from its per-frequency fractions."""
    fraction, freq = fractions.max(dim=1)
    alive = total > 1e-12 * total.max().clamp(min=1e-300)
    freq = torch.where(alive, freq, torch.zeros_like(freq))
    fraction = torch.where(alive, fraction, torch.zeros_like(fraction))
    cluster = torch.where(alive & (fraction >= threshold), freq, torch.full_like(freq, -1))
    return NeuronFrequencies(freq, fraction.float(), cluster, variance.float(), fractions.float(), threshold, B)


# ------------------------------------------------------------------------------- key frequencies
def select_frequencies(scores: Float[Tensor, " f"], threshold: float = KEY_FREQUENCY_THRESHOLD) -> list[int]:
    """Frequencies ``k >= 1`` with ``scores[k] >= threshold * max_k scores[k]`` (index 0, the
    constant, is ignored); sorted; empty when every score is 0."""
    if not 0.0 < float(threshold) <= 1.0:
        raise GrokinterpError(f"threshold must lie in (0, 1], got {threshold!r}")
    s = scores[1:].double()
    top = s.max() if s.numel() else torch.tensor(0.0)
    if not top > 0:
        return []
    return [int(i) + 1 for i in torch.nonzero(s >= threshold * top).flatten().tolist()]


def frequency_scores(
    w: ModelWeights, B: FourierBasis, method: str, post: Tensor | None = None, observed: ObservedPairs | None = None,
    neurons: NeuronFrequencies | None = None,
) -> Tensor:
    """The score per frequency that :func:`key_frequencies` thresholds, by ``method`` (``"logit"``:
    ``Σ_i P_k(W_L[i])``, the power of W_L over tokens summed over neurons; ``"embed"``: the same of
    W_E over the embedding dimensions; ``"neuron"``: ``Σ_{i: freq_i = k} fraction_i variance_i``,
    over the ``observed`` pairs). ``neurons``: the neuron decomposition at
    :data:`CLUSTER_THRESHOLD` when already computed (else it is computed from ``post``)."""
    if method == "logit":
        return _power_over_tokens(w.W_L, B).sum(0)
    if method == "embed":
        return _power_over_tokens(w.W_E.T, B).sum(0)
    if method == "neuron":
        nf = neurons if neurons is not None else neuron_frequencies_in(w, B, CLUSTER_THRESHOLD, post, observed)
        weight = (nf.fraction * nf.variance).double()
        scores = torch.zeros(B.n_freqs + 1, dtype=torch.float64)
        return scores.index_add_(0, nf.frequency, weight)
    raise GrokinterpError(f"method must be 'logit', 'embed' or 'neuron', got {method!r}")


def key_frequencies(
    model: ModelLike,
    task: ModularArithmetic | None = None,
    method: Method = "logit",
    threshold: float = KEY_FREQUENCY_THRESHOLD,
    basis: BasisKind | FourierBasis | None = None,
) -> list[int]:
    """The frequencies the model computes with, sorted; never a fixed count.

    Each method scores every frequency k and keeps those scoring at least ``threshold`` (0.1) times
    the best one:

    * ``"logit"`` (default): power of ``W_L = W_out W_U`` in frequency k over the answer c, summed
      over neurons — the cleanest cut (Nanda et al. 2023, Sec. 4).
    * ``"embed"``: power of ``W_E`` in frequency k summed over the embedding dimensions.
    * ``"neuron"``: each neuron votes for its dominant frequency (:func:`neuron_frequencies`) with
      weight its activation variance explained by that frequency.

    The latter two are cross-checks and can return stragglers. ``"logit"`` and ``"embed"`` read
    weights only; ``"neuron"`` uses the activations on the task's pairs.
    """
    w = as_weights(model)
    B = resolve_basis(w, task, basis)
    observed = observed_pairs(B, check_task(w, task)) if method == "neuron" else None
    return select_frequencies(frequency_scores(w, B, method, observed=observed), threshold)


# ------------------------------------------------------------------------------------ entropy
def fourier_entropy(
    model: ModelLike,
    side: Literal["in", "out"] = "in",
    mask: Mapping[str, Tensor] | None = None,
    task: ModularArithmetic | None = None,
    basis: BasisKind | FourierBasis | None = None,
    path: InputPath | None = None,
    include_constant: bool = False,
    reduce: Literal["mean", "none"] = "mean",
) -> float | Float[Tensor, " d_mlp"]:
    """Fourier entropy of the neurons (Minegishi et al., "Grokking Tickets", App. F), as a true
    Shannon entropy.

    For each neuron: its weight vector over the tokens (``side="in"``: the input weights
    :func:`grokinterp.models.neuron_input_weights`; ``side="out"``: its row of ``W_L = W_out W_U``
    over the answers), the power ``P_k`` of each frequency ``k = 1 .. n//2`` (the constant is left out
    unless ``include_constant``), ``q_k = P_k / Σ P``, ``H = -Σ q_k ln q_k``; averaged over the neurons
    whose weights are not all zero. A uniform spectrum gives ``ln(n//2)``, a single frequency 0;
    ``H`` does not change with the sign or scale of a neuron's weights. ``mask`` multiplies the
    weights first (a pruned ticket).
    """
    if side not in ("in", "out"):
        raise GrokinterpError(f"side must be 'in' (input weights) or 'out' (W_L), got {side!r}")
    if reduce not in ("mean", "none"):
        raise GrokinterpError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    w = as_weights(model, mask)
    B = resolve_basis(w, task, basis)
    vectors = neuron_input_weights(w, path).T if side == "in" else w.W_L
    power = _power_over_tokens(vectors, B)
    if not include_constant:
        power = power[:, 1:]
    h = spectral_entropy(power)
    if reduce == "none":
        return h.float()
    alive = ~torch.isnan(h)
    if not alive.any():
        raise GrokinterpError("every neuron's weights are zero (fully pruned?): the Fourier entropy is undefined")
    return float(h[alive].mean())
