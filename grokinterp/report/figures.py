"""Figures and the HTML page of a :class:`grokinterp.report.Report`, drawn from its plain data."""

from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Sequence

from ..metrics import GrokkingTimes
from .html import circuitsvis_attention_html, write_page
from .plotting import training_curves

__all__ = ["report_figures", "report_html"]


def _heatmap(z, title, x_title, y_title, colorscale="RdBu", zmid=0.0, x=None, y=None):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale=colorscale, zmid=zmid))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=420)
    return fig


def embedding_spectrum_figure(report):
    import plotly.graph_objects as go

    s = report.spectra
    freqs = list(range(1, len(s["embedding_cos"]) + 1))
    fig = go.Figure([
        go.Bar(x=freqs, y=s["embedding_cos"], name="cos"),
        go.Bar(x=freqs, y=s["embedding_sin"], name="sin"),
    ])
    keys = set(report.key_frequencies.get("logit", []))
    for k in keys:
        fig.add_vline(x=k, line=dict(color="grey", dash="dot"))
    fig.update_layout(barmode="group", title=f"Embedding norm per Fourier component ({report.basis} basis; key frequencies dotted)",
                      xaxis_title="frequency k", yaxis_title="norm", height=420)
    return fig


def neuron_frequency_figure(report):
    n = report.neurons
    order = sorted(range(n["n_neurons"]), key=lambda i: (n["frequency"][i], -(n["fraction"][i] or 0)))
    z = [n["fractions"][i] for i in order]
    fig = _heatmap(z, f"Fraction of each neuron's variance per frequency ({n['n_clustered']} of {n['n_neurons']} "
                      f"neurons >= {n['threshold']})", "frequency k", "neuron (sorted by dominant frequency)",
                   colorscale="Blues", zmid=None, y=[str(i) for i in order])
    fig.update_yaxes(showticklabels=False)
    return fig


def neuron_grid_figure(report):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    g = report.neuron_grids
    neurons = g["neurons"]
    fig = make_subplots(rows=1, cols=max(1, len(neurons)),
                        subplot_titles=[f"neuron {i} (k={report.neurons['frequency'][i]})" for i in neurons])
    for col, act in enumerate(g["activations"], start=1):
        fig.add_trace(go.Heatmap(z=act, colorscale="Viridis", showscale=col == len(neurons)), row=1, col=col)
        fig.update_xaxes(title_text="b", row=1, col=col)
        fig.update_yaxes(title_text="a" if col == 1 else None, row=1, col=col)
    fig.update_layout(title="Neuron activations over the (a, b) grid", height=380)
    return fig


def logit_spectrum_figure(report):
    return _heatmap(report.logit_spectrum_2d, "Logits: 2D Fourier spectrum over (a, b), norm over the answer c",
                    "component of b", "component of a", colorscale="Blues", zmid=None)


def progress_figure(report):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    rows = report.progress
    epochs = [r["epoch"] for r in rows]
    panels = [
        ("losses", [("restricted_loss", "restricted"), ("excluded_loss", "excluded"), ("test_loss", "test"),
                    ("train_loss", "train")], True),
        ("Gini of Fourier components", [("gini_embed", "W_E"), ("gini_logit", "W_L")], False),
        ("weight norms", [("l2_norm", "L2"), ("sum_sq_weights", "sum of squares")], True),
        ("Fourier entropy / Jaccard", [("fourier_entropy", "Fourier entropy (in)"), ("jaccard_prev", "Jaccard to previous mask")], False),
    ]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in panels])
    for i, (_, series, log) in enumerate(panels):
        r, c = divmod(i, 2)
        for key, label in series:
            if any(key in row and row[key] is not None for row in rows):
                fig.add_trace(go.Scatter(x=epochs, y=[row.get(key) for row in rows], name=label, mode="lines"),
                              row=r + 1, col=c + 1)
        if log:
            fig.update_yaxes(type="log", row=r + 1, col=c + 1)
    t = report.times or {}
    for label in ("t_mem", "t_gen"):
        if t.get(label) is not None:
            for r in (1, 2):
                for c in (1, 2):
                    fig.add_vline(x=t[label], line=dict(color="grey", dash="dot"), row=r, col=c)
    fig.update_layout(title="Progress measures over training", height=650)
    return fig


def mask_figure(report):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    img = report.mask["image"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"mask of {img['name']} (kept = 1)", f"kept weights of {img['name']}"))
    fig.add_trace(go.Heatmap(z=img["mask"], colorscale="Greys", showscale=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=img["weights"], colorscale="RdBu", zmid=0.0), row=1, col=2)
    fig.update_layout(title=f"Mask (density {report.mask['density']:.3f}) next to the weights", height=420)
    return fig


def attention_figure(report):
    import plotly.graph_objects as go

    att = report.attention
    positions = ["a", "b", "="][: len(att["mean"][0])]
    fig = go.Figure([go.Bar(x=[f"head {h}" for h in range(len(att["mean"]))], y=[m[i] for m in att["mean"]], name=f"to {pos}")
                     for i, pos in enumerate(positions)])
    fig.update_layout(barmode="stack", title=f"Attention from the answer position (layer {att['layer']}), mean over pairs",
                      yaxis_title="attention", height=380)
    return fig


def report_figures(report) -> dict:
    """Named plotly figures for one report (those whose data the report has)."""
    figs = {}
    if report.history:
        times = GrokkingTimes(**report.times) if report.times else None
        figs["training curves"] = training_curves(report.history, times)
    figs["embedding spectrum"] = embedding_spectrum_figure(report)
    figs["neuron frequencies"] = neuron_frequency_figure(report)
    figs["neuron activations"] = neuron_grid_figure(report)
    figs["logit 2D spectrum"] = logit_spectrum_figure(report)
    if report.progress:
        figs["progress measures"] = progress_figure(report)
    if report.mask is not None:
        figs["mask"] = mask_figure(report)
    if report.attention is not None:
        figs["attention"] = attention_figure(report)
    return figs


def _summary_table(reports: Sequence, names: Sequence[str]) -> str:
    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return _html.escape(str(v))

    def get(r, path):
        v = r
        for key in path:
            if v is None:
                return None
            v = v.get(key) if isinstance(v, dict) else getattr(v, key, None)
        return v

    rows = [
        ("model", ("model", "kind")), ("p", ("model", "p")), ("op", ("task", "op")),
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
    ]
    head = "".join(f"<th>{_html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{fmt(get(r, path))}</td>" for r in reports) + "</tr>"
        for label, path in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def report_html(reports: Sequence, path: str | Path, title: str, names: Sequence[str] | None = None) -> Path:
    """One self-contained page for one report or several side by side (e.g. a base run and its ticket)."""
    names = list(names) if names is not None else [Path(r.source).name for r in reports]
    sections = [("summary", _summary_table(reports, names))]
    figures = {}
    for name, report in zip(names, reports):
        prefix = f"{name}: " if len(reports) > 1 else ""
        for fig_name, fig in report_figures(report).items():
            figures[prefix + fig_name] = fig
        if report.attention is not None:
            ex = report.attention["example"]
            sections.append((f"{prefix}attention pattern for one pair",
                             circuitsvis_attention_html(ex["tokens"], _tensor(ex["pattern"]))))
    return write_page(path, title, sections, figures)


def _tensor(x):
    import torch

    return torch.tensor(x)
