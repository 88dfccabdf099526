"""Running a sweep: plans in, one outcome and one table row per run out.

:func:`execute` checks every plan's run folder first (one that holds another run is refused before
anything trains; a finished run is read back, not trained), groups the unfinished runs that share a
shape (:func:`grokinterp.training.stack_key`) into batches of at most :data:`MAX_STACK` that train as
one stacked model (:func:`grokinterp.training.train_batched`; other runs, and plans with a learner of
their own such as edge-popup, train one at a time), hands
the batches to an executor and shows the sweep's progress. A run that fails is reported with its
error; the others go on. Each run folder resumes by itself, so a killed sweep, run again, trains only
what was unfinished. :func:`run_sweep` gives the table (pandas, one row per plan, in order).

``executor="auto"`` (the default) runs in this process: the batches one after another when they are
one (or there is one core), else in threads of this process, one per core, each with one intra-op
thread (:class:`~grokinterp.sweeps.executors.ThreadExecutor`: no process to start, so even a short
sweep gains the cores). ``"process"`` and Dask take the same batches elsewhere.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor
from tqdm import TqdmWarning

with warnings.catch_warnings():  # without ipywidgets in Jupyter, tqdm.auto falls back to the text bar: quietly
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from ..errors import GrokinterpError, TrainingCancelled
from ..metrics import grokking_times
from ..models import Model, named_weights
from ..runs import RunWriter, check_same_spec, read_resume_state
from ..safeio import TEMP_SUFFIX, atomic_write_bytes, atomic_write_text
from ..training import Cancel, TrainResult, run_finished, stack_key, train, train_batched, training_settings
from .executors import DaskExecutor, Executor, InlineExecutor, ProcessExecutor, ThreadExecutor, default_workers
from .plan import RunPlan

__all__ = ["MAX_STACK", "Outcome", "execute", "run_plan", "run_sweep", "sweep_table", "train_plans", "write_table"]

MAX_STACK = 16  # past about 16 copies the stacked step is memory-bound and gains nothing


@dataclass
class Outcome:
    """What became of one plan: its history, run folder, final weights (the model, when trained in
    this process), whether it was ``reused`` (read back finished) and its ``error`` (a message)."""

    history: list
    run_dir: Optional[str]
    weights: Optional[Mapping[str, Tensor]] = None
    model: Optional[Model] = None
    reused: bool = False
    error: Optional[str] = None

    def result(self, plan: RunPlan) -> TrainResult:
        """A :class:`~grokinterp.training.TrainResult` (the model rebuilt from the weights if needed)."""
        model = self.model
        if model is None and self.weights is not None:
            model = plan.build_model()
            with torch.no_grad():
                for n, p in named_weights(model).items():
                    p.copy_(self.weights[n])
        return TrainResult(model, self.history, Path(self.run_dir) if self.run_dir else None)


def train_plans(plans: Sequence[RunPlan], keep_models: bool = False, *, cancel: Cancel | None = None) -> list[Outcome]:
    """Train ``plans`` (one batch) in this process: stacked when they share a shape, else one by
    one; a plan that fails gets an outcome with its error. This is what every executor runs.

    A run whose config leaves ``threads`` unset trains with one intra-op thread, as stacked runs
    and the runs of every other executor do: the thread count changes a run's numbers, and a sweep
    gives the same table whichever executor trains it and however many of its runs are left.

    ``cancel``: the event of a :class:`~grokinterp.sweeps.executors.ThreadExecutor` (this batch
    runs in one of its threads): every run trains with one intra-op thread and stops with
    :class:`~grokinterp.errors.TrainingCancelled` once the event is set."""
    jobs, outcomes = [], []
    for plan in plans:
        try:
            jobs.append(plan.job())
        except Exception as e:  # noqa: BLE001
            jobs.append(e)
    ready = [j for j in jobs if not isinstance(j, Exception)]
    keys = {stack_key(j) for j in ready}
    if len(ready) > 1 and len(keys) == 1 and None not in keys:
        results = iter(train_batched(ready, return_exceptions=True, cancel=cancel))
        trained = [j if isinstance(j, Exception) else next(results) for j in jobs]
    else:
        trained = []
        for plan, job in zip(plans, jobs):
            if isinstance(job, Exception):
                trained.append(job)
                continue
            config = job.config
            if cancel is not None and config.threads not in (None, 1):  # threads share the process's setting
                config = replace(config, threads=1)
            try:
                # one intra-op thread where the config leaves it unset (the thread count changes the
                # numbers), as in a stack and on every executor; the record keeps the config's value
                with training_settings(1 if config.threads is None else None):
                    trained.append(_train_job(plan, job, config, cancel))
            except TrainingCancelled:
                raise
            except Exception as e:  # noqa: BLE001
                trained.append(e)
    for plan, r in zip(plans, trained):
        if isinstance(r, Exception):
            outcomes.append(Outcome([], plan.out_dir, error=f"{type(r).__name__}: {r}"))
        else:
            weights = {n: p.detach().clone() for n, p in named_weights(r.model).items()}
            outcomes.append(Outcome(r.history, plan.out_dir, weights, r.model if keep_models else None))
    return outcomes


def _train_job(plan: RunPlan, job, config=None, cancel: Cancel | None = None) -> TrainResult:
    """One plan trained alone in this process (with the plan's learner, if it has one; ``config``:
    the job's, or the same with the thread count an executor fixed)."""
    return train(job.model, job.task, job.config if config is None else config, job.out_dir, job.mask, resume=job.resume,
                 parent=job.parent, parent_key=job.parent_key, learner=plan.build_learner(job.model), cancel=cancel)


def run_plan(plan: RunPlan, executor: Union[str, Executor, Any] = "inline", *, workers: int | None = None) -> TrainResult:
    """Train one plan and return its result; errors are raised (in this process, as
    :func:`~grokinterp.training.train` raises them; elsewhere as a :class:`GrokinterpError` with the
    worker's message)."""
    if executor in ("inline", "auto") or isinstance(executor, InlineExecutor):
        return _train_job(plan, plan.job())
    outcome = execute([plan], executor, workers=workers, progress=False)[0]
    if outcome.error is not None:
        raise GrokinterpError(f"the run for {plan.out_dir or 'memory'} failed: {outcome.error}")
    return outcome.result(plan)


def folder_outcome(plan: RunPlan) -> Optional[Outcome]:
    """A finished run of this plan already in its folder (read back), or ``None`` if there is work
    to do; a folder holding another run raises, naming what differs."""
    if plan.out_dir is None or not plan.reuse:
        return None
    writer = RunWriter(plan.out_dir)
    if not writer.holds_run():
        return None
    check_same_spec(writer.path, writer.read_config(), plan.record())
    if not writer.has_resume_state():
        return None
    epoch, weights, _ = read_resume_state(writer.path)
    history = [r for r in writer.read_metrics() if r["epoch"] <= epoch]
    if not run_finished(plan.train, epoch, history):
        return None
    return Outcome(history, plan.out_dir, dict(weights), reused=True)


def execute(plans: Sequence[RunPlan], executor: Union[str, Executor, Any] = "auto", *, workers: int | None = None,
            progress: bool = True) -> list[Outcome]:
    """One :class:`Outcome` per plan, in order (see the module docstring). ``executor``: ``"auto"``,
    ``"inline"``, ``"threads"``, ``"process"``, ``"dask"`` (a new ``LocalCluster``), a Dask
    scheduler address or ``Client``, or an :class:`~grokinterp.sweeps.executors.Executor`;
    ``workers``: threads or processes (default: every core)."""
    plans = list(plans)
    for plan in plans:
        if not isinstance(plan, RunPlan):
            raise GrokinterpError(f"a sweep is a list of RunPlans, got a {type(plan).__name__}")
    folders = [p.out_dir for p in plans if p.out_dir is not None]
    if len(set(folders)) != len(folders):
        raise GrokinterpError("two runs of the sweep share a run folder; give each plan its own out_dir")
    outcomes: list[Optional[Outcome]] = [folder_outcome(p) for p in plans]
    todo = [i for i, o in enumerate(outcomes) if o is None]
    runner = _executor(executor, workers, [plans[i] for i in todo])
    batches = _batches(todo, plans, runner.workers)
    bar = _SweepProgress(len(plans), len(plans) - len(todo), progress)
    keep = isinstance(runner, (InlineExecutor, ThreadExecutor))

    def started(b: int) -> None:
        bar.start(len(batches[b]))

    def finished(b: int, result, error) -> None:
        if error is not None:
            result = [Outcome([], plans[i].out_dir, error=f"{type(error).__name__}: {error}") for i in batches[b]]
        for i, o in zip(batches[b], result):
            outcomes[i] = o
        bar.finish(len(batches[b]), sum(o.error is not None for o in result))

    try:
        runner.run(_BatchTrainer(keep), [[plans[i] for i in batch] for batch in batches], started, finished)
    finally:
        bar.close()
    return outcomes


class _BatchTrainer:
    """``train_plans`` as a picklable callable (for worker processes)."""

    def __init__(self, keep_models: bool):
        self.keep_models = keep_models

    def __call__(self, plans, cancel: Cancel | None = None):
        return train_plans(plans, self.keep_models, cancel=cancel)


def _executor(executor, workers, todo: Sequence[RunPlan]) -> Executor:
    if executor == "auto":
        n = workers or default_workers()
        if n == 1 or len(_batches(list(range(len(todo))), todo, n)) < 2:
            return InlineExecutor()
        return ThreadExecutor(n)
    if executor == "inline":
        return InlineExecutor()
    if executor == "process":
        return ProcessExecutor(workers)
    if executor == "threads":
        return ThreadExecutor(workers)
    if executor == "dask":
        return DaskExecutor(None, workers)
    if isinstance(executor, str):
        if "://" in executor or ":" in executor:
            return DaskExecutor(executor, workers)
        raise GrokinterpError(
            f"unknown executor {executor!r}; expected 'auto', 'inline', 'threads', 'process', 'dask', a Dask scheduler address or a Client"
        )
    if type(executor).__module__.split(".")[0] == "distributed":
        return DaskExecutor(executor, workers)  # a dask.distributed Client
    if isinstance(executor, (InlineExecutor, ThreadExecutor, ProcessExecutor, DaskExecutor)) or all(
        hasattr(executor, a) for a in ("name", "workers", "run")
    ):
        return executor
    raise GrokinterpError(
        f"executor must be 'auto', 'inline', 'threads', 'process', 'dask', a Dask scheduler address, a dask.distributed.Client "
        f"or an Executor, got {type(executor).__name__}"
    )


def _batches(todo: Sequence[int], plans: Sequence[RunPlan], workers: int) -> list[list[int]]:
    """Plans that can stack, in batches of at most :data:`MAX_STACK`, split so that every worker
    gets one when there are enough; the others one per batch. The longest batches come first
    (length: the members' epochs summed; ties keep the plans' order), so that a long run does not
    start last and leave the other workers idle while it finishes."""
    groups: dict[str, list[int]] = {}
    singles = []
    for i in todo:
        key = _plan_stack_key(plans[i])
        (groups.setdefault(key, []) if key is not None else singles).append(i)
    out = []
    for members in groups.values():
        n = max(min(workers, len(members)), math.ceil(len(members) / MAX_STACK))
        size = math.ceil(len(members) / n)
        out += [members[j:j + size] for j in range(0, len(members), size)]
    out += [[i] for i in singles]
    return sorted(out, key=lambda batch: -sum(plans[i].train.epochs for i in batch))


def _plan_stack_key(plan: RunPlan) -> Optional[str]:
    if plan.model.get("kind") != "mlp" or plan.learner is not None or plan.task_object().loss != "cross_entropy":
        return None
    shape = {k: plan.model[k] for k in ("p", "d_embed", "d_hidden", "act")}
    return repr((sorted(plan.task.items()), sorted(shape.items())))


class _SweepProgress:
    """The sweep's bar: runs done (with ETA), running and failed."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.running = self.failed = 0
        self.bar = tqdm(total=total, initial=done, desc="sweep", unit="run", leave=True, dynamic_ncols=True) if enabled else None
        self._show()

    def start(self, n: int) -> None:
        self.running += n
        self._show()

    def finish(self, n: int, failed: int) -> None:
        self.running -= n
        self.failed += failed
        if self.bar is not None:
            self.bar.update(n)
        self._show()

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix(running=self.running, failed=self.failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sweep_table(plans: Sequence[RunPlan], outcomes: Sequence[Outcome]):
    """One row per plan: its labels, spec key and run folder, t_mem / t_gen / tau_grok, the final
    epoch and accuracies, and the error (``None`` for a run that trained)."""
    import pandas as pd

    rows = []
    for plan, o in zip(plans, outcomes):
        times = grokking_times(o.history)
        last = o.history[-1] if o.history else {}
        rows.append({
            **dict(plan.labels), "key": plan.key, "t_mem": times.t_mem, "t_gen": times.t_gen, "tau_grok": times.tau_grok,
            "final_epoch": last.get("epoch"), "final_train_acc": last.get("train_acc"), "final_test_acc": last.get("test_acc"),
            "run_dir": o.run_dir, "error": o.error,
        })
    table = pd.DataFrame(rows)
    for col in ("t_mem", "t_gen", "final_epoch"):
        table[col] = table[col].astype("Int64")
    return table


def write_table(table, path: str | Path) -> Path:
    """``table`` as CSV at ``path`` and as Parquet beside it (same name, ``.parquet``), atomically;
    temporary files an earlier, killed write of them left are removed first."""
    path = Path(path)
    for target in (path.with_suffix(".csv"), path.with_suffix(".parquet")):  # what a killed write of it left
        for stale in target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"):
            stale.unlink()
    atomic_write_text(path.with_suffix(".csv"), table.to_csv(index=False))
    atomic_write_bytes(path.with_suffix(".parquet"), table.to_parquet(index=False))
    return path.with_suffix(".parquet")


def run_sweep(plans: Sequence[RunPlan], executor: Union[str, Executor, Any] = "auto", *, workers: int | None = None,
              progress: bool = True, table: str | Path | None = None):
    """Train a sweep (a list of :class:`RunPlan`) and return its table (:func:`sweep_table`);
    ``table``: also write it there as CSV and Parquet. See :func:`execute` for the executors."""
    plans = list(plans)
    outcomes = execute(plans, executor, workers=workers, progress=progress)
    out = sweep_table(plans, outcomes)
    if table is not None:
        write_table(out, table)
    return out
