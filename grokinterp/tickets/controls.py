"""Controls of a grokking ticket (Minegishi et al., "Grokking Tickets", Sec. 5): the dense base
run itself; a dense network whose initial weights are rescaled to the ticket's initial L1 or L2
norm (:func:`norm_matched_dense`); masks from pruning-at-initialisation methods at the ticket's
density (:func:`pruned_at_init`); and :func:`ticket_controls`, all of them side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import GrokinterpError
from ..masks import check_mask, density
from ..models import Model, named_weights
from ..runs import as_run
from ..runs.layout import CONTROLS_TABLE, sweep_point_name
from ..tasks import Task
from ..sweeps import run_plan
from ..training import TrainResult
from .nets import Include
from .pruners import PRUNERS, prune
from .select import Scope, check_prune_ratio
from .ticket import (
    PlannedTicket,
    TicketRun,
    derived_plan,
    point_dir,
    rewind,
    run_planned,
    run_task,
    ticket_epoch_of,
    ticket_plan,
    ticket_table,
    train_config_of,
)

__all__ = ["norm_matched_dense", "norm_matched_init", "norm_matched_plan", "pruned_at_init", "pruned_at_init_plan", "ticket_controls"]

Norm = Literal["l1", "l2"]
ScoreAt = Literal["init", "final"]


def norm_matched_init(run, mask: Mapping[str, Tensor], norm: Norm = "l2") -> tuple[Model, float]:
    """The run's dense epoch-0 weights rescaled to the ticket's initial norm.

    One global norm: the tensors named in ``mask`` are concatenated into one vector ``w``; the
    ticket's initial vector is ``w ⊙ m``. Every one of those tensors is multiplied by the same
    ``c = ‖w ⊙ m‖ / ‖w‖`` (L1: sums of absolute values, L2: Euclidean norms), so the dense model's
    norm over them equals the ticket's; per-layer norms are not matched and tensors outside the
    mask (biases, ...) are left as they are. Returns ``(model, c)``.
    """
    if norm not in ("l1", "l2"):
        raise GrokinterpError(f"norm must be 'l1' or 'l2', got {norm!r}")
    model = rewind(run)
    mask = check_mask(model, mask)
    params = named_weights(model)
    order = 1 if norm == "l1" else 2
    dense = sum(params[n].detach().double().abs().pow(order).sum() for n in mask)
    ticket = sum((params[n].detach().double() * mask[n]).abs().pow(order).sum() for n in mask)
    if float(dense) == 0.0:
        raise GrokinterpError("the masked tensors are all zero at epoch 0; there is no norm to match")
    c = float((ticket / dense) ** (1.0 / order))
    with torch.no_grad():
        for n in mask:
            params[n].mul_(c)
    return model, c


def norm_matched_dense(
    run,
    mask: Mapping[str, Tensor],
    norm: Norm = "l2",
    out_dir: str | Path | None = None,
    *,
    task: Task | None = None,
    train_config=None,
    reuse: bool = False,
    **overrides,
) -> TicketRun:
    """Train the dense network from :func:`norm_matched_init` (initial weights scaled to the ticket's
    initial L1 or L2 norm, one global factor; see there) with the base run's settings. The run
    directory's parent records ``kind="norm_matched_dense"``, ``norm``, ``scale`` and the mask's
    density. The mask is only used to compute the norm: the network trains dense.
    """
    planned = norm_matched_plan(run, mask, norm, out_dir, task=task, train_config=train_config, reuse=reuse, **overrides)
    return planned.ticket(run_plan(planned.plan))


def norm_matched_plan(run, mask, norm: Norm = "l2", out_dir=None, *, task=None, train_config=None, reuse=False,
                      **overrides) -> PlannedTicket:
    """The plan of :func:`norm_matched_dense` (same arguments), without training it."""
    run = as_run(run)
    model, c = norm_matched_init(run, mask, norm)
    cfg = train_config_of(run, train_config, overrides)
    task = run_task(run, task)
    d = density(check_mask(model, mask))
    plan = derived_plan(run, model, task, cfg, out_dir, None, reuse, kind="norm_matched_dense", norm=norm, scale=c, mask_density=d)
    return PlannedTicket(plan, "norm_matched_dense", None, 1.0 - d, None, {"norm": norm, "scale": c, "method": f"norm_{norm}"})


def pruned_at_init(
    run,
    method: str,
    prune_ratio: float,
    out_dir: str | Path | None = None,
    *,
    scope: Scope = "global",
    include: Include = None,
    task: Task | None = None,
    train_config=None,
    pruner_kwargs: Mapping | None = None,
    score_at: ScoreAt = "init",
    reuse: bool = False,
    **overrides,
) -> TicketRun:
    """Baseline: prune with ``method`` (``magnitude``, ``random``, ``snip``, ``grasp``, ``synflow``,
    ``synflow_batch``) at ``prune_ratio`` (use the ticket's), rewind to the run's epoch-0 weights
    and train with the mask. SNIP, GraSP and ``synflow_batch`` use the task's train split (full
    batch). ``pruner_kwargs`` go to the pruner (``seed``, ``rounds``, ``temperature``).

    ``score_at``: ``"init"`` scores the epoch-0 weights (pruning at initialisation, as the tickets
    paper's text describes it); ``"final"`` scores the run's last checkpoint and then rewinds, as
    the paper's code does (its masks then come out close to the ticket's; ``random`` ignores it).
    The parent record names the choice."""
    planned = pruned_at_init_plan(run, method, prune_ratio, out_dir, scope=scope, include=include, task=task,
                                  train_config=train_config, pruner_kwargs=pruner_kwargs, score_at=score_at,
                                  reuse=reuse, **overrides)
    return planned.ticket(run_plan(planned.plan))


def pruned_at_init_plan(run, method: str, prune_ratio: float, out_dir=None, *, scope: Scope = "global",
                        include: Include = None, task=None, train_config=None, pruner_kwargs=None,
                        score_at: ScoreAt = "init", reuse=False, **overrides) -> PlannedTicket:
    """The plan of :func:`pruned_at_init` (same arguments), without training it."""
    run = as_run(run)
    prune_ratio = check_prune_ratio(prune_ratio)
    if method not in PRUNERS:
        raise GrokinterpError(f"unknown pruning method {method!r}; expected one of {sorted(PRUNERS)}")
    if score_at not in ("init", "final"):
        raise GrokinterpError(f"score_at must be 'init' (the epoch-0 weights) or 'final' (the last checkpoint), got {score_at!r}")
    task = run_task(run, task)
    cfg = train_config_of(run, train_config, overrides)
    model = rewind(run)
    kwargs = dict(pruner_kwargs or {})
    if score_at == "final" and method != "random":
        kwargs["weights"] = run.weights_at()
    mask = prune(method, model, prune_ratio, task, scope, include, **kwargs)
    info = {"method": method, "prune_ratio": prune_ratio, "scope": scope, **({"score_at": score_at} if score_at != "init" else {})}
    plan = derived_plan(run, model, task, cfg, out_dir, mask, reuse, kind="pruned_at_init", **info)
    return PlannedTicket(plan, "pruned_at_init", mask, prune_ratio, None, {"method": method, "scope": scope, "score_at": score_at})


def _base_row(run) -> dict:
    result = TrainResult(None, run.history, run.path)
    return TicketRun("base", result, None, 0.0, None, {"method": "dense"}).row()


def ticket_controls(
    base_run,
    ticket_epoch: int | None = None,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    methods: Sequence[str] = ("random", "snip", "grasp", "synflow"),
    norms: Sequence[Norm] = ("l1", "l2"),
    scope: Scope = "global",
    seed: int = 0,
    train_config=None,
    executor="auto",
    workers: int | None = None,
    progress: bool | None = None,
    **overrides,
):
    """The ticket next to its controls, one row each: the dense base run (from its history), the
    ticket, the norm-matched dense runs (``norms``) and the pruning-at-init baselines (``methods``)
    at the ticket's prune ratio. ``seed`` seeds the random baseline. With ``out_dir``: one
    sub-directory per row and ``controls.csv`` (and ``.parquet``). Columns as :meth:`TicketRun.row`.
    Every run is planned first and the plans train as one sweep (``executor`` / ``workers`` /
    ``progress``: see :func:`grokinterp.sweeps.execute`).
    """
    run = as_run(base_run)
    k = check_prune_ratio(prune_ratio)
    t = ticket_epoch_of(run, ticket_epoch)
    ticket = ticket_plan(
        run, t, k, point_dir(out_dir, sweep_point_name("controls_ticket", ticket_epoch=t, prune_ratio=k)),
        scope=scope, train_config=train_config, reuse=True, **overrides,
    )
    planned = [ticket]
    for norm in norms:
        planned.append(norm_matched_plan(
            run, ticket.mask, norm, point_dir(out_dir, sweep_point_name("norm_matched", method=norm, ticket_epoch=t, prune_ratio=k)),
            train_config=train_config, reuse=True, **overrides,
        ))
    for method in methods:
        kwargs = {"seed": seed} if method == "random" else {}
        planned.append(pruned_at_init_plan(
            run, method, k, point_dir(out_dir, sweep_point_name("pruned_at_init", method=method, prune_ratio=k)),
            scope=scope, train_config=train_config, pruner_kwargs=kwargs, reuse=True, **overrides,
        ))
    rows = [_base_row(run)]
    for p, trained in zip(planned, run_planned(planned, executor, workers, progress)):
        row = trained.row()
        if p.kind == "norm_matched_dense":
            row["ticket_epoch"] = t
        rows.append(row)
    return ticket_table(rows, out_dir, CONTROLS_TABLE)
