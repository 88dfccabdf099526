"""Ticket sweeps and the critical prune ratio (Minegishi et al., "Grokking Tickets", Figs. 3-4 and
Sec. 5): tickets over several prune ratios or ticket epochs, and the bracketing search for the largest
prune ratio whose ticket still generalises.

A sweep is a list of run plans handed to one executor (:func:`grokinterp.sweeps.execute`;
``executor="auto"``: this process, in one thread per core when there is more than one batch; ``"dask"`` or a
Dask address / ``Client`` for a cluster); runs of one shape train as one stacked model. Sweeps write
one run folder per point and a table (CSV, and Parquet beside it); rerunning a sweep into the same
folder reuses finished points and resumes interrupted ones. The critical-ratio search trains its
probes one at a time (each depends on the last), each through :func:`grokking_ticket`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import GrokinterpError
from ..metrics import grokking_times
from ..runs import Run, as_run
from ..runs.layout import CRITICAL_TABLE, EPOCH_SWEEP_TABLE, PRUNE_SWEEP_TABLE, sweep_point_name
from .nets import Include
from .select import Scope, check_prune_ratio
from .ticket import grokking_ticket, point_dir, run_planned, ticket_epoch_of, ticket_plan, ticket_table

__all__ = ["CriticalPruneRatio", "check_threshold", "critical_prune_ratio", "largest_generalising", "ticket_epoch_sweep",
           "ticket_prune_sweep"]


def check_threshold(threshold) -> float:
    """An accuracy threshold in (0, 1), or an error saying so."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise GrokinterpError(f"threshold must be an accuracy in (0, 1), got {threshold!r}")
    return float(threshold)


def largest_generalising(points: Sequence[tuple[float, Sequence]], threshold: float = 0.95) -> Optional[float]:
    """The largest prune ratio whose ticket generalises, from ``(prune_ratio, history)`` pairs:
    a ticket generalises when its test accuracy exceeds ``threshold`` at some evaluation (its
    ``t_gen`` at that threshold exists). ``None`` when none does. This is the critical ratio read
    off a full grid of tickets (the bracketing search of :func:`critical_prune_ratio` finds the same
    point when, above the ratios that generalise, every larger ratio fails)."""
    threshold = check_threshold(threshold)
    good = [float(k) for k, history in points if grokking_times(history, threshold).t_gen is not None]
    return max(good) if good else None


def _ticket_sweep(run: Run, points: Sequence[tuple[int, float]], out_dir, table_name: str, executor, workers, progress,
                  **kwargs):
    """One ticket per ``(ticket epoch, prune ratio)`` point, in ``out_dir/t{t}_k{k}``; the table."""
    planned = [
        ticket_plan(run, t, k, point_dir(out_dir, sweep_point_name("ticket", ticket_epoch=t, prune_ratio=k)),
                    reuse=True, **kwargs)
        for t, k in points
    ]
    rows = [ticket.row() for ticket in run_planned(planned, executor, workers, progress)]
    return ticket_table(rows, out_dir, table_name)


def ticket_prune_sweep(
    base_run,
    prune_ratios: Sequence[float],
    ticket_epoch: int | None = None,
    out_dir: str | Path | None = None,
    *,
    scope: Scope = "global",
    include: Include = None,
    train_config=None,
    executor="auto",
    workers: int | None = None,
    progress: bool | None = None,
    **overrides,
):
    """Tickets at a fixed ticket epoch over several prune ratios.

    Returns a DataFrame, one row per prune ratio (columns of :meth:`TicketRun.row`: ``prune_ratio``,
    ``ticket_epoch``, ``density``, ``t_mem``, ``t_gen``, ``tau_grok``, final accuracies, ``run_dir``).
    With ``out_dir``: point runs in ``out_dir/t{t}_k{k}`` and the table in ``prune_sweep.csv``
    (and ``.parquet``). ``executor`` / ``workers`` / ``progress``: see :func:`grokinterp.sweeps.execute`
    (a failed point is a row with its ``error``).
    """
    run = as_run(base_run)
    ratios = [check_prune_ratio(k) for k in prune_ratios]
    t = ticket_epoch_of(run, ticket_epoch)
    return _ticket_sweep(run, [(t, k) for k in ratios], out_dir, PRUNE_SWEEP_TABLE, executor, workers, progress,
                         scope=scope, include=include, train_config=train_config, **overrides)


def ticket_epoch_sweep(
    base_run,
    ticket_epochs: Sequence[int],
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    scope: Scope = "global",
    include: Include = None,
    train_config=None,
    executor="auto",
    workers: int | None = None,
    progress: bool | None = None,
    **overrides,
):
    """Tickets at a fixed prune ratio over several ticket epochs (each a checkpoint of the run).

    Returns a DataFrame, one row per ticket epoch (as :func:`ticket_prune_sweep`). With ``out_dir``:
    point runs in ``out_dir/t{t}_k{k}`` and the table in ``epoch_sweep.csv``
    (and ``.parquet``); ``executor`` / ``workers`` / ``progress`` as there.
    """
    run = as_run(base_run)
    k = check_prune_ratio(prune_ratio)
    epochs = [ticket_epoch_of(run, t) for t in ticket_epochs]
    return _ticket_sweep(run, [(t, k) for t in epochs], out_dir, EPOCH_SWEEP_TABLE, executor, workers, progress,
                         scope=scope, include=include, train_config=train_config, **overrides)


@dataclass
class CriticalPruneRatio:
    """``prune_ratio``: the largest grid ratio whose ticket generalises (``None`` if none of the
    evaluated ones does); ``table``: every evaluated point (as the sweeps, plus ``generalises``), in search
    order; ``bracket``: the (generalises, fails) pair of grid ratios that ended the search."""

    prune_ratio: Optional[float]
    table: object
    bracket: tuple[Optional[float], Optional[float]]
    step: float


def critical_prune_ratio(
    base_run,
    ticket_epoch: int | None = None,
    out_dir: str | Path | None = None,
    *,
    step: float = 0.01,
    start: float = 0.6,
    low: float = 0.0,
    high: float | None = None,
    weight_decay: float = 0.0,
    threshold: float = 0.95,
    scope: Scope = "global",
    include: Include = None,
    train_config=None,
    executor="inline",
    workers: int | None = None,
    **overrides,
) -> CriticalPruneRatio:
    """Largest prune ratio ``k`` on the grid ``low, low + step, ..., high`` whose ticket still
    generalises (test accuracy above ``threshold`` at some evaluation within the epoch budget) when
    retrained with ``weight_decay`` (default 0, as in the paper, which finds 0.81 with step 0.01 at
    the usual 0.95). Without weight decay test accuracy often plateaus below 1, so the critical
    ratio depends on ``threshold``.

    Bracketing search on the grid: train at ``start`` (the grid point nearest to it). If it
    generalises, step upwards with doubling strides (``+1, +2, +4, ...`` grid steps) until a ticket
    fails (or ``high`` is reached, which is returned if it generalises); if it fails, step downwards
    the same way until one generalises (``None`` if none does down to ``low``). Then bisect between
    the last ratio that generalises and the first above it that fails. This costs about
    ``2 log2(distance to the edge) + 1`` tickets and assumes only that, above the ratios that
    generalise, every larger ratio fails (tickets at small k without weight decay may fail too, like
    the dense network; the search does not need them to generalise). ``high`` defaults to the largest
    grid point below 1. With ``out_dir``: one ticket run per evaluated point (``k{k}``) and
    ``critical.csv``. Each probe is one run (the next depends on it), trained where ``executor`` says
    (default: this process).
    """
    run = as_run(base_run)
    threshold = check_threshold(threshold)
    if isinstance(step, bool) or not (isinstance(step, (int, float)) and 0 < step < 1):
        raise GrokinterpError(f"step must lie in (0, 1), got {step!r}")
    low = check_prune_ratio(low)
    start = check_prune_ratio(start)
    n_max = int(math.floor((1.0 - low) / step + 1e-9))
    if low + n_max * step >= 1.0 - 1e-12:
        n_max -= 1
    if high is not None:
        high = check_prune_ratio(high)
        if high < low:
            raise GrokinterpError(f"high ({high}) must be >= low ({low})")
        n_max = min(n_max, int(math.floor((high - low) / step + 1e-9)))
    if n_max < 0:
        raise GrokinterpError(f"no grid point in [{low}, {high}] with step {step}")
    grid = lambda i: round(low + i * step, 10)  # noqa: E731
    t = ticket_epoch_of(run, ticket_epoch)
    cache: dict[int, bool] = {}
    rows: list[dict] = []

    def generalises(i: int) -> bool:
        if i not in cache:
            k = grid(i)
            ticket = grokking_ticket(
                run, t, k, point_dir(out_dir, sweep_point_name("critical", prune_ratio=k)), scope=scope, include=include,
                train_config=train_config, reuse=True, executor=executor, workers=workers, weight_decay=weight_decay,
                **overrides,
            )
            row = ticket.row()
            row["generalises"] = grokking_times(ticket.history, threshold).t_gen is not None
            rows.append(row)
            cache[i] = row["generalises"]
        return cache[i]

    def finish(found, bracket) -> CriticalPruneRatio:
        return CriticalPruneRatio(found, ticket_table(rows, out_dir, CRITICAL_TABLE), bracket, float(step))

    i0 = min(max(int(round((start - low) / step)), 0), n_max)
    stride = 1
    if generalises(i0):
        good = i0
        while True:
            probe = min(good + stride, n_max)
            if probe == good:
                return finish(grid(good), (grid(good), None))
            if not generalises(probe):
                bad = probe
                break
            good, stride = probe, stride * 2
    else:
        bad = i0
        while True:
            probe = max(bad - stride, 0)
            if probe == bad:
                return finish(None, (None, grid(bad)))
            if generalises(probe):
                good = probe
                break
            bad, stride = probe, stride * 2
    while bad - good > 1:
        mid = (good + bad) // 2
        if generalises(mid):
            good = mid
        else:
            bad = mid
    return finish(grid(good), (grid(good), grid(bad)))

