"""Loss, accuracy, weight norms and grokking times: the numbers every run records.

The recorded loss is taken in float64 (after grokking the train loss falls below float32's
resolution near 1). The loss a training step minimises (:func:`train_loss`) is, for cross-entropy,
:func:`cross_entropy_relative`: float32 arithmetic arranged so that every term and every gradient
keeps its relative precision however small it gets, which is what grokking needs of float64, at a
third (one model) to a seventh (16 stacked) of its cost (``benchmarks/step_speed.py``). A task
names its loss (:attr:`grokinterp.tasks.Task.loss`: cross-entropy or squared error) and its
accuracy rule (``accuracy_rule``: argmax, or squared error below the task's bound);
:func:`task_loss` and :func:`task_accuracy` compute them, so no caller asks what kind of task it has.
``t_mem`` / ``t_gen`` (Nanda et al. 2023; Minegishi et al.) are the first evaluated epochs whose
train / test accuracy exceeds a threshold (0.95), and ``tau_grok = t_gen / t_mem``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int, Shaped
from torch import Tensor

from .errors import GrokinterpError
from .tasks import SPLITS, Task

__all__ = [
    "ACCURACIES",
    "GrokkingTimes",
    "LOSSES",
    "accuracy",
    "cross_entropy_f64",
    "evaluate",
    "grokking_times",
    "mse_f64",
    "split_scores",
    "cross_entropy_relative",
    "TRAIN_LOSSES",
    "task_accuracy",
    "task_loss",
    "train_loss",
    "weight_norms_of",
]


def cross_entropy_f64(logits: Float[Tensor, "n c"], labels: Int[Tensor, " n"]) -> Tensor:
    """Mean cross-entropy ``-mean_i log softmax(logits_i)[labels_i]`` with the log-softmax taken in
    float64 (small losses after grokking are below float32 resolution)."""
    logp = logits.to(torch.float64).log_softmax(dim=-1)
    return -logp.gather(-1, labels.to(logp.device)[:, None]).mean()


class _RelativeCrossEntropy(torch.autograd.Function):
    """Forward and backward of :func:`cross_entropy_relative` (see there)."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor) -> Tensor:
        index = labels[(None,) * (logits.ndim - 2) + (slice(None), None)].expand(*logits.shape[:-1], 1)
        top = logits.amax(-1, keepdim=True)
        shift = top - logits.gather(-1, index)  # max_j d_j for d_j = z_j - z_y (>= 0)
        e = (logits - top).exp_().scatter_(-1, index, 0.0)  # e^{d_j - shift} for j != y, each <= 1
        s = e.sum(-1, keepdim=True)
        inv = (s + (-shift).exp()).reciprocal_()  # 1 / Σ_j e^{d_j - shift}
        ctx.save_for_backward(e, inv, (s * inv).neg_(), index)
        per_row = shift + torch.log1p(s + torch.expm1(-shift))  # = log Σ_j e^{d_j}
        return per_row.squeeze(-1).mean(-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        wrong, inv, own, index = ctx.saved_tensors  # own = softmax_y - 1 = -s / Σ_j e^{d_j - shift}
        scale = (grad / wrong.shape[-2])[..., None, None]
        g = wrong * (inv * scale)
        return g.scatter_(-1, index, own * scale), None


def cross_entropy_relative(logits: Float[Tensor, "*m n c"], labels: Int[Tensor, " n"]) -> Float[Tensor, "*m"]:
    """Mean cross-entropy of each model's logits (leading axes ``m``: none for one model, one per
    model for stacked models), in the logits' dtype with every term accurate *relative to its own
    size*, however small: the training loss.

    With ``d_j = z_j - z_y`` and ``s = max_j d_j >= 0``, the row's loss is
    ``log(Σ_j e^{d_j}) = s + log1p(Σ_{j≠y} e^{d_j - s} + expm1(-s))`` and its gradient
    ``softmax_j = e^{d_j - s} / (Σ_{j≠y} e^{d_j - s} + e^{-s})`` for ``j ≠ y`` and
    ``softmax_y - 1 = -Σ_{j≠y} e^{d_j - s} / (...)``, each taken without cancellation. After
    memorisation the correct class dominates, the loss is ``≈ Σ_{j≠y} e^{d_j}`` and naive float32
    gives 0 (``1 - softmax_y`` rounds away below 6e-8); here it keeps float32's relative precision
    down to 1e-38 (float64's log-softmax loses relative precision below about 1e-16), at a third
    (one model) to a seventh (16 stacked) of the float64 cost (``benchmarks/step_speed.py``). The
    recorded losses (:func:`evaluate`) stay in float64.

    Each row is reduced over its own contiguous classes and each model's mean over its own rows,
    so a stack of models gets, bit for bit, the loss and gradient each would get alone."""
    return _RelativeCrossEntropy.apply(logits, labels.to(logits.device))


def accuracy(logits: Float[Tensor, "n c"], labels: Int[Tensor, " n"]) -> float:
    """Fraction of rows whose largest logit is the label (the first of equal largest ones, a NaN
    counting as largest: torch's rule for ``argmax`` and ``max``). The index is read from
    ``max(-1)``, which on the CPU takes half the time of ``argmax(-1)`` for these (thousands of
    rows, tens of classes) shapes and gives the same indices."""
    return float((logits.max(-1).indices == labels.to(logits.device)).double().mean())


def mse_f64(outputs: Float[Tensor, "n c"], labels: Shaped[Tensor, " n"]) -> Tensor:
    """Mean squared error ``mean_{i,c} (outputs_ic - t_ic)²`` in float64, over every example and
    output unit (as ``torch.nn.MSELoss``). Integer labels are classes and the target is their
    one-hot vector ``t_i = onehot(labels_i)`` over the ``c`` outputs (Liu et al. 2023, "Omnigrok",
    on MNIST); float labels are the targets themselves, one per output (``(n,)`` labels against
    ``(n, 1)`` outputs for a regression)."""
    out = outputs.to(torch.float64)
    labels = labels.to(out.device)
    if labels.is_floating_point():
        if labels.numel() != out.numel() or labels.shape[0] != out.shape[0]:
            raise GrokinterpError(
                f"squared error needs one target per output: outputs {tuple(out.shape)}, labels {tuple(labels.shape)}"
            )
        target = labels.to(torch.float64).reshape(out.shape)
    else:
        if out.ndim != 2 or labels.shape != out.shape[:1]:
            raise GrokinterpError(
                f"squared error on classes needs outputs (n, classes) and labels (n,), got {tuple(out.shape)} and {tuple(labels.shape)}"
            )
        target = F.one_hot(labels.long(), out.shape[1]).to(torch.float64)
    return (out - target).square().mean()


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cross_entropy": cross_entropy_f64, "mse": mse_f64}


def squared_error_accuracy(task: Task, outputs: Float[Tensor, "n 1"], labels: Float[Tensor, " n"]) -> float:
    """Fraction of examples with ``(output_i - label_i)² < task.squared_error_bound`` (in float64)."""
    err = (outputs.to(torch.float64).reshape(-1) - labels.to(outputs.device, torch.float64).reshape(-1)).square()
    return float((err < float(task.squared_error_bound)).double().mean())


#: What accuracy means, by a task's ``accuracy_rule``: ``f(task, outputs, labels) -> fraction``.
ACCURACIES: dict[str, Callable[[Task, Tensor, Tensor], float]] = {
    "argmax": lambda task, outputs, labels: accuracy(outputs, labels),
    "squared_error": squared_error_accuracy,
}


def task_accuracy(task: Task, outputs: Tensor, labels: Tensor) -> float:
    """The task's accuracy (by its ``accuracy_rule``, :data:`ACCURACIES`; ``"argmax"`` if it names none)."""
    rule = getattr(task, "accuracy_rule", "argmax")
    fn = ACCURACIES.get(rule)
    if fn is None:
        raise GrokinterpError(f"unknown accuracy rule {rule!r} of a {task.kind} task; expected one of {sorted(ACCURACIES)}")
    return fn(task, outputs, labels)


def task_loss(task: Task, outputs: Tensor, labels: Tensor) -> Tensor:
    """The task's loss (by its name, :data:`LOSSES`) of ``outputs`` against ``labels``."""
    fn = LOSSES.get(task.loss)
    if fn is None:
        raise GrokinterpError(f"unknown loss {task.loss!r} of a {task.kind} task; expected one of {sorted(LOSSES)}")
    return fn(outputs, labels)


TRAIN_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cross_entropy": cross_entropy_relative}


def train_loss(task: Task, outputs: Tensor, labels: Tensor) -> Tensor:
    """The loss a training step minimises: :data:`TRAIN_LOSSES` for the task's loss where it has a
    faster form of equal accuracy, else :func:`task_loss`. Works on stacked outputs (a leading
    model axis) as well, giving one loss per model."""
    fn = TRAIN_LOSSES.get(task.loss)
    return fn(outputs, labels) if fn is not None else task_loss(task, outputs, labels)


def split_scores(task: Task, outputs: Tensor, labels: Tensor) -> tuple[float, float]:
    """``(loss, accuracy)`` of one split's outputs, each as the task defines it."""
    return float(task_loss(task, outputs, labels)), task_accuracy(task, outputs, labels)


def weight_norms_of(params: Mapping[str, Tensor]) -> dict[str, float]:
    """``l1_norm`` = Σ|w| and ``l2_norm`` = sqrt(Σ w²) over every tensor, in float64."""
    l1 = sum(float(p.detach().abs().double().sum()) for p in params.values())
    l2 = math.sqrt(sum(float(p.detach().double().square().sum()) for p in params.values()))
    return {"l1_norm": l1, "l2_norm": l2}


@torch.no_grad()
def evaluate(forward: Callable[[Tensor], Tensor] | None, task: Task, params: Mapping[str, Tensor], *,
             outputs: Mapping[str, Tensor] | None = None) -> dict[str, float]:
    """Train / test loss and accuracy of ``forward`` (inputs -> outputs) on ``task``, and the L1 / L2
    norms of ``params`` (pass masked weights for masked entries: pruned weights count as 0).
    ``outputs``: each split's outputs, computed already (a stack of models evaluated at once)."""
    out: dict[str, float] = {}
    for split in SPLITS:
        got = outputs[split] if outputs is not None else forward(task.inputs(split))
        out[f"{split}_loss"], out[f"{split}_acc"] = split_scores(task, got, task.labels(split))
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
