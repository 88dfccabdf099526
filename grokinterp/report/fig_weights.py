"""Figures of weights and spectra in the Fourier basis. Plot code only: each function takes plain
arrays (nested lists or tensors) and labels and returns a plotly figure; the numbers come from
:mod:`grokinterp.report.views` or :mod:`grokinterp.fourier`.

Axis labels of Fourier components are the basis names ``const, cos 1, sin 1, ...`` (row 0 the
constant, rows 2k-1 / 2k the cosine / sine of frequency k).
"""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "DOMINANCE",
    "basis_figure",
    "cluster_logit_figure",
    "embedding_spectrum_figure",
    "fourier_heatmap",
    "log_heatmap",
    "logit_spectrum_figure",
    "neuron_frequency_figure",
    "neuron_grid_figure",
    "neuron_spectra_figure",
    "svd_figure",
]

# a heatmap switches to a log colour scale when its largest cell exceeds the next largest this many times
DOMINANCE = 10.0


def _lists(z):
    return z.detach().double().cpu().tolist() if hasattr(z, "detach") else z


def _flat(z) -> list[float]:
    return [v for row in z for v in row if v is not None]


def dominated(z, factor: float = DOMINANCE) -> bool:
    """True when one cell of ``z`` is more than ``factor`` times the next largest (absolute values)."""
    values = sorted((abs(v) for v in _flat(z)), reverse=True)
    return len(values) > 1 and values[0] > factor * max(values[1], 1e-300)


def log_heatmap(z, x=None, y=None, colorscale="Blues", floor_decades: int = 6, showscale: bool = True, **kw):
    """A heatmap of non-negative ``z`` coloured by ``log10(z)`` (clipped ``floor_decades`` below the
    largest cell), the colour bar labelled in powers of ten and the hover showing the true value."""
    z = _lists(z)
    top = max(_flat(z) or [1.0])
    lo = math.log10(top) - floor_decades if top > 0 else -floor_decades
    logz = [[None if v is None else max(math.log10(v) if v > 0 else lo, lo) for v in row] for row in z]
    ticks = list(range(math.ceil(lo), math.floor(math.log10(top)) + 1 if top > 0 else 1))
    return go.Heatmap(z=logz, x=x, y=y, customdata=z, colorscale=colorscale, zmin=lo, showscale=showscale,
                      hovertemplate="%{y}, %{x}: %{customdata:.4g}<extra></extra>",
                      colorbar=dict(tickvals=ticks, ticktext=[f"1e{t}" for t in ticks], title="log scale"), **kw)


def fourier_heatmap(z, names: Sequence[str], title: str, x_title: str, x=None, components_on: str = "y",
                    colorscale: str = "RdBu", zmid: float | None = 0.0, height: int = 460):
    """A matrix with one axis over Fourier components (labelled ``const, cos 1, ...``): rows are
    components with ``components_on="y"``, columns with ``"x"`` (then ``x_title`` names the rows)."""
    z = _lists(z)
    names = list(names)
    if components_on == "y":
        trace = go.Heatmap(z=z, y=names, x=x, colorscale=colorscale, zmid=zmid)
        fig = go.Figure(trace)
        fig.update_layout(xaxis_title=x_title, yaxis_title="Fourier component")
        fig.update_yaxes(autorange="reversed", type="category", dtick=1 if len(names) <= 40 else None)
        fig.update_xaxes(type="category", showticklabels=len(z[0]) <= 40 if z else False)
    else:
        fig = go.Figure(go.Heatmap(z=z, x=names, y=x, colorscale=colorscale, zmid=zmid))
        fig.update_layout(yaxis_title=x_title, xaxis_title="Fourier component")
        fig.update_xaxes(type="category", dtick=1 if len(names) <= 40 else None, tickangle=-60)
        fig.update_yaxes(type="category", autorange="reversed", showticklabels=len(z) <= 40)
    fig.update_layout(title=title, height=height)
    return fig


def logit_spectrum_figure(spec2d, names: Sequence[str], title: str | None = None, log: bool | None = None):
    """The logits' 2D spectrum ``|F L F^T|`` over (a, b), normed over the answer c: rows the
    component of ``a``, columns that of ``b``. A log colour scale is used when one cell dominates
    (``log=None``: decided by :func:`dominated`), so that the other cells stay visible."""
    z = _lists(spec2d)
    use_log = dominated(z) if log is None else log
    names = list(names)[: len(z)]
    trace = log_heatmap(z, x=names, y=names) if use_log else go.Heatmap(z=z, x=names, y=names, colorscale="Blues")
    fig = go.Figure(trace)
    fig.update_layout(title=title or "Logits: 2D Fourier spectrum over (a, b), norm over the answer c"
                      + (" (log colour scale)" if use_log else ""),
                      xaxis_title="component of b", yaxis_title="component of a", height=560)
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def neuron_spectra_figure(spectra, neurons: Sequence[int], names: Sequence[str], frequencies: Sequence[int] | None = None):
    """The 2D spectrum of each chosen neuron's activation over (a, b), one panel per neuron, each on a
    log colour scale (a neuron of frequency k lights up the const/cos k/sin k block)."""
    n = max(1, len(neurons))
    titles = [f"neuron {i}" + (f" (k={frequencies[j]})" if frequencies else "") for j, i in enumerate(neurons)]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.04)
    names = list(names)
    for col, s in enumerate(spectra, start=1):
        fig.add_trace(log_heatmap(s, x=names[: len(s)], y=names[: len(s)], showscale=col == n), row=1, col=col)
        fig.update_xaxes(title_text="component of b", type="category", showticklabels=False, row=1, col=col)
        fig.update_yaxes(type="category", autorange="reversed", showticklabels=col == 1, row=1, col=col)
    fig.update_yaxes(title_text="component of a", row=1, col=1)
    fig.update_layout(title="Neuron activations: 2D Fourier spectrum over (a, b) (log colour scale)", height=380)
    return fig


def basis_figure(matrix, names: Sequence[str], title: str = "The Fourier basis: one row per component, over the tokens"):
    """The basis vectors themselves: row ``i`` is component ``names[i]`` as a function of the token."""
    z = _lists(matrix)
    return fourier_heatmap(z, names, title, "token x", x=list(range(len(z[0]))) if z else None, height=520)


def svd_figure(singular_values: Sequence[float], vectors, title: str = "Embedding W_E: singular values and top singular vectors"):
    """Singular values of ``W_E`` (log scale) and its top left singular vectors over the tokens (a
    periodic embedding shows cos/sin pairs of a few frequencies)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65])
    fig.add_trace(go.Bar(x=list(range(1, len(singular_values) + 1)), y=list(singular_values), name="σ_i",
                         marker_color="#7f7f7f", showlegend=False), row=1, col=1)
    fig.update_yaxes(type="log", dtick=1, exponentformat="e", title_text="singular value", row=1, col=1)
    fig.update_xaxes(title_text="index i", row=1, col=1)
    for i, v in enumerate(_lists(vectors)):
        fig.add_trace(go.Scatter(x=list(range(len(v))), y=v, mode="lines+markers", marker=dict(size=4),
                                 name=f"u_{i + 1}"), row=1, col=2)
    fig.update_xaxes(title_text="token", row=1, col=2)
    fig.update_yaxes(title_text="component of u_i", row=1, col=2)
    fig.update_layout(title=title, height=420)
    return fig


def cluster_logit_figure(frequencies: Sequence[int], norms, names: Sequence[str]):
    """Per neuron cluster (one row per frequency), the norm of its neurons' ``W_L`` rows per Fourier
    component of the answer: each cluster should write to its own frequency's cos and sin."""
    rows = [f"cluster k={k}" for k in frequencies]
    fig = fourier_heatmap(norms, names, "W_L = W_out W_U per neuron cluster, in the Fourier basis of the answer",
                          "neuron cluster", x=rows, components_on="x", colorscale="Blues", zmid=None,
                          height=max(260, 60 + 40 * len(rows)))
    return fig


def embedding_spectrum_figure(cos: Sequence[float], sin: Sequence[float], keys: Sequence[int], basis: str):
    """Norm of the embedding's cos and sin component of each frequency (key frequencies dotted)."""
    freqs = list(range(1, len(cos) + 1))
    fig = go.Figure([go.Bar(x=freqs, y=list(cos), name="cos"), go.Bar(x=freqs, y=list(sin), name="sin")])
    for k in sorted(set(keys)):
        fig.add_vline(x=k, line=dict(color="grey", dash="dot"))
    fig.update_layout(barmode="group", title=f"Embedding norm per Fourier component ({basis} basis; key frequencies dotted)",
                      xaxis_title="frequency k", yaxis_title="norm", height=420)
    return fig


def neuron_frequency_figure(fractions, frequency: Sequence[int], fraction: Sequence[float], n_clustered: int, threshold: float):
    """Fraction of each neuron's variance per frequency, neurons sorted by their dominant frequency."""
    order = sorted(range(len(frequency)), key=lambda i: (frequency[i], -(fraction[i] or 0)))
    z = [fractions[i] for i in order]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(1, len(z[0]) + 1)) if z else None, y=[str(i) for i in order],
                               colorscale="Blues", colorbar=dict(title="fraction")))
    fig.update_layout(title=f"Fraction of each neuron's variance per frequency ({n_clustered} of {len(frequency)} "
                            f"neurons >= {threshold})", xaxis_title="frequency k",
                      yaxis_title="neuron (sorted by dominant frequency)", height=420)
    fig.update_yaxes(showticklabels=False, type="category")
    return fig


def neuron_grid_figure(activations, neurons: Sequence[int], frequencies: Sequence[int]):
    """Chosen neurons' activations over the (a, b) grid, one panel each."""
    n = max(1, len(neurons))
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"neuron {i} (k={k})" for i, k in zip(neurons, frequencies)])
    for col, act in enumerate(activations, start=1):
        fig.add_trace(go.Heatmap(z=act, colorscale="Viridis", showscale=col == n, colorbar=dict(title="activation")),
                      row=1, col=col)
        fig.update_xaxes(title_text="b", row=1, col=col)
        fig.update_yaxes(title_text="a" if col == 1 else None, autorange="reversed", row=1, col=col)
    fig.update_layout(title="Neuron activations over the (a, b) grid", height=380)
    return fig
