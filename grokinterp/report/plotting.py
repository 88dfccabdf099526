"""Showing figures offline in notebooks and on the docs site (:func:`use_offline_renderer`), and the
figure library's curves under their old import path (:func:`training_curves`)."""

from __future__ import annotations

from .fig_training import training_curves
from .html import figure_html

__all__ = ["training_curves", "use_offline_renderer"]


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
