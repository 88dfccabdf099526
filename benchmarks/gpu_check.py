"""Training and analysis on CUDA: does every step run on the model's device, and how fast.

    python benchmarks/gpu_check.py [--epochs 300] [--runs 1,64,1024] [--budget 240]

Without CUDA it prints that it skipped and exits 0. With CUDA it

1. trains a small MLP (p = 23, all pairs, 50 % train) and a small transformer on the GPU with
   ``grokinterp.train``, then runs ``grokinterp.analyze`` on each (the task's tensors are CPU; the
   library moves them to the model's device), checking that the weights stayed on the GPU and that
   the report matches the same model analysed on the CPU;
2. prints the tickets-MLP throughput (model-epochs per second) for N = 1, 64 and 1024 runs, the N
   runs trained together as one stacked model (``grokinterp.training.train_batched``), as a sweep of
   N runs of one shape trains; a line over ``--budget`` seconds says so.

Each stage prints ``ok`` or ``FAIL`` with the error; the exit status is 1 if any stage failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import torch

import grokinterp as gi
from grokinterp.models import model_device
from grokinterp.training import TrainJob, train_batched

P = 23


def _task() -> gi.ModularArithmetic:
    return gi.ModularArithmetic(P, frac_train=0.5, seed=0)


def _mlp(seed: int = 0) -> gi.HookedMLP:
    return gi.HookedMLP(gi.MLPConfig(P, d_embed=128, d_hidden=48, seed=seed))


def _transformer(seed: int = 0):
    return gi.make_transformer(gi.TransformerConfig(p=P, d_model=64, d_head=16, n_heads=4, d_mlp=128, seed=seed))


def _config(epochs: int) -> gi.TrainConfig:
    return gi.TrainConfig(epochs=epochs, lr=1e-2, weight_decay=1.0, eval_every=max(1, epochs // 10), progress=False)


def train_and_analyze(name: str, build, epochs: int, device: torch.device) -> None:
    """Train on ``device``, analyse there, and compare with the CPU analysis of the same weights."""
    task = _task()
    model = build().to(device)
    start = time.perf_counter()
    result = gi.train(model, task, _config(epochs))
    seconds = time.perf_counter() - start
    if model_device(model).type != device.type:
        raise RuntimeError(f"{name}: the weights left {device} during training (now on {model_device(model)})")
    report = gi.analyze(model, task)
    reference = gi.analyze(model.to("cpu"), task)
    for key in ("train_acc", "test_acc"):
        if abs(report.metrics[key] - reference.metrics[key]) > 1e-3:
            raise RuntimeError(f"{name}: {key} {report.metrics[key]} on {device} but {reference.metrics[key]} on the CPU")
    print(f"  {name}: {epochs} epochs in {seconds:.2f} s on {device}; final test acc "
          f"{result.history[-1]['test_acc']:.3f}; analyze matches the CPU (key frequencies "
          f"{report.key_frequencies['logit']})")


def throughput(n_runs: int, epochs: int, budget: float, device: torch.device) -> None:
    """Train ``n_runs`` tickets MLPs (p = 67, each its own init seed) as one stacked model on
    ``device`` (``train_batched``: one forward, backward and AdamW step for all; one run alone goes
    through ``train``). If one epoch of the stack would not fit the budget, the line says so."""
    task = gi.ModularArithmetic(67, "add", "a>=b", 0.4)
    config = _config(epochs)
    jobs = [TrainJob(gi.HookedMLP(gi.MLPConfig(67, seed=seed)).to(device), task, config) for seed in range(n_runs)]
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    if n_runs == 1:
        gi.train(jobs[0].model, task, config)
    else:
        train_batched(jobs)
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if any(model_device(j.model).type != device.type for j in jobs):
        raise RuntimeError(f"N = {n_runs}: weights left {device} during training")
    note = " (over the budget)" if seconds > budget else ""
    print(f"  N = {n_runs:>4}: {n_runs * epochs / seconds:,.0f} model-epochs/s, {seconds:.1f} s "
          f"({epochs} epochs each, {'one stacked model' if n_runs > 1 else 'train'}){note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs per run")
    parser.add_argument("--runs", default="1,64,1024", help="comma-separated numbers of MLP runs")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds per throughput measurement at most")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); skipped")
        return 0
    device = torch.device("cuda")
    torch.set_num_threads(1)
    print(f"gpu_check on {torch.cuda.get_device_name(device)} (torch {torch.__version__})")
    failed = 0
    stages = [(f"train + analyze {name}", lambda name=name, build=build: train_and_analyze(name, build, args.epochs, device))
              for name, build in (("MLP", _mlp), ("transformer", _transformer))]
    stages.append(("throughput", lambda: [throughput(int(n), args.epochs, args.budget, device) for n in args.runs.split(",")]))
    for label, stage in stages:
        print(label)
        try:
            stage()
            print("  ok")
        except Exception:  # report every failing stage, then exit 1
            failed += 1
            print("  FAIL\n" + "".join("    " + line for line in traceback.format_exc().splitlines(True)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
