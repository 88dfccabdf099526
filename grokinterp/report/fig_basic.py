"""Generic figures the notebooks and docs use for tables of results: lines against a shared or
per-series x, labelled bars, grouped bars, a line with bars on a second axis, bars with some
entries highlighted, and a grid of heatmaps on one colour scale. Plot code only; colours follow
:func:`grokinterp.report.style.run_colours` (one per series, in order)."""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import PALETTE, log_axis, run_colours

__all__ = ["bar_figure", "bars_figure", "heatmap_grid", "line_and_bars", "line_figure", "spectrum_bars", "xy_figure"]


def _list(v) -> list:
    return v.tolist() if hasattr(v, "tolist") else list(v)


def xy_figure(series: Mapping[str, tuple[Sequence, Sequence]], title: str, x_title: str, y_title: str,
              log_y: bool = False, markers: bool = True, height: int = 420):
    """One line per series, each with its own x: ``series[name] = (x, y)``."""
    colours = run_colours(list(series))
    fig = go.Figure([go.Scatter(x=_list(x), y=_list(y), name=name, mode="lines+markers" if markers else "lines",
                                line=dict(color=colours[name])) for name, (x, y) in series.items()])
    if log_y:
        log_axis(fig, "y")
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=height)
    return fig


def line_figure(x: Sequence, ys: Mapping[str, Sequence], title: str, x_title: str, y_title: str,
                hlines: Mapping[str, float | None] | None = None, vlines: Mapping[str, float | None] | None = None,
                log_y: bool = False):
    """Lines with markers (one per entry of ``ys``) against a shared ``x``, e.g. a sweep's t_gen
    against the prune ratio; ``hlines`` / ``vlines`` are labelled dotted reference lines (a
    ``None`` value is left out)."""
    fig = xy_figure({name: (x, y) for name, y in ys.items()}, title, x_title, y_title, log_y=log_y)
    for label, v in (hlines or {}).items():
        if v is not None:
            fig.add_hline(y=v, line=dict(dash="dot", color="grey"), annotation_text=label, annotation_position="top left")
    for label, v in (vlines or {}).items():
        if v is not None:
            fig.add_vline(x=v, line=dict(dash="dot", color="grey"), annotation_text=label, annotation_position="top right")
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float | None], title: str, y_title: str, missing: str = "never"):
    """One bar per label, each its own colour, the value written above it; a missing value
    (``None`` or NaN) is an empty bar marked ``missing``."""
    clean = [None if v is None or v != v else v for v in _list(values)]
    fig = go.Figure(go.Bar(x=_list(labels), y=[v if v is not None else 0 for v in clean],
                           text=[f"{v:g}" if v is not None else missing for v in clean], textposition="outside",
                           marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(clean))], cliponaxis=False))
    fig.update_layout(title=title, yaxis_title=y_title, height=450)
    return fig


def bars_figure(x: Sequence, series: Mapping[str, Sequence], title: str, x_title: str, y_title: str):
    """Grouped bars: for each ``x``, one bar per series."""
    colours = run_colours(list(series))
    fig = go.Figure([go.Bar(x=_list(x), y=_list(y), name=name, marker_color=colours[name]) for name, y in series.items()])
    fig.update_layout(barmode="group", title=title, xaxis_title=x_title, yaxis_title=y_title, height=420)
    return fig


def spectrum_bars(values: Sequence[float], highlight: Sequence[int], title: str, x_title: str = "frequency k",
                  y_title: str = "norm", highlight_name: str = "key frequency"):
    """Bars over ``0 .. len(values)-1`` with the indices in ``highlight`` in a second colour."""
    keys = set(int(k) for k in highlight)
    values = _list(values)
    fig = go.Figure()
    for name, picked, colour in ((highlight_name, True, PALETTE[1]), ("other", False, PALETTE[0])):
        idx = [k for k in range(len(values)) if (k in keys) == picked]
        fig.add_trace(go.Bar(x=idx, y=[values[k] for k in idx], name=name, marker_color=colour))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=380, barmode="overlay")
    return fig


def line_and_bars(x: Sequence, line: tuple[str, Sequence], bars: tuple[str, Sequence], title: str, x_title: str):
    """A line (left axis) and bars (right axis) against the same ``x``: two quantities of
    different units over the same epochs."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=_list(x), y=_list(line[1]), name=line[0], mode="lines+markers",
                             line=dict(color=PALETTE[0])), secondary_y=False)
    fig.add_trace(go.Bar(x=_list(x), y=_list(bars[1]), name=bars[0], opacity=0.45, marker_color=PALETTE[1]),
                  secondary_y=True)
    fig.update_layout(title=title, xaxis_title=x_title, height=420, legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(title_text=line[0], secondary_y=False)
    fig.update_yaxes(title_text=bars[0], secondary_y=True)
    return fig


def heatmap_grid(panels: Sequence[tuple[str, object]], cols: int, title: str, x_title: str, y_title: str,
                 y: Sequence | None = None, colorscale: str = "Blues", height_per_row: int = 280):
    """Heatmaps (``panels = [(title, z), ...]``, row by row, ``cols`` per row) on one shared colour
    scale, so that panels compare; the y axes are shared along each row."""
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, vertical_spacing=min(0.14, 0.4 / rows),
                        subplot_titles=[t for t, _ in panels])
    for i, (_, z) in enumerate(panels):
        r, c = divmod(i, cols)
        z = z.tolist() if hasattr(z, "tolist") else z
        fig.add_trace(go.Heatmap(z=z, y=_list(y) if y is not None else None, coloraxis="coloraxis"), row=r + 1, col=c + 1)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text=x_title, row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=y_title, row=r, col=1)
    fig.update_layout(title=title, coloraxis=dict(colorscale=colorscale), height=120 + height_per_row * rows)
    return fig
