"""Sweep throughput: the sweep engine against sequential ``train`` calls, side by side in one run.

(a) The tickets MLP (``MLPConfig(67)``, ``ModularArithmetic(67, "add", "a>=b", 0.4)``), 16 runs
that differ in their init seed: ``gi.run_sweep(plans)`` with its defaults (one thread of this
process per core, each training its share of the runs as one stacked model) and with
``executor="process"`` (a spawned pool, same batches), against the same 16 runs trained one after
another by ``gi.train`` in this process (torch's default threads). (b) The nanda transformer
(``make_transformer("nanda")``), 4 runs: the defaults (one run per thread at a time) and the
process pool against sequential ``train``. Every side writes its run folders (to temporary
directories) and evaluates every 10 epochs. The sides are timed in ``--rounds`` interleaved rounds
(each round in another order, so that a slow spell of the machine does not fall on one side only);
the figures are the medians over rounds.

    python benchmarks/sweep_speed.py [--rounds 3] [--mlp-epochs 1500] [--transformer-epochs 300]

Prints model-epochs per second for each side and round, the medians and their ratios (floors: 2.5x
for (a), 1.5x for (b)), and for (b) the bound on that ratio: one run alone on one thread and on two.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

import grokinterp as gi
from grokinterp.models import config_to_dict
from grokinterp.sweeps import RunPlan


def _plans(task, configs, train_config, root: Path) -> list[RunPlan]:
    return [RunPlan(task.to_dict(), config_to_dict(c), train_config, str(root / f"run{i}")) for i, c in enumerate(configs)]


def _sequential(task, models, train_config, root: Path) -> float:
    start = time.perf_counter()
    for i, make in enumerate(models):
        gi.train(make(), task, train_config, root / f"run{i}")
    return time.perf_counter() - start


def _engine(plans, **kwargs) -> float:
    start = time.perf_counter()
    table = gi.run_sweep(plans, progress=False, **kwargs)
    elapsed = time.perf_counter() - start
    if table["error"].notna().any():
        raise SystemExit(f"the sweep failed: {table['error'].dropna().tolist()}")
    return elapsed


def _thread_bound(task, make, train_config, rounds: int) -> None:
    """One run alone on one thread and on two (interleaved, medians): two one-thread runs side by
    side, if they did not slow each other down, would beat sequential two-thread runs by
    ``2 t2 / t1``, the most any executor on two cores can gain over sequential ``train``."""
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for threads in (1, 2):
            config = dataclasses.replace(train_config, threads=threads)
            start = time.perf_counter()
            gi.train(make(), task, config)
            times[threads].append((time.perf_counter() - start) / config.epochs)
    t1, t2 = (statistics.median(times[t]) for t in (1, 2))
    print(f"  one run alone: {1000 * t1:.1f} ms per epoch on 1 thread, {1000 * t2:.1f} ms on 2; "
          f"bound on two cores 2 x {1000 * t2:.1f} / {1000 * t1:.1f} = {2 * t2 / t1:.2f}x")


def _rounds(name: str, runs: int, epochs: int, sides: dict, rounds: int) -> None:
    """Time every side ``rounds`` times, rotating their order each round; print each round and the
    medians, with each side's median against sequential ``train``'s."""
    total = runs * epochs
    print(f"{name}: {runs} runs x {epochs} epochs, {rounds} rounds")
    times: dict[str, list[float]] = {how: [] for how in sides}
    order = list(sides)
    for r in range(rounds):
        shift = r % len(order)
        for how in order[shift:] + order[:shift]:
            with tempfile.TemporaryDirectory() as tmp:
                times[how].append(sides[how](Path(tmp)))
        print(f"  round {r + 1}: " + ", ".join(f"{how} {total / times[how][-1]:.1f}" for how in order)
              + " model-epochs/s", flush=True)
    med = {how: statistics.median(t) for how, t in times.items()}
    seq = med["sequential train"]
    for how in order:
        ratio = "" if how == "sequential train" else f"   {seq / med[how]:.2f}x"
        print(f"  {how:<22}: median {med[how]:7.1f} s  {total / med[how]:8.1f} model-epochs/s{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mlp-epochs", type=int, default=1500)
    ap.add_argument("--transformer-epochs", type=int, default=300)
    ap.add_argument("--skip-transformer", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {gi.sweeps.default_workers()} cores")

    task = gi.ModularArithmetic(67, "add", "a>=b", 0.4)
    cfg = gi.TrainConfig(epochs=args.mlp_epochs, eval_every=10, checkpoint_every=500, progress=False)
    configs = [gi.MLPConfig(67, seed=s) for s in range(16)]
    _rounds("tickets MLP p = 67", 16, args.mlp_epochs, {
        "sequential train": lambda d: _sequential(task, [lambda c=c: gi.HookedMLP(c) for c in configs], cfg, d),
        "run_sweep (auto)": lambda d: _engine(_plans(task, configs, cfg, d)),
        "run_sweep (process)": lambda d: _engine(_plans(task, configs, cfg, d), executor="process"),
    }, args.rounds)

    if args.skip_transformer:
        return
    task = gi.ModularArithmetic(113, "add", frac_train=0.3, seed=0)
    cfg = gi.TrainConfig(epochs=args.transformer_epochs, eval_every=10, checkpoint_every=100, progress=False)
    tconfigs = [gi.models.model_config(gi.make_transformer("nanda", seed=s)) for s in range(4)]
    _rounds("nanda transformer", 4, args.transformer_epochs, {
        "sequential train": lambda d: _sequential(task, [lambda s=s: gi.make_transformer("nanda", seed=s)
                                                         for s in range(4)], cfg, d),
        "run_sweep (auto)": lambda d: _engine(_plans(task, tconfigs, cfg, d)),
        "run_sweep (process)": lambda d: _engine(_plans(task, tconfigs, cfg, d), executor="process"),
    }, args.rounds)
    _thread_bound(task, lambda: gi.make_transformer("nanda", seed=0),
                  gi.TrainConfig(epochs=100, eval_every=10, checkpoint_every=100, progress=False), args.rounds)


if __name__ == "__main__":
    main()
