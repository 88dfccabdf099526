"""Running the reproduction: every selected experiment's runs, stage by stage, as one sweep per
stage on the sweeps engine (:func:`grokinterp.sweeps.execute`: this process, a local process pool
or a Dask cluster), then the measures, the claims' verdicts and the report.

Stage ``i`` gathers the ``i``-th stage of every selected experiment for every seed and trains all of
those runs together; stage ``i + 1`` is planned from their finished checkpoints. Each run lives in
``<out>/runs/<spec key>/``: a run several experiments share trains once, and a restarted
reproduction reads finished runs back and resumes interrupted ones (the engine compares the spec of
what a folder holds with the plan's). ``<out>/manifest.json`` maps each experiment's roles to their
run folders. An experiment whose run failed is reported with the error; the others go on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import GrokinterpError
from ..report.report import dump_json
from ..runs import Run, load_run
from ..runs.layout import REPRO_MANIFEST, REPRO_RUNS
from ..sweeps import Outcome, RunPlan, execute
from .experiments import Context, Experiment, MissingRun, select
from .presets import TicketsPaperPreset, preset as named_preset
from .report import build_report, write_report

__all__ = ["Reproduction", "reproduce_tickets_paper"]


@dataclass
class Reproduction:
    """What a reproduction did: the ``report`` (a JSON-able dict, also written to ``paths``), how
    many runs it ``trained``, ``reused`` (read back finished) and how many ``failed``."""

    out: Path
    preset: TicketsPaperPreset
    report: dict
    trained: int
    reused: int
    failed: int
    paths: dict

    @property
    def verdicts(self) -> list[dict]:
        return self.report["claims"]


def _seeds(seeds, default: int) -> tuple[int, ...]:
    n = default if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GrokinterpError(f"seeds must be a whole number >= 1 (seeds 0 .. n-1 are run), got {seeds!r}")
    return tuple(range(n))


class _Book:
    """Which run folder each (experiment, role, seed) is, and what became of each run."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.slots: dict[tuple[str, str, int], str] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.loaded: dict[str, Run] = {}
        self.trained = self.reused = self.failed = 0

    def lookup(self, experiment: str, role: str, seed: int) -> Run:
        key = self.slots.get((experiment, role, seed))
        if key is None or key not in self.outcomes:
            raise MissingRun(f"{experiment}, seed {seed}: its run {role!r} has not been trained")
        outcome = self.outcomes[key]
        if outcome.error is not None:
            raise MissingRun(f"{experiment}, seed {seed}: its run {role!r} failed: {outcome.error}")
        if key not in self.loaded:
            self.loaded[key] = load_run(outcome.run_dir)
        return self.loaded[key]

    def manifest(self) -> dict:
        rows = []
        for (experiment, role, seed), key in sorted(self.slots.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
            o = self.outcomes.get(key)
            status = "pending" if o is None else "failed" if o.error else "done"
            rows.append({"experiment": experiment, "role": role, "seed": seed, "key": key,
                         "folder": f"{REPRO_RUNS}/{key}", "status": status, **({"error": o.error} if o and o.error else {})})
        return {"runs": rows}


def _stage_plans(book: _Book, experiments: Sequence[Experiment], stage: int, pr: TicketsPaperPreset,
                 seeds: tuple[int, ...], failures: dict) -> dict[str, RunPlan]:
    """The unique plans of one stage, by spec key, each in its run folder."""
    unique: dict[str, RunPlan] = {}
    for exp in experiments:
        if stage >= len(exp.stages):
            continue
        for seed in seeds:
            if (exp.name, seed) in failures:
                continue
            ctx = Context(pr, exp.name, seed, seeds, book.lookup)
            try:
                plans = exp.stages[stage](ctx)
            except GrokinterpError as e:
                failures[(exp.name, seed)] = str(e)
                continue
            for role, plan in plans.items():
                key = plan.key
                book.slots[(exp.name, role, seed)] = key
                if key in unique:
                    if unique[key].train != plan.train:
                        raise GrokinterpError(
                            f"{exp.name} {role!r} (seed {seed}) is the same run as another experiment's but with another "
                            f"schedule ({plan.train} vs {unique[key].train}); give shared runs one schedule in the preset"
                        )
                    continue
                unique[key] = dataclasses.replace(plan, out_dir=str(book.runs_dir / key), reuse=True,
                                                  labels={"experiment": exp.name, "role": role, "seed": seed})
    return unique


def reproduce_tickets_paper(
    out: str | Path = "runs/repro",
    *,
    quick: bool = False,
    seeds: Optional[int] = None,
    only=None,
    executor: Any = "auto",
    workers: Optional[int] = None,
    progress: bool = True,
    critical_threshold: Optional[float] = None,
    preset: Optional[TicketsPaperPreset] = None,
) -> Reproduction:
    """Reproduce the tickets paper's experiments into ``out`` and write the report there.

    Args:
        quick: the ``"quick"`` preset (a small setting that checks the machinery end to end) instead
            of ``"full"`` (the paper's scale); ``preset`` gives one directly.
        seeds: number of seeds (seeds ``0 .. seeds-1``; default: the preset's, 3 for full, 1 for quick).
        only: experiment names (see :data:`grokinterp.reproduce.experiments.EXPERIMENTS`), a list or
            a comma-separated string; default all.
        executor, workers, progress: where the runs train (see :func:`grokinterp.sweeps.execute`).
        critical_threshold: the test accuracy a ticket must exceed to count as generalising in the
            critical-ratio experiment (default: the preset's 0.95).

    Rerun into the same ``out``, it trains only what is unfinished (see the module docstring).
    Returns a :class:`Reproduction`.
    """
    pr = preset if preset is not None else named_preset("quick" if quick else "full")
    if not isinstance(pr, TicketsPaperPreset):
        raise GrokinterpError(f"preset must be a TicketsPaperPreset, got {type(pr).__name__}")
    if critical_threshold is not None:
        if isinstance(critical_threshold, bool) or not isinstance(critical_threshold, (int, float)) \
                or not 0 < critical_threshold < 1:
            raise GrokinterpError(f"critical_threshold must be an accuracy in (0, 1), got {critical_threshold!r}")
        pr = pr.replace(critical_threshold=float(critical_threshold))
    seed_list = _seeds(seeds, pr.seeds)
    experiments = select(only)
    root = Path(out)
    book = _Book(root / REPRO_RUNS)
    failures: dict[tuple[str, int], str] = {}
    for stage in range(max(len(e.stages) for e in experiments)):
        plans = _stage_plans(book, experiments, stage, pr, seed_list, failures)
        outcomes = execute(list(plans.values()), executor, workers=workers, progress=progress) if plans else []
        for key, outcome in zip(plans, outcomes):
            book.outcomes[key] = outcome
            if outcome.error is not None:
                book.failed += 1
            elif outcome.reused:
                book.reused += 1
            else:
                book.trained += 1
        dump_json(book.manifest(), root / REPRO_MANIFEST, indent=1)
    measures: dict[str, list[tuple[int, dict]]] = {e.name: [] for e in experiments}
    for exp in experiments:
        for seed in seed_list:
            if (exp.name, seed) in failures:
                continue
            try:
                measures[exp.name].append((seed, exp.measure(Context(pr, exp.name, seed, seed_list, book.lookup))))
            except GrokinterpError as e:
                failures[(exp.name, seed)] = str(e)
    counts = {"trained": book.trained, "reused": book.reused, "failed": book.failed}
    report = build_report(pr, experiments, seed_list, measures, failures, counts)
    paths = write_report(report, root)
    return Reproduction(root, pr, report, book.trained, book.reused, book.failed, paths)
