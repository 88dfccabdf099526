"""Figures over training: accuracy / loss curves of one run or of several overlaid on one shared
epoch axis, the progress measures, and a figure that steps through checkpoints with a slider. Plot code only (the numbers come from a run's history, a report or a
sweep table).

Conventions: one colour per run (:func:`grokinterp.report.style.run_colours`), test solid and train
dashed, loss axes logarithmic with ticks at powers of ten, ``t_mem`` / ``t_gen`` as vertical lines
labelled above the plot area.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import SPLIT_DASH, log_axis, mark_times, run_colours

__all__ = [
    "MARKER_LIMIT",
    "PROGRESS_PANELS",
    "compare_curves",
    "panel_legends",
    "progress_figure",
    "slider_figure",
    "training_curves",
]

# curves with at most this many points are drawn with markers, so that sparse checkpoints read as samples
MARKER_LIMIT = 40

# (panel title, y-axis title, [(key, label)], log y)
PROGRESS_PANELS = (
    ("losses", "loss", [("restricted_loss", "restricted"), ("excluded_loss", "excluded"), ("test_loss", "test"),
                        ("train_loss", "train")], True),
    ("Gini of Fourier components", "Gini coefficient", [("gini_embed", "W_E"), ("gini_logit", "W_L")], False),
    ("weight norms", "norm", [("l2_norm", "L2"), ("sum_sq_weights", "sum of squares")], True),
    ("Fourier entropy / mask movement", "nats / Jaccard distance",
     [("fourier_entropy", "Fourier entropy (in)"), ("jaccard_prev", "Jaccard to previous mask")], False),
)


def _mode(n: int) -> str:
    return "lines+markers" if n <= MARKER_LIMIT else "lines"


def panel_legends(fig, n_panels: int, gap: float = 0.1) -> None:
    """One horizontal legend under each subplot, below its x-axis title, so that no legend covers a
    curve (traces must carry ``legend="legend{i}"``, i = 1 for the first panel: plain ``legend``).
    ``gap`` is the distance below the panel, in figure fractions."""
    for i in range(1, n_panels + 1):
        suffix = "" if i == 1 else str(i)
        xd = fig.layout[f"xaxis{suffix}"].domain
        yd = fig.layout[f"yaxis{suffix}"].domain
        fig.layout[f"legend{suffix}"] = dict(x=xd[0], y=yd[0] - gap, xanchor="left", yanchor="top", orientation="h",
                                             font=dict(size=10), bgcolor="rgba(255,255,255,0)", entrywidth=0)


def training_curves(history: Sequence[Mapping], times=None, title: str = "Training curves"):
    """Train / test accuracy and loss against epoch (loss on a log axis), with t_mem and t_gen marked
    as vertical lines when given (a :class:`grokinterp.GrokkingTimes` or a dict)."""
    name = "run"
    return compare_curves({name: history}, {name: times} if times is not None else None, title=title, single=True)


def _times_dict(t) -> dict:
    if t is None:
        return {}
    d = t if isinstance(t, Mapping) else vars(t)
    return {"t_mem": d.get("t_mem"), "t_gen": d.get("t_gen")}


def compare_curves(histories: Mapping[str, Sequence[Mapping]], times: Mapping[str, object] | None = None,
                   title: str = "Training curves", single: bool = False):
    """Accuracy (left) and loss (right) of every run overlaid on one shared epoch axis: one colour per
    run, test solid and train dashed; each run's t_mem / t_gen as vertical lines in its colour."""
    names = list(histories)
    colours = run_colours(names) if not single else {names[0]: None}
    split_colours = {"train": "#1f77b4", "test": "#d62728"}
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.1)
    for name, history in histories.items():
        epochs = [r["epoch"] for r in history]
        for split in ("train", "test"):
            for col, metric in ((1, "acc"), (2, "loss")):
                key = f"{split}_{metric}"
                if not history or not all(key in r for r in history):
                    continue
                colour = split_colours[split] if single else colours[name]
                label = f"{split} {metric}" if single else f"{name}: {split} {metric}"
                fig.add_trace(go.Scatter(
                    x=epochs, y=[r[key] for r in history], name=label, mode=_mode(len(epochs)), marker=dict(size=4),
                    line=dict(color=colour, dash=SPLIT_DASH[split] if not single else ("dot" if metric == "loss" else "solid")),
                    legendgroup=name, legend="legend" if col == 1 else "legend2",
                ), row=1, col=col)
    for level, name in enumerate(names):
        t = _times_dict((times or {}).get(name))
        if t:
            mark_times(fig, t, colour="grey" if single else colours[name], label_prefix="" if single else f"{name} ",
                       rows_cols=((1, 1), (1, 2)), level=level)
    log_axis(fig, "y", row=1, col=2)
    fig.update_yaxes(title_text="accuracy", range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    top = 60 + 28 * len(names)
    legend_rows = 2 if single else 1 + len(names)
    height = 340 + 28 * len(names) + 22 * legend_rows
    fig.update_layout(title=dict(text=title, y=0.99, yanchor="top"), height=height,
                      margin=dict(t=top, b=60 + 22 * legend_rows), hovermode="x unified")
    panel_legends(fig, 2, gap=70 / (height - top - 60 - 22 * legend_rows))
    return fig


def progress_figure(progress: Mapping[str, Sequence[Mapping]], times: Mapping[str, object] | None = None,
                    title: str = "Progress measures over training"):
    """The progress measures of one or several runs (``{name: rows}``, rows as in
    ``Report.progress``), four panels on a shared epoch axis: losses (train, test, restricted,
    excluded), Gini of the Fourier components of W_E and W_L, weight norms, and Fourier entropy with
    the Jaccard distance between consecutive magnitude masks. Colour = run (one run: colour =
    measure); few checkpoints are drawn with markers."""
    names = list(progress)
    single = len(names) == 1
    colours = run_colours(names)
    dashes = ("solid", "dash", "dot", "dashdot")
    legend_rows = 2 if single else 1 + 2 * len(names)
    height = 640 + 44 * legend_rows
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in PROGRESS_PANELS], shared_xaxes=False,
                        vertical_spacing=min(0.5, (120 + 22 * legend_rows) / height), horizontal_spacing=0.1)
    palette = list(run_colours([str(i) for i in range(4)]).values())
    for i, (_, y_title, series, log) in enumerate(PROGRESS_PANELS):
        r, c = divmod(i, 2)
        legend = "legend" if i == 0 else f"legend{i + 1}"
        for name, rows in progress.items():
            epochs = [row["epoch"] for row in rows]
            for j, (key, label) in enumerate(series):
                if not any(row.get(key) is not None for row in rows):
                    continue
                fig.add_trace(go.Scatter(
                    x=epochs, y=[row.get(key) for row in rows], name=label if single else f"{name}: {label}",
                    mode=_mode(len(epochs)), marker=dict(size=5),
                    line=dict(color=palette[j] if single else colours[name], dash="solid" if single else dashes[j % 4]),
                    legend=legend, legendgroup=f"{name}{i}",
                ), row=r + 1, col=c + 1)
        if log:
            log_axis(fig, "y", decades=i == 0, row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=y_title, row=r + 1, col=c + 1)
        fig.update_xaxes(title_text="epoch", row=r + 1, col=c + 1)
    for name in names:
        t = _times_dict((times or {}).get(name))
        for label, epoch in t.items():
            if epoch is not None:
                for r in (1, 2):
                    for c in (1, 2):
                        fig.add_vline(x=epoch, line=dict(color="grey" if single else colours[name],
                                                         dash="dash" if label == "t_mem" else "dot", width=1), row=r, col=c)
    sparse = max((len(rows) for rows in progress.values()), default=0) <= MARKER_LIMIT
    note = " (markers: the measured checkpoints)" if sparse else ""
    fig.update_layout(title=title + note + "; dashed / dotted lines: t_mem / t_gen", height=height,
                      margin=dict(b=40 + 22 * legend_rows))
    panel_legends(fig, 4, gap=62 / height)
    return fig


def slider_figure(epochs: Sequence[int], series: Mapping[str, Sequence[Sequence[float]]], x: Sequence,
                  title: str, x_title: str, y_title: str, kind: str = "bar"):
    """Step through checkpoints with a slider: for checkpoint ``i``, trace ``name`` shows
    ``series[name][i]`` over ``x`` (bars or lines). One plotly frame per checkpoint (named by its
    epoch), starting at the first; the y range is fixed over all frames so that growth and decay
    are visible."""
    if not epochs:
        raise ValueError("slider_figure needs at least one checkpoint")
    names = list(series)
    colours = run_colours(names)
    make = (lambda name, y: go.Bar(x=list(x), y=list(y), name=name, marker_color=colours[name])) if kind == "bar" else \
        (lambda name, y: go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers", line=dict(color=colours[name])))
    top = max((v for s in series.values() for frame in s for v in frame if v is not None), default=1.0)
    frames = [go.Frame(data=[make(n, series[n][i]) for n in names], name=str(e)) for i, e in enumerate(epochs)]
    fig = go.Figure(data=list(frames[0].data), frames=frames)
    steps = [dict(method="animate", label=str(e),
                  args=[[str(e)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
             for e in epochs]
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, height=480, barmode="group",
        yaxis=dict(range=[0, 1.05 * top]),
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="epoch "), pad=dict(t=50))],
    )
    return fig
