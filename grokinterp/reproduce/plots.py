"""Figures of a reproduction report, drawn from the report's data only (no runs are read):
tau_grok over prune ratios (Fig. 3), the Jaccard trajectory (Fig. 7), Fourier entropy over
training (Fig. 8) and Table 1 next to the paper's values."""

from __future__ import annotations

from typing import Mapping

import plotly.graph_objects as go

from ..report.style import PALETTE
from .claims import PAPER_TABLE1

__all__ = ["report_figures"]


def _experiment(report: Mapping, name: str):
    return next((e for e in report["experiments"] if e["name"] == name), None)


def _quantity(e: Mapping, name: str):
    return next((q for q in e["quantities"] if q["name"] == name), None)


def _prune_sweep(e: Mapping):
    ks, means, stds = [], [], []
    for q in e["quantities"]:
        if q["name"].startswith("tau/k") and q["summary"]["mean"] is not None:
            ks.append(float(q["name"][5:]))
            means.append(q["summary"]["mean"])
            stds.append(q["summary"]["std"] or 0.0)
    if not ks:
        return None
    fig = go.Figure(go.Scatter(x=ks, y=means, error_y=dict(array=stds), mode="lines+markers", name="tickets"))
    fig.update_layout(xaxis_title="prune ratio (fraction removed)", yaxis_title="tau_grok = t_gen / t_mem")
    return fig


def _series(e: Mapping, keys: Mapping[str, str], y_title: str):
    fig, n = go.Figure(), 0
    for key, label in keys.items():
        for seed, points in (e["series"].get(key) or {}).items():
            if points:
                x, y = zip(*points)
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=f"{label}, seed {seed}",
                                         line=dict(color=PALETTE[n % len(PALETTE)])))
                n += 1
    if not n:
        return None
    fig.update_layout(xaxis_title="epoch", yaxis_title=y_title)
    return fig


def _table1(e: Mapping, report: Mapping):
    fig = go.Figure()
    n = 0
    for protocol in ("faithful", "corrected"):
        for row in PAPER_TABLE1:
            qs = [q for q in e["quantities"] if q["name"].startswith(f"{protocol}/{row}/acc@")]
            if not qs:
                continue
            x = [int(q["name"].rsplit("@", 1)[1]) for q in qs]
            fig.add_trace(go.Scatter(x=x, y=[q["summary"]["mean"] for q in qs], name=f"{row} ({protocol})",
                                     error_y=dict(array=[q["summary"]["std"] or 0.0 for q in qs]), mode="lines+markers",
                                     line=dict(color=PALETTE[n % len(PALETTE)])))
            if protocol == "faithful":
                fig.add_trace(go.Scatter(x=x, y=[q["paper"] for q in qs], name=f"{row} (paper)", mode="markers",
                                         marker=dict(symbol="x", size=10, color=PALETTE[n % len(PALETTE)])))
            n += 1
    if not n:
        return None
    fig.update_layout(xaxis_title="epochs after the memorised checkpoint", yaxis_title="test accuracy")
    return fig


def report_figures(report: Mapping) -> dict:
    """Named plotly figures of the experiments present in the report."""
    figs = {}
    if (e := _experiment(report, "fig3")) is not None and (f := _prune_sweep(e)) is not None:
        figs["Fig. 3: tau_grok of tickets over prune ratios"] = f
    if (e := _experiment(report, "fig7")) is not None and (f := _series(e, {"jaccard": "base"}, "Jaccard distance")):
        figs["Fig. 7: Jaccard distance between masks of consecutive checkpoints"] = f
    if (e := _experiment(report, "fig8")) is not None and (
            f := _series(e, {"entropy/base": "base", "entropy/ticket": "ticket"}, "Fourier entropy (nats)")):
        figs["Fig. 8: Fourier entropy of the neurons' input weights"] = f
    if (e := _experiment(report, "table1")) is not None and (f := _table1(e, report)) is not None:
        figs["Table 1: test accuracy from a memorised solution"] = f
    return figs
