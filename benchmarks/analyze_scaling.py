"""Cost of ``analyze`` and of training against the modulus p, for the nanda-shape transformer.

    python benchmarks/analyze_scaling.py [--ps 53 113 211 307] [--epochs 5] [--repeat 5]

Prints, on one thread:

* the time of ``analyze`` on one nanda checkpoint (p = 113, ``make_transformer("nanda")``,
  ``ModularArithmetic(113, frac_train=0.3)``; median of ``--repeat`` runs after a warm-up; goal < 1 s);
* a table, one row per p: ``analyze`` seconds and peak resident memory of an untrained
  ``make_transformer("nanda", p=p)`` (untrained, every frequency is key: the most work for
  restricted / excluded loss), and the seconds per full-batch training epoch of the same model
  (30 % train split). Each p is measured in a fresh process, so that its peak memory is its own:
  the process's high-water resident set (``VmHWM`` of ``/proc/self/status``, which starts afresh
  at ``exec``; ``ru_maxrss`` where there is no ``/proc``, which Linux carries over from the parent
  at ``fork``, hence the table runs before the parent does any work), reported with the memory it
  held before ``analyze`` (imports and the model). The parent's ``RUSAGE_CHILDREN`` peak is
  printed as a check. Goals at p = 307: under 20 s and under 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import grokinterp as gi
from grokinterp.report import analyze


def _mb(kb: float) -> float:
    return kb / 1024  # ru_maxrss and VmHWM are in KiB on Linux


def _peak_mb() -> float:
    """This process's peak resident memory in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return _mb(float(line.split()[1]))
    except OSError:
        pass
    return _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _model(p: int):
    return gi.make_transformer("nanda") if p == 113 else gi.make_transformer("nanda", p=p)


def child_analyze(p: int) -> dict:
    torch.set_num_threads(1)
    task = gi.ModularArithmetic(p, frac_train=0.3)
    model = _model(p)
    before = _peak_mb()
    start = time.perf_counter()
    analyze(model, task)
    seconds = time.perf_counter() - start
    return {"p": p, "analyze_s": seconds, "peak_mb": _peak_mb(), "before_mb": before}


def child_train(p: int, epochs: int) -> dict:
    task = gi.ModularArithmetic(p, frac_train=0.3)

    def run(n: int) -> float:  # evaluation only at the last epoch, no checkpoints written
        cfg = gi.TrainConfig(epochs=n, eval_every=n, checkpoint_every=n, threads=1, progress=False)
        model = _model(p)
        start = time.perf_counter()
        gi.train(model, task, cfg)
        return time.perf_counter() - start

    run(1)  # warm-up
    short, long = run(1), run(1 + epochs)
    return {"p": p, "epoch_s": max(long - short, 0.0) / epochs}


def _in_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ps", type=int, nargs="+", default=[53, 113, 211, 307])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs timed per p")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the one-checkpoint analyze")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, p = args.child[0], int(args.child[1])
        print(json.dumps(child_analyze(p) if kind == "analyze" else child_train(p, int(args.child[2]))))
        return

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread")
    print(f"{'p':>5} {'analyze s':>10} {'peak MB':>9} {'before MB':>10} {'train s/epoch':>14}")
    for p in args.ps:
        a = _in_child(["--child", "analyze", str(p)])
        t = _in_child(["--child", "train", str(p), str(args.epochs)])
        print(f"{p:>5} {a['analyze_s']:>10.2f} {a['peak_mb']:>9.0f} {a['before_mb']:>10.0f} {t['epoch_s']:>14.3f}", flush=True)
    children = _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(f"(largest peak of any child process, RUSAGE_CHILDREN: {children:.0f} MB; goals at p = 307: < 20 s, < 1500 MB)")

    task = gi.ModularArithmetic(113, frac_train=0.3)
    model = gi.make_transformer("nanda")
    analyze(model, task)  # warm-up (imports, bases)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        analyze(model, task)
        times.append(time.perf_counter() - start)
    print(f"\nanalyze, one nanda checkpoint (p = 113, untrained): median {statistics.median(times):.2f} s "
          f"of {args.repeat} (min {min(times):.2f} s; goal < 1 s)")


if __name__ == "__main__":
    main()
