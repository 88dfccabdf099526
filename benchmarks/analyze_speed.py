"""Speed of ``analyze``: one nanda-size checkpoint, and the progress measures of a 250-checkpoint run.

    python benchmarks/analyze_speed.py [--checkpoints 250] [--keep DIR]

Goals: one checkpoint in under 1 s (on one thread ``analyze_scaling.py`` measures it, with the cost
against p); the 250 checkpoints' progress measures in under 5 minutes.
The run is a nanda transformer (p=113, 3830 train pairs) trained for as many epochs as checkpoints,
one checkpoint per epoch (what is measured is the analysis, not the training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import grokinterp as gi
from grokinterp.report import analyze


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=250)
    parser.add_argument("--keep", default=None, help="reuse / keep the run in this folder")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    task = gi.ModularArithmetic(113, frac_train=0.3)

    model = gi.make_transformer("nanda")
    analyze(model, task)  # warm-up (imports, bases)
    start = time.perf_counter()
    analyze(model, task)
    single = time.perf_counter() - start
    print(f"analyze, one nanda checkpoint (untrained: every frequency is key, the slowest case): {single:.2f} s (goal < 1 s)")

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.keep or tmp) / "nanda_run"
        cfg = gi.TrainConfig(epochs=args.checkpoints - 1, eval_every=10, checkpoint_every=1, progress=False)
        gi.train(gi.make_transformer("nanda"), task, cfg, out_dir=run_dir, resume=True)
        n = len(gi.load_run(run_dir).checkpoint_epochs)
        start = time.perf_counter()
        report = analyze(run_dir)
        total = time.perf_counter() - start
        print(f"analyze, run with {n} checkpoints incl. progress measures: {total:.1f} s "
              f"({total / n:.3f} s per checkpoint; goal < 300 s)")
        assert len(report.progress) == n


if __name__ == "__main__":
    main()
