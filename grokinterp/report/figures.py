"""The figure library of reports, notebooks and docs, and the HTML page of one or several reports.

``report_figures(report)`` draws every figure of one :class:`grokinterp.report.Report` from its plain
data; ``comparison_figures(reports, names)`` the views that put several runs side by side (curves
overlaid on one epoch axis, aligned spectra and progress measures, a checkpoint slider);
``report_html(reports, path, title, names)`` writes them into one offline page. The drawing
functions themselves live in :mod:`~grokinterp.report.fig_training` (over training),
:mod:`~grokinterp.report.fig_weights` (weights and spectra in the Fourier basis),
:mod:`~grokinterp.report.fig_model` (masks, attention) and :mod:`~grokinterp.report.fig_basic`
(lines and bars of result tables); they are re-exported here, so notebooks import one module.
"""

from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..errors import GrokinterpError
from .fig_basic import bar_figure, bars_figure, heatmap_grid, line_and_bars, line_figure, spectrum_bars, xy_figure
from .fig_model import attention_figure, mask_figure
from .fig_training import compare_curves, progress_figure, slider_figure, training_curves
from .fig_weights import (
    basis_figure,
    cluster_logit_figure,
    embedding_spectrum_figure,
    fourier_heatmap,
    logit_spectrum_figure,
    neuron_frequency_figure,
    neuron_grid_figure,
    neuron_spectra_figure,
    svd_figure,
)
from .definitions import definition_html
from .html import PlotlyJS, circuitsvis_attention_html, write_page
from .plotting import use_offline_renderer
from .style import run_colours

__all__ = [
    "aligned_spectra_figure",
    "attention_figure",
    "bar_figure",
    "bars_figure",
    "basis_figure",
    "checkpoint_slider",
    "cluster_logit_figure",
    "compare_curves",
    "comparison_figures",
    "embedding_spectrum_figure",
    "fourier_heatmap",
    "heatmap_grid",
    "line_and_bars",
    "line_figure",
    "logit_spectrum_figure",
    "mask_figure",
    "neuron_frequency_figure",
    "neuron_grid_figure",
    "neuron_spectra_figure",
    "progress_figure",
    "report_figures",
    "report_html",
    "slider_figure",
    "spectrum_bars",
    "summary_rows",
    "svd_figure",
    "training_curves",
    "use_offline_renderer",
    "xy_figure",
]

# per-run figures are added to a comparison page for at most this many runs (beyond, only the comparison views)
PER_RUN_LIMIT = 4


# ------------------------------------------------------------------------------------ one report
def _times(report):
    return report.times if report.times else None


def checkpoint_slider(reports: Sequence, names: Sequence[str]):
    """Embedding norm per frequency at each checkpoint, one slider step per epoch, one colour per run.
    Runs measured at different epochs show, at each step, their latest checkpoint at or before it."""
    rows = {n: [r for r in (rep.progress or []) if r.get("embedding_spectrum")] for n, rep in zip(names, reports)}
    rows = {n: v for n, v in rows.items() if v}
    if not rows:
        return None
    epochs = sorted({r["epoch"] for v in rows.values() for r in v})
    series = {}
    for name, v in rows.items():
        frames = []
        for e in epochs:
            before = [r for r in v if r["epoch"] <= e]
            frames.append((before[-1] if before else v[0])["embedding_spectrum"][1:])
        series[name] = frames
    n = len(next(iter(series.values()))[0])
    return slider_figure(epochs, series, list(range(1, n + 1)),
                         "Embedding norm per frequency over training (move the slider to step through checkpoints)",
                         "frequency k", "norm")


def report_figures(report) -> dict:
    """Named plotly figures for one report (those whose data the report has)."""
    figs = {}
    if report.history:
        figs["training curves"] = training_curves(report.history, _times(report))
    if report.progress:
        figs["progress measures"] = progress_figure({"run": report.progress}, {"run": _times(report)})
        slider = checkpoint_slider([report], ["run"])
        if slider is not None:
            figs["embedding spectrum over training"] = slider
    s, n = report.spectra, report.neurons
    figs["embedding spectrum"] = embedding_spectrum_figure(s["embedding_cos"], s["embedding_sin"],
                                                           report.key_frequencies.get("logit", []), report.basis)
    v = report.views
    if v is not None:
        total = v["embed_total"]
        shown = len(v["embed"][0]) if v["embed"] else 0
        figs["W_E in the Fourier basis"] = fourier_heatmap(
            v["embed"], v["names"], f"Embedding W_E in the Fourier basis ({shown} of {total} directions, "
            "largest norm first, grouped by dominant component)", "embedding direction", x=[str(c) for c in v["embed_columns"]])
        figs["W_L in the Fourier basis"] = fourier_heatmap(
            v["logit_map"], v["names"], "Neuron-to-logit map W_L = W_out W_U in the Fourier basis of the answer",
            "neuron", x=[str(i) for i in range(len(v["logit_map"]))], components_on="x")
        figs["neuron-input map in the Fourier basis"] = fourier_heatmap(
            v["neuron_input"], v["names"], f"Neuron-input map W_neur = {v['neuron_input_path']} in the Fourier basis of the token",
            "neuron", x=[str(i) for i in range(len(v["neuron_input"][0]) if v["neuron_input"] else 0)])
        if v["cluster_logit"]["frequencies"]:
            figs["W_L per neuron cluster"] = cluster_logit_figure(v["cluster_logit"]["frequencies"], v["cluster_logit"]["norms"], v["names"])
        figs["embedding SVD"] = svd_figure(v["svd"]["singular_values"], v["svd"]["vectors"])
    figs["neuron frequencies"] = neuron_frequency_figure(n["fractions"], n["frequency"], n["fraction"], n["n_clustered"], n["threshold"])
    g = report.neuron_grids
    figs["neuron activations"] = neuron_grid_figure(g["activations"], g["neurons"], [n["frequency"][i] for i in g["neurons"]])
    if v is not None and v["neuron_spectra_2d"]["neurons"]:
        sp = v["neuron_spectra_2d"]
        figs["neuron 2D spectra"] = neuron_spectra_figure(sp["spectra"], sp["neurons"], v["names"],
                                                          [n["frequency"][i] for i in sp["neurons"]])
    names = v["names"] if v is not None else [str(i) for i in range(len(report.logit_spectrum_2d))]
    figs["logit 2D spectrum"] = logit_spectrum_figure(report.logit_spectrum_2d, names)
    if report.mask is not None:
        figs["mask"] = mask_figure(report.mask)
    if report.attention is not None:
        figs["attention"] = attention_figure(report.attention)
    return figs


# --------------------------------------------------------------------------------- several reports
def aligned_spectra_figure(reports: Sequence, names: Sequence[str]):
    """Per-frequency norms of W_E and of W_L for every run on shared frequency axes (a colour per run;
    each run's key frequencies marked on its curve)."""
    colours = run_colours(names)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("embedding W_E", "neuron-to-logit map W_L"), shared_xaxes=True)
    for name, rep in zip(names, reports):
        keys = set(rep.key_frequencies.get("logit", []))
        for col, key in ((1, "embedding"), (2, "logit")):
            y = rep.spectra[key]
            fig.add_trace(go.Scatter(
                x=list(range(len(y))), y=y, name=name, legendgroup=name, showlegend=col == 1,
                mode="lines+markers", line=dict(color=colours[name]),
                marker=dict(size=[9 if k in keys else 4 for k in range(len(y))], symbol=["diamond" if k in keys else "circle" for k in range(len(y))]),
            ), row=1, col=col)
            fig.update_xaxes(title_text="frequency k (0 = constant)", row=1, col=col)
            fig.update_yaxes(title_text="norm", row=1, col=col)
    fig.update_layout(title="Spectra of every run (diamonds: that run's key frequencies)", height=420)
    return fig


def comparison_figures(reports: Sequence, names: Sequence[str]) -> dict:
    """The figures that compare runs: curves of every run overlaid on one epoch axis, their progress
    measures, aligned spectra and a checkpoint slider (those whose data the reports have)."""
    figs = {}
    with_history = [(n, r) for n, r in zip(names, reports) if r.history]
    if with_history:
        figs["training curves of every run"] = compare_curves({n: r.history for n, r in with_history},
                                                               {n: _times(r) for n, r in with_history},
                                                               title="Accuracy and loss of every run (test solid, train dashed)")
    with_progress = [(n, r) for n, r in zip(names, reports) if r.progress]
    if with_progress:
        figs["progress measures of every run"] = progress_figure({n: r.progress for n, r in with_progress},
                                                                 {n: _times(r) for n, r in with_progress},
                                                                 title="Progress measures of every run")
        slider = checkpoint_slider([r for _, r in with_progress], [n for n, _ in with_progress])
        if slider is not None:
            figs["embedding spectrum over training, every run"] = slider
    figs["spectra of every run"] = aligned_spectra_figure(reports, names)
    return figs


def summary_rows() -> list[tuple[str, tuple[str, ...]]]:
    """(label, path into the report) of each row of the summary table."""
    return [
        ("model", ("model", "kind")), ("p", ("model", "p")), ("op", ("task", "op")),
        ("pairs", ("task", "pairs")), ("task assumed", ("task_assumed",)), ("task note", ("task_note",)),
        ("train accuracy", ("metrics", "train_acc")), ("test accuracy", ("metrics", "test_acc")),
        ("train loss", ("metrics", "train_loss")), ("test loss", ("metrics", "test_loss")),
        ("key frequencies (W_L)", ("key_frequencies", "logit")), ("key frequencies (W_E)", ("key_frequencies", "embed")),
        ("key frequencies (neurons)", ("key_frequencies", "neuron")),
        ("restricted loss", ("restricted_loss", "loss")), ("excluded loss", ("excluded_loss", "loss")),
        ("logit fit (fraction explained)", ("trig", "fit", "fraction_explained")),
        ("neurons in a cluster", ("neurons", "n_clustered")), ("Gini W_E", ("gini", "embed")), ("Gini W_L", ("gini", "logit")),
        ("L2 norm", ("weight_norms", "l2")), ("Fourier entropy (in)", ("fourier_entropy", "in")),
        ("t_mem", ("times", "t_mem")), ("t_gen", ("times", "t_gen")), ("tau_grok", ("times", "tau_grok")),
        ("mask density", ("mask", "density")), ("mask alignment ratio", ("mask", "alignment", "ratio")),
        ("clock or pizza", ("clock_pizza", "verdict")), ("gradient symmetricity", ("clock_pizza", "gradient_symmetricity")),
        ("distance irrelevance", ("clock_pizza", "distance_irrelevance")),
    ]


def lookup(report, path: Sequence[str]):
    """The value at ``path`` in a report (``None`` where a section is missing)."""
    v = report
    for key in path:
        if v is None:
            return None
        v = v.get(key) if isinstance(v, dict) else getattr(v, key, None)
    return v


def _summary_table(reports: Sequence, names: Sequence[str]) -> str:
    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return _html.escape(str(v))

    colours = run_colours(names)
    head = "".join(f'<th><span class="swatch" style="background:{colours[n]}"></span>{_html.escape(n)}</th>' for n in names)
    body = "".join(
        f"<tr><td>{_html.escape(label)}</td>" + "".join(f"<td>{fmt(lookup(r, path))}</td>" for r in reports) + "</tr>"
        for label, path in summary_rows()
    )
    sources = "<tr><td>source</td>" + "".join(f"<td>{_html.escape(str(r.source))}</td>" for r in reports) + "</tr>"
    return f"<table><tr><th></th>{head}</tr>{body}{sources}</table>"


def report_html(reports: Sequence, path: str | Path, title: str, names: Sequence[str] | None = None,
                plotlyjs: PlotlyJS = "inline") -> Path:
    """One offline page for one report or several compared (a base run and its ticket, controls,
    seeds): the summary table, the definitions of its numbers (formulas drawn by MathJax, inline or
    beside the page like plotly.js), for several runs the comparison views (curves overlaid on one epoch
    axis, aligned spectra and progress measures, a checkpoint slider), then each run's own figures
    (for up to four runs). ``plotlyjs``: ``"inline"`` (one self-contained file) or ``"directory"``
    (``plotly.min.js`` written once next to the page and referenced relatively)."""
    reports = list(reports)
    if not reports:
        raise GrokinterpError("report_html needs at least one report")
    names = [str(n) for n in names] if names is not None else [Path(r.source).name for r in reports]
    if len(names) != len(reports) or len(set(names)) != len(names):
        raise GrokinterpError(f"report_html needs one distinct name per report; got {len(reports)} reports and names {names}")
    several = len(reports) > 1
    sections = [("summary", _summary_table(reports, names))]
    present = [label for label, key in summary_rows() if any(lookup(r, key) is not None for r in reports)]
    definitions = definition_html(present)
    if definitions:
        sections.append(("definitions", definitions))
    figures = comparison_figures(reports, names) if several else {}
    per_run = not several or len(reports) <= PER_RUN_LIMIT
    for name, report in zip(names, reports):
        if not per_run:
            break
        prefix = f"{name}: " if several else ""
        for fig_name, fig in report_figures(report).items():
            figures[prefix + fig_name] = fig
        if report.attention is not None:
            ex = report.attention["example"]
            sections.append((f"{prefix}attention pattern for one pair",
                             circuitsvis_attention_html(ex["tokens"], torch.tensor(ex["pattern"]))))
    intro = "" if per_run else f"{len(reports)} runs: the comparison views only (each run's own figures are in its own report)."
    return write_page(path, title, sections, figures, plotlyjs=plotlyjs, intro=intro)
