"""Shared look of every figure: one colour per run, log axes labelled in powers of ten, and
labels for vertical time markers that keep clear of ticks and curves."""

from __future__ import annotations

from typing import Sequence

__all__ = ["PALETTE", "SPLIT_DASH", "log_axis", "mark_times", "run_colours"]

# a qualitative palette with good contrast on white; run i gets PALETTE[i % len(PALETTE)]
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
SPLIT_DASH = {"train": "dash", "test": "solid"}


def run_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour for each run name, in order (the same names always get the same colours)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def log_axis(fig, axis: str = "y", decades: bool = True, **where) -> None:
    """Make an axis logarithmic with its ticks written as powers of ten, ``1e-6`` (not plotly's SI
    ``1µ``): one tick per decade (``decades=True``, for losses spanning many), else ticks at 1, 2
    and 5 times each power of ten (``2e+1, 5e+1, 1e+2``, for a quantity within a decade or two)."""
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(type="log", tickformat=".0e", dtick=1 if decades else "D2", **where)


def mark_times(fig, times: dict[str, int | None], colour: str = "grey", label_prefix: str = "", rows_cols=((1, 1),),
               level: int = 0) -> None:
    """Vertical lines at the epochs in ``times`` (e.g. ``{"t_mem": 100, "t_gen": 400}``) on every
    (row, col) panel, labelled once in the strip above the first panel.

    Labels sit above the plot area (so they never cover a curve), anchored to the right of their
    line (so the first one clears the y-axis tick labels), and each further label, and each run's
    ``level``, is raised by one line (so close epochs do not overprint).
    """
    dashes = {"t_mem": "dash", "t_gen": "dot"}
    n = 0
    for name, epoch in times.items():
        if epoch is None:
            continue
        for row, col in rows_cols:
            fig.add_vline(x=epoch, line=dict(color=colour, dash=dashes.get(name, "dashdot"), width=1), row=row, col=col)
        row, col = rows_cols[0]
        fig.add_annotation(
            x=epoch, y=1.0, xref="x", yref="y domain", yanchor="bottom", xanchor="left", xshift=2,
            yshift=2 + 14 * (2 * level + n), text=f"{label_prefix}{name} = {epoch}", showarrow=False,
            font=dict(size=11, color=colour), row=row, col=col,
        )
        n += 1
