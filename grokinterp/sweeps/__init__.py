"""Sweeps as data: a sweep is a list of :class:`RunPlan` (one run each, with its run folder and spec
key); :func:`run_sweep` trains them on an executor (in this process, in its threads, a local process pool, or Dask),
stacking runs of one MLP shape into one batched model, and returns one table row per run."""

from .plan import LearnerPlan, RunPlan, weights_digest
from .executors import DaskExecutor, Executor, InlineExecutor, ProcessExecutor, ThreadExecutor, default_workers
from .engine import MAX_STACK, Outcome, execute, run_plan, run_sweep, sweep_table, train_plans, write_table

run = run_sweep

__all__ = [
    "MAX_STACK",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "LearnerPlan",
    "Outcome",
    "ProcessExecutor",
    "ThreadExecutor",
    "RunPlan",
    "default_workers",
    "execute",
    "run",
    "run_plan",
    "run_sweep",
    "sweep_table",
    "train_plans",
    "weights_digest",
    "write_table",
]
