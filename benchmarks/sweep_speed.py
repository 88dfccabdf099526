"""Sweep throughput: the sweep engine against sequential ``train`` calls, side by side in one run.

(a) The tickets MLP (``MLPConfig(67)``, ``ModularArithmetic(67, "add", "a>=b", 0.4)``), 16 runs
that differ in their init seed: ``gi.run_sweep(plans)`` with its defaults (one thread of this
process per core, each training its share of the runs as one stacked model) and with
``executor="process"`` (a spawned pool, same batches), against the same 16 runs trained one after
another by ``gi.train`` in this process (torch's default threads). (b) The nanda transformer
(``make_transformer("nanda")``), 4 runs: the defaults (one run per thread at a time) and the
process pool against sequential ``train``. Every side writes its run folders (to temporary
directories) and evaluates every 10 epochs.

    python benchmarks/sweep_speed.py [--mlp-epochs 1500] [--transformer-epochs 300]

Prints model-epochs per second for each side and the ratios (floors: 2.5x for (a), 1.5x for (b)).
"""

from __future__ import annotations

import argparse
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


def _report(name: str, runs: int, epochs: int, seq: float, sides: dict[str, float]) -> None:
    total = runs * epochs
    print(f"{name}: {runs} runs x {epochs} epochs")
    print(f"  {'sequential train':<22}: {seq:7.1f} s  {total / seq:8.1f} model-epochs/s")
    for how, t in sides.items():
        print(f"  {how:<22}: {t:7.1f} s  {total / t:8.1f} model-epochs/s   {seq / t:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp-epochs", type=int, default=1500)
    ap.add_argument("--transformer-epochs", type=int, default=300)
    ap.add_argument("--skip-transformer", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {gi.sweeps.default_workers()} cores")

    task = gi.ModularArithmetic(67, "add", "a>=b", 0.4)
    cfg = gi.TrainConfig(epochs=args.mlp_epochs, eval_every=10, checkpoint_every=500, progress=False)
    configs = [gi.MLPConfig(67, seed=s) for s in range(16)]
    with tempfile.TemporaryDirectory() as tmp:
        seq = _sequential(task, [lambda c=c: gi.HookedMLP(c) for c in configs], cfg, Path(tmp) / "seq")
        sides = {"run_sweep (auto)": _engine(_plans(task, configs, cfg, Path(tmp) / "auto")),
                 "run_sweep (process)": _engine(_plans(task, configs, cfg, Path(tmp) / "process"), executor="process")}
    _report("tickets MLP p = 67", 16, args.mlp_epochs, seq, sides)

    if args.skip_transformer:
        return
    task = gi.ModularArithmetic(113, "add", frac_train=0.3, seed=0)
    cfg = gi.TrainConfig(epochs=args.transformer_epochs, eval_every=10, checkpoint_every=100, progress=False)
    tconfigs = [gi.models.model_config(gi.make_transformer("nanda", seed=s)) for s in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        seq = _sequential(task, [lambda s=s: gi.make_transformer("nanda", seed=s) for s in range(4)], cfg, Path(tmp) / "seq")
        sides = {"run_sweep (auto)": _engine(_plans(task, tconfigs, cfg, Path(tmp) / "auto")),
                 "run_sweep (process)": _engine(_plans(task, tconfigs, cfg, Path(tmp) / "process"), executor="process")}
    _report("nanda transformer", 4, args.transformer_epochs, seq, sides)


if __name__ == "__main__":
    main()
