"""Grokking tickets (Minegishi et al., "Grokking Tickets: Lottery Tickets Accelerate Grokking").

A grokking ticket of a base run at ticket epoch ``t`` and prune ratio ``k``: take the checkpoint at
epoch ``t``, build the global magnitude mask that removes the fraction ``k`` of the weights, rewind
to the run's epoch-0 weights and retrain with the mask (same task split and optimiser unless
overridden). Each ticket is its own run directory; its ``config.json`` records the parent run (its
path and spec key), ``t``, ``k`` and the mask.

Every derived run here (tickets, controls, sweep points) is first a plan
(:class:`PlannedTicket`: a :class:`grokinterp.sweeps.RunPlan` and how to describe its result):
one run trains through :func:`retrain`, a sweep hands all its plans to
:func:`grokinterp.sweeps.execute`. A derived run's folder is reused when it already holds the same
run (same spec: the loop's one comparison) and resumed when it was interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from torch import Tensor

from ..checks import replace_fields
from ..errors import GrokinterpError
from ..masks import Mask, apply_mask_, check_mask, density
from ..models import Model
from ..runs import Run, as_run
from ..sweeps import Outcome, RunPlan, execute, run_plan, write_table
from ..tasks import Task
from ..training import TrainConfig, TrainResult
from .nets import Include
from .pruners import magnitude_mask
from .select import Scope, check_prune_ratio

__all__ = ["PlannedTicket", "TicketRun", "derived_plan", "grokking_ticket", "retrain", "rewind", "run_planned", "ticket_mask", "ticket_plan", "ticket_table"]


def ticket_epoch_of(run: Run, ticket_epoch: int | None) -> int:
    """A checkpoint epoch of the run (``None``: the last), or an error listing them."""
    if not run.checkpoint_epochs:
        raise GrokinterpError(f"{run.path}: the run has no checkpoints")
    if ticket_epoch is None:
        return run.checkpoint_epochs[-1]
    if isinstance(ticket_epoch, bool) or not isinstance(ticket_epoch, int):
        raise GrokinterpError(f"ticket_epoch must be an integer checkpoint epoch, got {ticket_epoch!r}")
    if ticket_epoch not in run.checkpoint_epochs:
        raise GrokinterpError(
            f"{run.path}: no checkpoint at epoch {ticket_epoch}; the ticket epoch must be one of the run's "
            f"checkpoints {run.checkpoint_epochs}"
        )
    return ticket_epoch


def train_config_of(run: Run, config: TrainConfig | None, overrides: Mapping) -> TrainConfig:
    """The base run's training settings (or ``config``) with single fields replaced."""
    cfg = config if config is not None else TrainConfig.from_dict(run.config.get("train", {}))
    if not isinstance(cfg, TrainConfig):
        raise GrokinterpError(f"train_config must be a TrainConfig, got {type(cfg).__name__}")
    return replace_fields(cfg, overrides, "training setting(s)")


def run_task(run: Run, task: Task | None) -> Task:
    task = task if task is not None else run.task
    if task is None:
        raise GrokinterpError(f"{run.path}: the run records no task; pass task=")
    return task


def rewind(run, mask: Mapping[str, Tensor] | None = None) -> Model:
    """The run's epoch-0 weights in a fresh model (exactly the stored init), with the mask's pruned
    weights zeroed when a mask is given."""
    run = as_run(run)
    if 0 not in run.checkpoint_epochs:
        raise GrokinterpError(f"{run.path}: no epoch-0 checkpoint, so there are no initial weights to rewind to")
    model = run.model_at(0)
    if mask is not None:
        apply_mask_(model, check_mask(model, mask))
    return model


def ticket_mask(
    run, ticket_epoch: int | None, prune_ratio: float = 0.6, *, scope: Scope = "global", include: Include = None
) -> Mask:
    """Magnitude mask of the run's weights at checkpoint ``ticket_epoch`` (``None``: the last)."""
    run = as_run(run)
    check_prune_ratio(prune_ratio)
    return magnitude_mask(run.model_at(ticket_epoch_of(run, ticket_epoch)), prune_ratio, scope, include)


@dataclass
class TicketRun:
    """One retraining: a ticket, a control or a baseline.

    ``kind``: ``"grokking_ticket"``, ``"norm_matched_dense"``, ``"pruned_at_init"`` or ``"base"``.
    ``result`` is the :class:`~grokinterp.training.TrainResult` (model, history, run_dir, times).
    """

    kind: str
    result: object
    mask: Optional[Mask] = None
    prune_ratio: Optional[float] = None
    ticket_epoch: Optional[int] = None
    info: dict = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def times(self):
        return self.result.times

    @property
    def history(self) -> list[dict]:
        return self.result.history

    @property
    def run_dir(self) -> Optional[Path]:
        return self.result.run_dir

    @property
    def model(self) -> Model:
        return self.result.model

    def row(self) -> dict:
        """One table row: kind, prune ratio, ticket epoch, density, t_mem, t_gen, tau_grok, final accuracies."""
        times = self.times
        last = self.history[-1] if self.history else {}
        return {
            "kind": self.kind,
            "method": self.info.get("method"),
            "prune_ratio": self.prune_ratio,
            "ticket_epoch": self.ticket_epoch,
            "density": density(self.mask) if self.mask is not None else 1.0,
            "t_mem": times.t_mem,
            "t_gen": times.t_gen,
            "tau_grok": times.tau_grok,
            "final_epoch": last.get("epoch"),
            "final_train_acc": last.get("train_acc"),
            "final_test_acc": last.get("test_acc"),
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "error": self.error,
        }



def derived_plan(run: Run, model: Model, task: Task, cfg: TrainConfig, out_dir, mask, reuse: bool, **info) -> RunPlan:
    """The plan of a run derived from ``run``, starting from ``model``'s current weights (parent
    ``{"run": path, **info}``, the parent's spec key recorded beside it)."""
    parent = {"run": str(run.path) if run.path is not None else None, **info}
    source = {"run": parent["run"], "epoch": 0, **({"scale": info["scale"]} if "scale" in info else {})}
    return RunPlan.of(task, model, cfg, out_dir, mask=mask, parent=parent, parent_key=run.key, reuse=reuse,
                      init_source=source)


@dataclass
class PlannedTicket:
    """A derived run before it trains: its plan and what its :class:`TicketRun` will say."""

    plan: RunPlan
    kind: str
    mask: Optional[Mask] = None
    prune_ratio: Optional[float] = None
    ticket_epoch: Optional[int] = None
    info: dict = field(default_factory=dict)

    def ticket(self, result: TrainResult, error: Optional[str] = None) -> TicketRun:
        return TicketRun(self.kind, result, self.mask, self.prune_ratio, self.ticket_epoch, dict(self.info), error)

    def from_outcome(self, outcome: Outcome) -> TicketRun:
        return self.ticket(outcome.result(self.plan), outcome.error)


def retrain(run: Run, model: Model, task: Task, cfg: TrainConfig, out_dir, mask, reuse: bool, **info) -> TrainResult:
    """Train a run derived from ``run`` (see :func:`derived_plan`) in this process. ``reuse``: a
    folder that already holds this run is read back if finished and resumed if not; one that holds
    another run is refused, naming what differs."""
    return run_plan(derived_plan(run, model, task, cfg, out_dir, mask, reuse, **info))


def run_planned(planned: Sequence[PlannedTicket], executor="auto", workers: int | None = None,
                progress: bool | None = None) -> list[TicketRun]:
    """Train planned runs as one sweep (:func:`grokinterp.sweeps.execute`); ``progress`` defaults to
    the runs' own ``progress`` setting."""
    if progress is None:
        progress = any(p.plan.train.progress for p in planned)
    outcomes = execute([p.plan for p in planned], executor, workers=workers, progress=progress)
    return [p.from_outcome(o) for p, o in zip(planned, outcomes)]


def ticket_plan(
    base_run,
    ticket_epoch: int | None,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    scope: Scope = "global",
    include: Include = None,
    task: Task | None = None,
    train_config=None,
    reuse: bool = False,
    **overrides,
) -> PlannedTicket:
    """The plan of :func:`grokking_ticket` (same arguments), without training it."""
    run = as_run(base_run)
    prune_ratio = check_prune_ratio(prune_ratio)
    t = ticket_epoch_of(run, ticket_epoch)
    cfg = train_config_of(run, train_config, overrides)
    task = run_task(run, task)
    mask = ticket_mask(run, t, prune_ratio, scope=scope, include=include)
    plan = derived_plan(run, rewind(run), task, cfg, out_dir, mask, reuse,
                        ticket_epoch=t, prune_ratio=prune_ratio, kind="grokking_ticket", scope=scope)
    return PlannedTicket(plan, "grokking_ticket", mask, prune_ratio, t, {"scope": scope, "method": "magnitude"})


def grokking_ticket(
    base_run,
    ticket_epoch: int | None,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    scope: Scope = "global",
    include: Include = None,
    task: Task | None = None,
    train_config=None,
    reuse: bool = False,
    executor="inline",
    workers: int | None = None,
    **overrides,
) -> TicketRun:
    """Grokking ticket: magnitude mask at checkpoint ``ticket_epoch`` (``None``: last) removing the
    fraction ``prune_ratio``, rewound to the epoch-0 weights, retrained with the mask.

    Training settings are the base run's (``train_config`` replaces them; keyword ``overrides``
    replace single fields, e.g. ``weight_decay=0.0, epochs=5000``); the task split is the base run's
    unless ``task`` is given. ``out_dir`` (optional) becomes the ticket's run directory, recording
    ``parent = {"run", "ticket_epoch", "prune_ratio", "kind": "grokking_ticket", "scope"}`` and the
    mask (``mask.safetensors``). ``reuse``: read back a finished run already in ``out_dir`` (same
    settings) or resume an interrupted one instead of failing. ``executor`` / ``workers``: where it
    trains (default: this process; see :func:`grokinterp.sweeps.execute`).
    """
    planned = ticket_plan(base_run, ticket_epoch, prune_ratio, out_dir, scope=scope, include=include, task=task,
                          train_config=train_config, reuse=reuse, **overrides)
    return planned.ticket(run_plan(planned.plan, executor, workers=workers))


def ticket_table(rows: list[dict], out_dir: str | Path | None = None, name: str | None = None):
    """Rows of :meth:`TicketRun.row` as a DataFrame (integer columns nullable), written as
    ``out_dir/name`` (CSV) and beside it as Parquet (same stem), atomically, when both are given."""
    import pandas as pd

    table = pd.DataFrame(rows)
    for col in ("t_mem", "t_gen", "ticket_epoch", "final_epoch"):
        if col in table:
            table[col] = table[col].astype("Int64")
    if out_dir is not None and name is not None:
        write_table(table, Path(out_dir) / name)
    return table


def point_dir(out_dir, name: str) -> Path | None:
    return None if out_dir is None else Path(out_dir) / name
