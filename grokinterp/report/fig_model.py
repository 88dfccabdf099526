"""Figures of a mask next to the weights it keeps, and of attention. Plot code only; the inputs are
the ``mask`` and ``attention`` sections of a :class:`grokinterp.report.Report`."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["attention_figure", "mask_figure"]


def mask_figure(mask: dict):
    """The kept pattern (1 = kept) of the neuron-input matrix next to its kept weights, with the
    matrix's axes labelled (rows: input dimension, columns: neuron, in ``x @ W`` orientation)."""
    img = mask["image"]
    rows, cols = len(img["mask"]), len(img["mask"][0]) if img["mask"] else 0
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"mask of {img['name']} (kept = 1)", f"kept weights of {img['name']}"),
                        horizontal_spacing=0.08)
    fig.add_trace(go.Heatmap(z=img["mask"], colorscale="Greys", zmin=0, zmax=1, showscale=False,
                             hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=img["weights"], colorscale="RdBu", zmid=0.0, colorbar=dict(title="weight")), row=1, col=2)
    row_title, col_title = ("input dimension", "neuron") if rows >= cols else ("row", "column")
    for col in (1, 2):
        fig.update_xaxes(title_text=f"{col_title} ({cols})", row=1, col=col)
        fig.update_yaxes(title_text=f"{row_title} ({rows})", autorange="reversed", row=1, col=col)
    fig.update_layout(title=f"Mask (density {mask['density']:.3f}) next to the weights it keeps", height=460)
    return fig


def attention_figure(attention: dict):
    """Mean attention from the answer position to each position, per head (stacked)."""
    positions = ["a", "b", "="][: len(attention["mean"][0])]
    fig = go.Figure([go.Bar(x=[f"head {h}" for h in range(len(attention["mean"]))], y=[m[i] for m in attention["mean"]],
                            name=f"to {pos}") for i, pos in enumerate(positions)])
    fig.update_layout(barmode="stack", title=f"Attention from the answer position (layer {attention['layer']}), mean over pairs",
                      xaxis_title="head", yaxis_title="attention", height=380)
    return fig
