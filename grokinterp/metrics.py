"""Loss, accuracy, weight norms and grokking times: the numbers every run records.

The loss is taken in float64 (after grokking the train loss falls below float32's resolution near
1). A task names its loss (:attr:`grokinterp.tasks.Task.loss`); :func:`task_loss` computes it.
``t_mem`` / ``t_gen`` (Nanda et al. 2023; Minegishi et al.) are the first evaluated epochs whose
train / test accuracy exceeds a threshold (0.95), and ``tau_grok = t_gen / t_mem``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .errors import GrokinterpError
from .tasks import SPLITS, Task

__all__ = [
    "GrokkingTimes",
    "LOSSES",
    "accuracy",
    "cross_entropy_f64",
    "evaluate",
    "grokking_times",
    "split_scores",
    "stacked_cross_entropy_f64",
    "task_loss",
    "weight_norms_of",
]


def cross_entropy_f64(logits: Float[Tensor, "n c"], labels: Int[Tensor, " n"]) -> Tensor:
    """Mean cross-entropy ``-mean_i log softmax(logits_i)[labels_i]`` with the log-softmax taken in
    float64 (small losses after grokking are below float32 resolution)."""
    logp = logits.to(torch.float64).log_softmax(dim=-1)
    return -logp.gather(-1, labels.to(logp.device)[:, None]).mean()


def stacked_cross_entropy_f64(logits: Float[Tensor, "m n c"], labels: Int[Tensor, " n"]) -> Float[Tensor, " m"]:
    """:func:`cross_entropy_f64` of ``m`` models' logits on the same labels, one loss per model:
    ``loss_j = -mean_i log softmax(logits_ji)[labels_i]``, each equal bit for bit to the
    single-model loss (the log-softmax is per row; each mean reduces one contiguous row)."""
    logp = logits.to(torch.float64).log_softmax(dim=-1)
    index = labels[None, :, None].expand(logits.shape[0], -1, 1)
    return -logp.gather(-1, index)[..., 0].mean(dim=-1)


def accuracy(logits: Float[Tensor, "n c"], labels: Int[Tensor, " n"]) -> float:
    """Fraction of rows whose largest logit is the label."""
    return float((logits.argmax(-1) == labels.to(logits.device)).double().mean())


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cross_entropy": cross_entropy_f64}


def task_loss(task: Task, outputs: Tensor, labels: Tensor) -> Tensor:
    """The task's loss (by its name, :data:`LOSSES`) of ``outputs`` against ``labels``."""
    fn = LOSSES.get(task.loss)
    if fn is None:
        raise GrokinterpError(f"unknown loss {task.loss!r} of a {task.kind} task; expected one of {sorted(LOSSES)}")
    return fn(outputs, labels)


def split_scores(task: Task, outputs: Tensor, labels: Tensor) -> tuple[float, float]:
    """``(loss, accuracy)`` of one split's outputs."""
    return float(task_loss(task, outputs, labels)), accuracy(outputs, labels)


def weight_norms_of(params: Mapping[str, Tensor]) -> dict[str, float]:
    """``l1_norm`` = Σ|w| and ``l2_norm`` = sqrt(Σ w²) over every tensor, in float64."""
    l1 = sum(float(p.detach().abs().double().sum()) for p in params.values())
    l2 = math.sqrt(sum(float(p.detach().double().square().sum()) for p in params.values()))
    return {"l1_norm": l1, "l2_norm": l2}


@torch.no_grad()
def evaluate(forward: Callable[[Tensor], Tensor], task: Task, params: Mapping[str, Tensor]) -> dict[str, float]:
    """Train / test loss and accuracy of ``forward`` (inputs -> outputs) on ``task``, and the L1 / L2
    norms of ``params`` (pass masked weights for masked entries: pruned weights count as 0)."""
    out: dict[str, float] = {}
    for split in SPLITS:
        out[f"{split}_loss"], out[f"{split}_acc"] = split_scores(task, forward(task.inputs(split)), task.labels(split))
    out.update(weight_norms_of(params))
    return out


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
