"""Mask-vs-frequency alignment: how much of a mask's own structure over the p input tokens lies at
the model's key frequencies, compared with random masks of the same density.

Definition. Let ``M_E`` (p × d) be the mask of the embedding (token rows; the transformer's ``=``
row left out) and ``M_in`` (d × h) the mask of the neuron input weights (last MLP layer), both as 0/1
matrices in ``x @ W`` orientation; a tensor the mask does not cover counts as all ones.

* ``unit="embed"`` (default): ``P = M_E``. Column ``j`` is the kept pattern of the input-side
  weights of embedding unit ``j`` over the p tokens (the weights that read the one-hot tokens).
* ``unit="neuron"``: ``P[x, n] = Σ_j M_E[x, j] · M_in[j, n]``, the number of kept embedding →
  neuron connections through which token ``x`` reaches neuron ``n`` (the mask of the neuron's
  input-side weights ``W_E W_in`` as a pattern over the tokens). Patterns of different embedding
  units add up here, so structure with unit-dependent phases partly cancels, and the random
  baseline spreads more (all neurons share ``M_E``).

With the real orthonormal Fourier basis ``F`` over Z_p (rows const, cos 1, sin 1, ...), the spectral
energy at frequency ``f ≥ 1`` is ``E_f = Σ_n ((F P)[cos f, n]² + (F P)[sin f, n]²)`` (pooled over
units; the constant row, i.e. the mean of each pattern, is left out). For key frequencies ``K`` and
harmonics ``H`` the aligned set is ``S = {fold(h·k) : k ∈ K, h ∈ H}`` with
``fold(f) = min(f mod p, p - f mod p)``, and the alignment is the share

    A(M) = Σ_{f ∈ S} E_f / Σ_{f ≥ 1} E_f.

``pattern="mask"`` (default) uses the 0/1 masks themselves: the structure of the mask alone,
whatever the weights. ``pattern="kept_weights"`` uses the kept weights instead (``W_E ⊙ M_E`` and
``W_in ⊙ M_in`` in place of ``M_E`` and ``M_in``, the model's current weights): whether the mask keeps
the weights that carry the key frequencies. The first detects a mask built to follow a frequency; on
a trained model a magnitude ticket shows up more clearly in the second, because thresholding
``|w|`` of columns that mix several frequencies spreads the mask's own energy to sums and
differences of them.

Harmonics default to ``(1, 2)`` for ``pattern="mask"``: a magnitude mask keeps large ``|w|``, and a
weight pattern ``cos(ω x + φ)`` has magnitude ``|cos(ω x + φ)|``, which oscillates at ``2ω``; a mask
that selects by sign sits at ``ω``. For ``pattern="kept_weights"`` they default to ``(1,)``.

Baseline: ``n_random`` masks with the same number of kept entries in every tensor involved, drawn
uniformly at random (seeded); ``ratio = A(M) / mean A(R)`` and ``z_score = (A(M) - mean) / std``.
A random mask gives a ratio near 1; a mask whose pattern follows the key frequencies gives a ratio
well above 1 (at most ``1 / mean A(R)``). Uses the additive basis (``add`` / ``sub`` tasks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from ..errors import GrokinterpError, MaskError
from ..fourier import fourier_basis
from ..models import ModelWeights, as_weights, model_config

__all__ = ["FrequencyAlignment", "Pattern", "Unit", "mask_frequency_alignment", "mask_frequency_share"]

Unit = Literal["neuron", "embed"]
Pattern = Literal["mask", "kept_weights"]


@dataclass(frozen=True)
class FrequencyAlignment:
    """Alignment ``share`` of a mask, the random-mask baseline and their comparison.

    ``spectrum[f - 1]`` is ``E_f / Σ E`` for ``f = 1 .. p // 2``; ``frequencies`` is the aligned set
    ``S``.
    """

    share: float
    random_mean: float
    random_std: float
    ratio: float
    z_score: float
    frequencies: tuple[int, ...]
    spectrum: Float[Tensor, " n_freq"]
    n_random: int


def _input_side(model, mask: Mapping[str, Tensor], unit: Unit):
    """0/1 masks and weights of the embedding (p, d) and the neuron inputs (d, h), float64, read
    through :class:`~grokinterp.models.ModelWeights` (the mask as a model of 0/1 tensors)."""
    w = as_weights(model)
    e_name, in_name = w.embed_name, w.neuron_names[0]
    needed = [e_name] if unit == "embed" else [e_name, in_name]
    if not any(n in mask for n in needed):
        raise MaskError(
            f"the mask covers none of {needed}; unit={unit!r} reads the mask of "
            f"{' and '.join(repr(n) for n in needed)}"
        )
    for name in (e_name, in_name):
        if name in mask and tuple(mask[name].shape) != tuple(w.tensors[name].shape):
            raise MaskError(f"mask entry {name!r} has shape {tuple(mask[name].shape)}, expected {tuple(w.tensors[name].shape)}")
    m = ModelWeights(w.config, {n: (mask[n] if n in mask else torch.ones(t.shape, dtype=torch.bool)) for n, t in w.tensors.items()})
    return m.W_E.double(), m.W_in.double(), w.W_E.double(), w.W_in.double(), e_name, in_name


def _patterns(m_e: Tensor, m_in: Tensor, unit: Unit, w_e: Tensor | None = None, w_in: Tensor | None = None) -> Tensor:
    """Patterns over tokens, shape (..., p, units); with weights, the kept weights instead of 0/1."""
    e = m_e if w_e is None else m_e * w_e
    if unit == "neuron":
        return einsum(e, m_in if w_in is None else m_in * w_in, "... p d, ... d h -> ... p h")
    return e


def _energy(patterns: Float[Tensor, "... p units"], p: int) -> Float[Tensor, "... n_freq"]:
    F = fourier_basis(p, torch.float64)[0]
    coeffs = einsum(F, patterns, "k p, ... p u -> ... k u").square().sum(-1)  # (..., p) energy per basis row
    n_freq = p // 2
    energy = torch.zeros(*coeffs.shape[:-1], n_freq, dtype=coeffs.dtype)
    for f in range(1, n_freq + 1):
        rows = [2 * f - 1, 2 * f] if 2 * f < p else [2 * f - 1]
        energy[..., f - 1] = coeffs[..., rows].sum(-1)
    return energy


def _aligned_set(key_freqs: Sequence[int], harmonics: Sequence[int], p: int) -> tuple[int, ...]:
    n_freq = p // 2
    if not key_freqs:
        raise GrokinterpError("key_freqs is empty; expected at least one frequency in 1..p//2")
    out = set()
    for k in key_freqs:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_freq:
            raise GrokinterpError(f"key frequency {k!r} is not an integer in 1..{n_freq} (p = {p})")
        for h in harmonics:
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise GrokinterpError(f"harmonics must be positive integers, got {h!r}")
            f = (h * k) % p
            f = min(f, p - f)
            if f:
                out.add(f)
    return tuple(sorted(out))


def _share(energy: Tensor, freqs: tuple[int, ...]) -> Tensor:
    idx = torch.tensor([f - 1 for f in freqs])
    total = energy.sum(-1)
    return torch.where(total > 0, energy[..., idx].sum(-1) / total.clamp_min(1e-300), torch.full_like(total, math.nan))


def mask_frequency_share(
    mask: Mapping[str, Tensor],
    model,
    key_freqs: Sequence[int],
    *,
    unit: Unit = "embed",
    pattern: Pattern = "mask",
    harmonics: Sequence[int] | None = None,
) -> float:
    """The alignment share ``A(M)`` alone (NaN when every pattern is constant, e.g. a full mask)."""
    return _prepare(mask, model, key_freqs, unit, pattern, harmonics)[0]


def _prepare(mask, model, key_freqs, unit, pattern, harmonics):
    unit = _check_unit(unit)
    if pattern not in ("mask", "kept_weights"):
        raise GrokinterpError(f"pattern must be 'mask' or 'kept_weights', got {pattern!r}")
    if harmonics is None:
        harmonics = (1, 2) if pattern == "mask" else (1,)
    p = model_config(model).p
    freqs = _aligned_set(key_freqs, harmonics, p)
    m_e, m_in, w_e, w_in, e_name, in_name = _input_side(model, mask, unit)
    if pattern == "mask":
        w_e = w_in = None
    energy = _energy(_patterns(m_e, m_in, unit, w_e, w_in), p)
    share = float(_share(energy, freqs))
    return share, energy, freqs, (m_e, m_in, w_e, w_in, e_name, in_name), unit


def _check_unit(unit: str) -> Unit:
    if unit not in ("neuron", "embed"):
        raise GrokinterpError(f"unit must be 'neuron' or 'embed', got {unit!r}")
    return unit  # type: ignore[return-value]


def _random_like(m: Tensor, n: int, g: torch.Generator) -> Tensor:
    """``n`` random 0/1 matrices with the same shape and number of ones as ``m``."""
    k = int(m.sum())
    scores = torch.rand(n, m.numel(), generator=g)
    keep = torch.zeros(n, m.numel(), dtype=torch.float64)
    keep.scatter_(1, scores.argsort(dim=1)[:, :k], 1.0)
    return keep.reshape(n, *m.shape)


def mask_frequency_alignment(
    mask: Mapping[str, Tensor],
    model,
    key_freqs: Sequence[int],
    *,
    n_random: int = 100,
    seed: int = 0,
    unit: Unit = "embed",
    pattern: Pattern = "mask",
    harmonics: Sequence[int] | None = None,
) -> FrequencyAlignment:
    """Alignment of ``mask`` with ``key_freqs`` against ``n_random`` random masks of equal density
    (module docstring for the formula). ``model`` supplies the layout (which tensors are the
    embedding and the neuron inputs), ``p`` and, for ``pattern="kept_weights"``, the weights.
    """
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 2:
        raise GrokinterpError(f"n_random must be an integer >= 2, got {n_random!r}")
    share, energy, freqs, (m_e, m_in, w_e, w_in, e_name, in_name), unit = _prepare(
        mask, model, key_freqs, unit, pattern, harmonics
    )
    p = model_config(model).p
    g = torch.Generator().manual_seed(int(seed))
    r_e = _random_like(m_e, n_random, g) if e_name in mask else m_e.expand(n_random, *m_e.shape)
    if unit == "neuron":
        r_in = _random_like(m_in, n_random, g) if in_name in mask else m_in.expand(n_random, *m_in.shape)
    else:
        r_in = m_in
    rand = _share(_energy(_patterns(r_e, r_in, unit, w_e, w_in), p), freqs)
    mean, std = float(rand.mean()), float(rand.std())
    total = energy.sum()
    spectrum = energy / total if total > 0 else torch.full_like(energy, math.nan)
    return FrequencyAlignment(
        share=share,
        random_mean=mean,
        random_std=std,
        ratio=share / mean if mean > 0 else math.nan,
        z_score=(share - mean) / std if std > 0 else math.nan,
        frequencies=freqs,
        spectrum=spectrum,
        n_random=n_random,
    )
