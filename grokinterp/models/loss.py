"""The task's loss through a model's own (hooked) forward pass.

TransformerLens's ``model(tokens, return_type="loss")`` is the language-model loss: the mean over
every position ``s`` of ``-log softmax(logits[s])[tokens[s + 1]]``. On modular arithmetic that is
the wrong quantity (it asks position ``a`` to predict ``b`` and position ``b`` to predict ``=``),
and with tokens ``[a, b, =]`` it cannot even be computed, since ``=`` (token id p) is not one of
the p answers the unembedding scores. The loss of the task is the cross-entropy of the answer
``c = a ∘ b`` read at the last position (Nanda et al. 2023, Sec. 3; Minegishi et al.):

    L = -1/N Σ_i log softmax(logits_i[-1])[c_i]

:func:`answer_loss` computes it from the model's hooked forward, so hooks added with
``model.hooks(...)`` or ``run_with_hooks`` act on it (e.g. the loss after ablating neurons).
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from ..errors import GrokinterpError
from ..metrics import cross_entropy_f64
from ..tasks import Split
from .config import Model, model_config, model_kind, to_tokens
from .mlp import MLPConfig

__all__ = ["answer_logits_hooked", "answer_loss", "model_device"]


def model_device(model: Model) -> torch.device:
    """The device of the model's parameters (where its inputs must go)."""
    return next(iter(model.parameters())).device


def answer_logits_hooked(model: Model, tokens: Int[Tensor, "batch seq"]) -> Tensor:
    """Logits over the p answers at the answer position, from the model's hooked forward."""
    if model_kind(model) == "vector_mlp":
        raise GrokinterpError(
            "answer logits and the answer loss belong to modular-arithmetic models; a vector MLP's outputs are "
            "model(inputs) and its loss the task's (grokinterp.metrics.task_loss)"
        )
    if model_kind(model) == "mlp":
        out = model(tokens)  # the MLP moves its inputs to its weights' device itself
    else:
        out = model(tokens.to(model_device(model)))[:, -1]
    p = model_config(model).p
    return out if out.shape[-1] == p else out[..., :p]


def answer_loss(
    model: Model,
    tokens_or_task,
    labels: Int[Tensor, " batch"] | None = None,
    split: Split = "train",
) -> Tensor:
    """Mean cross-entropy (float64) of the answer at the last position, from the model's hooked
    forward pass (differentiable; hooks apply).

    ``answer_loss(model, task, split="train")`` reads the split's tokens and labels from a modular
    task; ``answer_loss(model, tokens, labels)`` takes token sequences (``task.tokens(split)``:
    ``[a, b, =]``, or pairs ``[a, b]``) and their answers. Inputs are moved to the model's device.
    """
    if isinstance(tokens_or_task, Tensor):
        if labels is None:
            raise GrokinterpError("answer_loss(model, tokens, labels) needs the labels (task.labels(split)) with the tokens")
        tokens = tokens_or_task
    else:
        task = tokens_or_task
        if not hasattr(task, "inputs") or not hasattr(task, "labels"):
            raise GrokinterpError(f"answer_loss expects a task or a tensor of tokens, got {type(task).__name__}")
        if labels is not None:
            raise GrokinterpError("answer_loss(model, task) reads the labels from the task; do not pass labels too")
        tokens, labels = to_tokens(model, task.inputs(split)), task.labels(split)
    if tokens.ndim != 2 or labels.ndim != 1 or tokens.shape[0] != labels.shape[0]:
        raise GrokinterpError(
            f"answer_loss expects tokens (batch, seq) and labels (batch,), got {tuple(tokens.shape)} and {tuple(labels.shape)}"
        )
    if isinstance(model_config(model), MLPConfig) and tokens.shape[1] not in (2, 3):
        raise GrokinterpError(f"the MLP reads pairs (batch, 2) or tokens [a, b, =] (batch, 3), got {tuple(tokens.shape)}")
    logits = answer_logits_hooked(model, tokens)
    return cross_entropy_f64(logits, labels.to(logits.device))
