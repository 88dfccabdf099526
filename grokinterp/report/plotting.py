"""plotly figures (offline). Computation lives elsewhere; these functions only draw."""

from __future__ import annotations

from typing import Mapping, Sequence

from .html import figure_html

__all__ = ["training_curves", "use_offline_renderer"]


def training_curves(history: Sequence[Mapping], times=None, title: str = "Training curves"):
    """Train / test accuracy and loss against epoch (log-scale loss), with t_mem and t_gen marked
    as vertical lines when given (a :class:`grokinterp.GrokkingTimes`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [r["epoch"] for r in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    colours = {"train": "#1f77b4", "test": "#d62728"}
    for split, colour in colours.items():
        if all(f"{split}_acc" in r for r in history):
            fig.add_trace(go.Scatter(x=epochs, y=[r[f"{split}_acc"] for r in history], name=f"{split} acc",
                                     line=dict(color=colour)), row=1, col=1)
        if all(f"{split}_loss" in r for r in history):
            fig.add_trace(go.Scatter(x=epochs, y=[r[f"{split}_loss"] for r in history], name=f"{split} loss",
                                     line=dict(color=colour, dash="dot")), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    if times is not None:
        for label, t, dash in (("t_mem", times.t_mem, "dash"), ("t_gen", times.t_gen, "dot")):
            if t is not None:
                for col in (1, 2):
                    fig.add_vline(x=t, line=dict(color="grey", dash=dash), row=1, col=col)
                fig.add_annotation(x=t, y=1.02, yref="paper", text=f"{label} = {t}", showarrow=False, row=1, col=1)
    fig.update_layout(title=title, xaxis_title="epoch", xaxis2_title="epoch", height=420)
    return fig


def use_offline_renderer() -> None:
    """Make plotly figures in notebooks display as a bundle of the plotly JSON (drawn by Jupyter's own
    plotly support) and an HTML ``<div>`` without plotly.js and without CDN or MathJax links (drawn
    by pages that load one plotly.js of their own, such as the docs site)."""
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class _OfflineBundle(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            import plotly.graph_objects as go

            fig = go.Figure(fig_dict)
            return {
                "application/vnd.plotly.v1+json": fig.to_plotly_json(),
                "text/html": figure_html(fig),
            }

    pio.renderers["grokinterp"] = _OfflineBundle()
    pio.renderers.default = "grokinterp"
