"""Full-batch training on a modular-arithmetic task, with optional mask, run directory and resume.

Epoch convention: epoch ``e`` is the state after ``e`` full-batch AdamW steps; epoch 0 is the initial
weights, evaluated and (with a run directory) saved before the first step. Evaluation happens every
``eval_every`` epochs and at the last epoch; ``t_mem`` / ``t_gen`` are read off those rows.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .errors import CheckpointError, GrokinterpError
from .models import Model, answer_logits, config_to_dict, model_config, named_weights
from .runs import (
    RunWriter,
    load_optimiser_state,
    optimiser_state,
    read_resume_state,
    read_train_config,
)
from .tasks import ModularArithmetic
from .tickets.masks import apply_mask_, check_mask, density, masked_weights

__all__ = [
    "GrokkingTimes",
    "TrainConfig",
    "TrainResult",
    "cross_entropy_f64",
    "evaluate",
    "grokking_times",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule of a full-batch run.

    ``warmup_epochs``: linear learning-rate warm-up ``lr * min(1, step / warmup_epochs)``.
    ``stop_at_test_acc``: stop after the first evaluation whose test accuracy exceeds this value
    (``None``: run all ``epochs``). ``threads``: torch intra-op threads during training
    (``None``: leave as is; use 1 per worker when running several processes).
    """

    epochs: int = 10_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_epochs: int = 0
    eval_every: int = 10
    checkpoint_every: int = 100
    stop_at_test_acc: Optional[float] = None
    threads: Optional[int] = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise GrokinterpError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        for name in ("eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise GrokinterpError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise GrokinterpError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise GrokinterpError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise GrokinterpError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.warmup_epochs < 0:
            raise GrokinterpError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "betas" else v) for k, v in d.items() if k in known})


@dataclass(frozen=True)
class GrokkingTimes:
    """``t_mem`` / ``t_gen``: first evaluated epoch whose train / test accuracy exceeds the threshold;
    ``tau_grok = t_gen / t_mem``. ``None`` when never reached (or ``t_mem`` is 0)."""

    t_mem: Optional[int]
    t_gen: Optional[int]
    tau_grok: Optional[float]
    threshold: float = 0.95


def grokking_times(history: Sequence[Mapping] | "object", threshold: float = 0.95) -> GrokkingTimes:
    """t_mem, t_gen and tau_grok from a history (a list of metric rows or a DataFrame)."""
    rows = history.to_dict("records") if hasattr(history, "to_dict") else list(history)
    t_mem = next((int(r["epoch"]) for r in rows if r["train_acc"] > threshold), None)
    t_gen = next((int(r["epoch"]) for r in rows if r["test_acc"] > threshold), None)
    tau = t_gen / t_mem if (t_mem and t_gen is not None) else None
    return GrokkingTimes(t_mem, t_gen, tau, threshold)


@dataclass
class TrainResult:
    model: Model
    history: list[dict]
    run_dir: Optional[Path]
    times: GrokkingTimes = field(init=False)

    def __post_init__(self) -> None:
        self.times = grokking_times(self.history)

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


def cross_entropy_f64(logits: Float[Tensor, "n p"], labels: Int[Tensor, " n"]) -> Tensor:
    """Mean cross-entropy with the log-softmax taken in float64 (small losses after grokking are
    below float32 resolution)."""
    logp = logits.to(torch.float64).log_softmax(dim=-1)
    return -logp.gather(-1, labels[:, None]).mean()


@torch.no_grad()
def evaluate(
    model: Model, task: ModularArithmetic, weights: Mapping[str, Tensor] | None = None
) -> dict[str, float]:
    """Train/test loss and accuracy and the L1 / L2 norm of all weights (masked weights count as 0)."""
    out: dict[str, float] = {}
    for split in ("train", "test"):
        logits = answer_logits(model, task.inputs(split), weights)
        labels = task.labels(split)
        out[f"{split}_loss"] = float(cross_entropy_f64(logits, labels))
        out[f"{split}_acc"] = float((logits.argmax(-1) == labels).double().mean())
    params = dict(named_weights(model))
    if weights:
        params.update(weights)
    out["l1_norm"] = float(sum(p.detach().abs().double().sum() for p in params.values()))
    out["l2_norm"] = math.sqrt(float(sum(p.detach().double().square().sum() for p in params.values())))
    return out


def _check_task(model: Model, task: ModularArithmetic) -> None:
    if not isinstance(task, ModularArithmetic):
        raise GrokinterpError(f"task must be a ModularArithmetic, got {type(task).__name__}")
    p = model_config(model).p
    if task.p != p:
        raise GrokinterpError(f"the model is built for p={p} but the task has p={task.p}")


def library_versions() -> dict[str, str]:
    """Versions recorded in a run's config.json."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("grokinterp", "torch", "transformer_lens"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


Callback = Callable[[int, dict, Model], Optional[bool]]


def train(
    model: Model,
    task: ModularArithmetic,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    mask: Mapping[str, Tensor] | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    parent: Mapping | None = None,
) -> TrainResult:
    """Train ``model`` in place with full-batch AdamW on ``task``'s train split.

    Args:
        mask: bool tensors named like the parameters; pruned weights are zeroed once and the
            forward pass uses ``W * mask``, so they never act and get zero gradient.
        out_dir: run directory (config.json, metrics.jsonl, checkpoints/); ``None`` keeps
            everything in memory.
        resume: continue a killed run in ``out_dir`` from its last checkpoint (or start it, if
            ``out_dir`` holds no run yet); with the same seeds the continuation is bit-identical
            to an uninterrupted run.
        callbacks: ``f(epoch, metrics, model)`` after each evaluation; returning True stops.
        parent: recorded in config.json (ticket runs name their base run here).

    Returns a :class:`TrainResult` with the history (one dict per evaluated epoch) and times.
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise GrokinterpError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_task(model, task)
    mask = check_mask(model, mask) if mask is not None else None
    if resume and out_dir is None:
        raise GrokinterpError("resume=True needs the out_dir of the run to continue")

    # Tiny weights after memorisation otherwise slow every CPU step ~2x. This is a process-wide
    # setting that torch cannot read back, so it is left on.
    torch.set_flush_denormal(True)
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(model, task, config, out_dir, mask, resume, callbacks, parent)
    finally:
        if config.threads:
            torch.set_num_threads(old_threads)


def _train(model, task, config, out_dir, mask, resume, callbacks, parent) -> TrainResult:
    params = named_weights(model)
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    opt = torch.optim.AdamW(
        list(trainable.values()), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, foreach=True
    )
    record = {
        "task": task.to_dict(),
        "model": config_to_dict(model_config(model)),
        "train": config.to_dict(),
        "seeds": {"split": task.seed, "init": model_config(model).seed},
        "mask": None if mask is None else {"density": density(mask), "file": "mask.safetensors"},
        "parent": dict(parent) if parent else None,
        "epoch_convention": "epoch e = after e full-batch steps; epoch 0 = initial weights",
        "versions": library_versions(),
    }
    writer = RunWriter(out_dir) if out_dir is not None else None
    history: list[dict] = []
    start = 0
    if writer is not None and resume and (writer.path / "config.json").exists():
        start, history, mask = _restore(writer, model, opt, trainable, record, mask)
        last = history[-1] if history else None
        if last is not None and (
            start >= config.epochs or (config.stop_at_test_acc is not None and last["test_acc"] > config.stop_at_test_acc)
        ):
            return TrainResult(model, history, writer.path)  # the run had already finished
    else:
        if writer is not None:
            writer.create(record, mask)
        if mask is not None:
            apply_mask_(model, mask)

    train_x, train_y = task.train_inputs, task.train_labels
    weights = (lambda: masked_weights(model, mask)) if mask is not None else (lambda: None)

    def log(epoch: int) -> bool:
        row = {"epoch": epoch, **evaluate(model, task, weights())}
        history.append(row)
        if writer is not None:
            writer.append_metrics(row)
        stop = config.stop_at_test_acc is not None and row["test_acc"] > config.stop_at_test_acc
        for cb in callbacks:
            stop = bool(cb(epoch, row, model)) or stop
        return stop

    if start == 0:
        stop = log(0)
        if writer is not None:
            writer.save_checkpoint(model, task, 0, optimiser_state(opt, trainable))
        if stop:
            return TrainResult(model, history, writer.path if writer else None)

    bar = _progress(config, start)
    epoch = start
    for epoch in range(start + 1, config.epochs + 1):
        if config.warmup_epochs:
            for group in opt.param_groups:
                group["lr"] = config.lr * min(1.0, epoch / config.warmup_epochs)
        logits = answer_logits(model, train_x, weights())
        loss = cross_entropy_f64(logits, train_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = epoch == config.epochs
        stop = False
        if epoch % config.eval_every == 0 or last:
            stop = log(epoch)
            if bar is not None:
                bar.set_postfix(train=f"{history[-1]['train_acc']:.3f}", test=f"{history[-1]['test_acc']:.3f}")
        if writer is not None and (epoch % config.checkpoint_every == 0 or last or stop):
            writer.save_checkpoint(model, task, epoch, optimiser_state(opt, trainable))
        if bar is not None:
            bar.update(1)
        if stop:
            break
    if bar is not None:
        bar.close()
    return TrainResult(model, history, writer.path if writer else None)


def _progress(config: TrainConfig, start: int):
    if not config.progress or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.epochs, initial=start, desc="train", unit="ep", leave=False)


def _restore(writer, model, opt, trainable, record, mask) -> tuple[int, list[dict]]:
    """Load the last checkpoint that has optimiser state, and the metrics up to it."""
    old = writer.read_config()
    writer.check_resumable(old, record, ("task", "model"))
    old_train = read_train_config(old)
    new_train = TrainConfig.from_dict(record["train"])
    for name in ("lr", "weight_decay", "betas", "warmup_epochs"):
        if getattr(old_train, name) != getattr(new_train, name):
            raise CheckpointError(
                f"{writer.path}: cannot resume with {name}={getattr(new_train, name)!r}; the run used "
                f"{getattr(old_train, name)!r}"
            )
    epoch, weights, opt_state = read_resume_state(writer.path)
    with torch.no_grad():
        for name, p in named_weights(model).items():
            if name not in weights:
                raise CheckpointError(f"{writer.path}: checkpoint at epoch {epoch} lacks parameter {name!r}")
            p.copy_(weights[name])
    load_optimiser_state(opt, trainable, opt_state)
    stored = writer.read_mask()
    if mask is None:
        mask = stored  # a ticket run resumes with its own mask
    elif stored is None or stored.keys() != mask.keys() or any(not torch.equal(stored[k], mask[k]) for k in mask):
        raise CheckpointError(f"{writer.path}: cannot resume with a different mask than the run's")
    history = writer.truncate_metrics(epoch)
    writer.update_config({**old, "train": dict(record["train"])})
    return epoch, history, mask
