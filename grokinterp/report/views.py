"""The matrices behind the report's weight figures, computed from a model (through
:class:`grokinterp.models.ModelWeights`) and returned as plain data (lists), so a report keeps
them in JSON and the figures draw them without the model.

Every matrix over tokens is shown in the Fourier basis of the task (row 0 constant, rows 2k-1 / 2k
``cos`` / ``sin`` of frequency k; Nanda et al. 2023, Sec. 4 and App. C):

- ``embed``: ``F W_E`` (components × embedding directions), the embedding's Fourier coefficients;
- ``logit_map``: ``W_L F^T`` with ``W_L = W_out W_U`` (neurons × components of the answer c);
- ``neuron_input``: the neuron-input map over tokens in the Fourier basis, ``F W_neur``, with
  ``W_neur = W_E W_in`` (MLP) or ``W_E (Σ_h W_V^h W_O^h) W_in`` (one-layer transformer: each head's
  OV circuit, as if it attended fully to the token);
- ``neuron_spectra_2d``: per chosen neuron ``|F A_i F^T|``, the 2D spectrum of its activation
  ``A_i[a, b]`` over the grid (centred: the const·const term is dropped);
- ``cluster_logit``: per frequency cluster of neurons (variance explained ≥ the threshold by one
  frequency), the norm over the cluster's neurons of their ``W_L`` rows per Fourier component;
- ``svd``: singular values of ``W_E`` and its top left singular vectors (as functions of the token).
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from ..errors import GrokinterpError
from ..fourier import FourierBasis, NeuronFrequencies, fft1d, fft2d
from ..models import ModelWeights, neuron_input_weights

__all__ = ["MAX_EMBED_DIRECTIONS", "cluster_logit_norms", "embedding_svd", "fourier_views", "sorted_columns"]

MAX_EMBED_DIRECTIONS = 128


def _rows(t: Tensor, digits: int = 4) -> list:
    spec = f".{digits}g"
    return [[float(format(v, spec)) for v in row] for row in t.detach().double().cpu().tolist()]


def sorted_columns(coeffs: Float[Tensor, "n d"], limit: int | None = None) -> Tensor:
    """Column order for a (components × directions) matrix: the ``limit`` columns of largest norm,
    grouped by their largest component (so that a sparse spectrum reads as blocks)."""
    norms = coeffs.norm(dim=0)
    keep = torch.argsort(norms, descending=True)[: limit or coeffs.shape[1]]
    dominant = coeffs[:, keep].abs().argmax(0)
    return keep[torch.argsort(dominant, stable=True)]  # stable: by norm within each group


def embedding_svd(W_E: Float[Tensor, "p d"], k: int = 4) -> tuple[Float[Tensor, " r"], Float[Tensor, "p k"]]:
    """Singular values of ``W_E`` and its top ``k`` left singular vectors (one value per token)."""
    U, S, _ = torch.linalg.svd(W_E.double(), full_matrices=False)
    return S, U[:, : min(k, U.shape[1])]


def cluster_logit_norms(logit_coeffs: Float[Tensor, "d_mlp n"], nf: NeuronFrequencies) -> tuple[list[int], Tensor]:
    """For each neuron cluster (its frequency), ``sqrt(Σ_{i in cluster} (W_L F^T)_i²)`` per component."""
    clusters = nf.clusters()
    freqs = sorted(clusters)
    if not freqs:
        return [], logit_coeffs.new_zeros(0, logit_coeffs.shape[1])
    rows = [logit_coeffs[torch.as_tensor(clusters[k], device=logit_coeffs.device)].norm(dim=0) for k in freqs]
    return [int(k) for k in freqs], torch.stack(rows)


def fourier_views(w: ModelWeights, B: FourierBasis, nf: NeuronFrequencies, post: Float[Tensor, "N d_mlp"],
                  neurons: Sequence[int], svd_k: int = 4, full_grid: bool = True) -> dict:
    """The report's ``views`` section (see the module docstring); ``post`` is the neuron
    activations over the full grid (a-major), ``neurons`` those whose 2D spectra to keep. A 2D
    spectrum needs every pair: with ``full_grid=False`` (a task on part of the grid) none is kept."""
    if post.shape[0] != w.p * w.p:
        raise GrokinterpError(f"post must hold the {w.p * w.p} grid rows, got {post.shape[0]}")
    embed = fft1d(w.W_E.T.double(), B).T  # (n, d)
    order = sorted_columns(embed, MAX_EMBED_DIRECTIONS)
    logit_map = fft1d(w.W_L.double(), B)  # (d_mlp, n)
    neuron_in = fft1d(neuron_input_weights(w).T.double(), B).T  # (n, d_mlp)
    neurons = [int(i) for i in neurons] if full_grid else []
    shown = post[:, torch.as_tensor(neurons, dtype=torch.long, device=post.device)]  # the kept neurons only
    grid = rearrange(shown.double(), "(a b) m -> a b m", a=w.p)
    spectra = []
    for j in range(len(neurons)):
        s = fft2d(grid[:, :, j], B).abs()
        s[0, 0] = 0.0
        spectra.append(_rows(s, 3))
    freqs, cluster_rows = cluster_logit_norms(logit_map, nf)
    S, U = embedding_svd(w.W_E, svd_k)
    return {
        "names": list(B.names),
        "embed": _rows(embed[:, order], 3),
        "embed_columns": order.tolist(),
        "embed_total": int(embed.shape[1]),
        "logit_map": _rows(logit_map, 3),
        "neuron_input": _rows(neuron_in, 3),
        "neuron_input_path": "W_E W_in" if w.kind == "mlp" else "W_E (sum_h W_V^h W_O^h) W_in",
        "neuron_spectra_2d": {"neurons": neurons, "spectra": spectra},
        "cluster_logit": {"frequencies": freqs, "norms": _rows(cluster_rows, 4)},
        "svd": {"singular_values": [float(f"{v:.5g}") for v in S.tolist()], "vectors": _rows(U.T, 4)},
    }
