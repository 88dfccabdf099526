"""Cost of the training loop itself: ``grokinterp.train`` against a bare loop written by hand for the
same model, the same maths and the same optimiser, side by side in one run.

The bare loop holds the tickets MLP's four weight tensors (``MLPConfig(67)``, the same seeded
init) and, each epoch, computes ``relu(P[a] + P[b]) W_L`` with ``P = W_E W_in``, ``W_L = W_out
W_U`` (masked: every weight times its mask), the cross-entropy with relative precision
(:func:`grokinterp.metrics.cross_entropy_relative`) and one fused AdamW step; it evaluates train and
test loss and accuracy at epoch 0 and at the end, as ``train`` does with ``eval_every`` equal to the
epochs. ``train`` runs in memory (no run folder). Both use one thread and denormal flushing.
Reported: seconds per 1000 epochs, medians of ``--repeats`` interleaved repeats, and the ratio
(goal: ``train`` within 1.2x of the bare loop, dense and masked).

    python benchmarks/step_speed.py [--epochs 1000] [--repeats 3]

Also printed, for reference: the same bare loop with the float64 log-softmax loss that the loop
used before (``F.cross_entropy(logits.double(), y)``), and the two losses alone (forward and
backward on the logits of 1 and of 16 stacked models).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import grokinterp as gi
from grokinterp.metrics import cross_entropy_relative
from grokinterp.models import named_weights

P = 67
NAMES = ("W_E", "W_in", "W_out", "W_U")


def _mask(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=g) > 0.6 for n, w in named_weights(gi.HookedMLP(gi.MLPConfig(P))).items()}


def bare(task, epochs: int, mask, loss_fn) -> float:
    """Seconds for ``epochs`` steps (and two evaluations) of the hand-written loop."""
    w = {n: p.detach().clone().requires_grad_() for n, p in named_weights(gi.HookedMLP(gi.MLPConfig(P))).items()}
    m = {n: mask[n].float() for n in NAMES} if mask is not None else None
    if m is not None:
        with torch.no_grad():
            for n in NAMES:
                w[n].mul_(m[n])
    opt = torch.optim.AdamW(list(w.values()), lr=1e-3, betas=(0.9, 0.98), weight_decay=1.0, fused=True)
    x, y = task.inputs("train"), task.labels("train")
    a, b = x[:, 0], x[:, 1]

    def logits(pairs_a, pairs_b):
        W = {n: w[n] * m[n] for n in NAMES} if m is not None else w
        table = W["W_E"] @ W["W_in"]
        return F.relu(F.embedding(pairs_a, table) + F.embedding(pairs_b, table)) @ (W["W_out"] @ W["W_U"])

    def evaluate():
        with torch.no_grad():
            for split in ("train", "test"):
                xs, ys = task.inputs(split), task.labels(split)
                out = logits(xs[:, 0], xs[:, 1])
                float(F.cross_entropy(out.double(), ys)), float((out.argmax(-1) == ys).double().mean())

    start = time.perf_counter()
    evaluate()
    for _ in range(epochs):
        loss = loss_fn(logits(a, b), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    evaluate()
    return time.perf_counter() - start


def ours(task, epochs: int, mask) -> float:
    model = gi.HookedMLP(gi.MLPConfig(P))
    config = gi.TrainConfig(epochs=epochs, eval_every=epochs, checkpoint_every=epochs, progress=False, threads=1)
    start = time.perf_counter()
    gi.train(model, task, config, mask=mask)
    return time.perf_counter() - start


def f64_loss(logits, labels):
    return F.cross_entropy(logits.double(), labels)


def loss_alone(n_models: int, repeats: int = 50) -> tuple[float, float]:
    """Milliseconds per forward + backward of the float64 log-softmax loss and of the relative one."""
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(n_models, 911, P, generator=g)).requires_grad_()
    labels = torch.randint(0, P, (911,), generator=g)

    def f64(z):
        return -z.double().log_softmax(-1).gather(-1, labels[None, :, None].expand(n_models, -1, 1)).mean((-1, -2))

    out = []
    for fn in (f64, lambda z: cross_entropy_relative(z, labels)):
        for _ in range(3):
            fn(logits).sum().backward()
        start = time.perf_counter()
        for _ in range(repeats):
            logits.grad = None
            fn(logits).sum().backward()
        out.append((time.perf_counter() - start) / repeats * 1e3)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    task = gi.ModularArithmetic(P, "add", "a>=b", 0.4)
    print(f"torch {torch.__version__}, 1 thread; tickets MLP p = {P}, {len(task.labels('train'))} train pairs, "
          f"{args.epochs} epochs, medians of {args.repeats}")
    per_k = 1000 / args.epochs
    for name, mask in (("dense", None), ("masked (40 % kept)", _mask())):
        times = {"bare": [], "train": [], "bare, float64 loss": []}
        for _ in range(args.repeats):
            times["bare"].append(bare(task, args.epochs, mask, cross_entropy_relative))
            times["train"].append(ours(task, args.epochs, mask))
            times["bare, float64 loss"].append(bare(task, args.epochs, mask, f64_loss))
        med = {k: statistics.median(v) * per_k for k, v in times.items()}
        print(f"{name}:")
        for k, v in med.items():
            print(f"  {k:<20} {v:6.2f} s / 1000 epochs")
        print(f"  train / bare         {med['train'] / med['bare']:.2f}x (goal <= 1.2x)")
    for n in (1, 16):
        f64, rel = loss_alone(n)
        print(f"loss alone, {n:>2} model(s): float64 log-softmax {f64:.2f} ms, relative float32 {rel:.2f} ms ({f64 / rel:.1f}x)")


if __name__ == "__main__":
    main()
