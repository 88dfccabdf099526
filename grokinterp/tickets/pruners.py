"""Pruners: magnitude, random and the pruning-at-initialisation baselines SNIP, GraSP and SynFlow.

Every ``*_mask`` function has the same core interface::

    mask = magnitude_mask(model_or_state, prune_ratio, scope="global", include=None)

``prune_ratio`` is the fraction *removed*; the mask keeps exactly ``round((1 - prune_ratio) * N)``
weights (``scope="global"``: N over all pruned tensors, one threshold; ``scope="layer"``: per
tensor), ties broken by position (:mod:`grokinterp.tickets.select`). ``include`` chooses the pruned
tensors (default: every weight matrix, embedding and unembedding included, no biases; see
:mod:`grokinterp.tickets.nets` for the accepted networks). Tensors not included are absent from
the mask, i.e. left dense.

Scores are computed at the weights you pass: the model's current parameters, or ``weights=``
(name -> tensor) when given. "Pruning at initialisation" means passing a freshly built model or a
run's epoch-0 weights (what :mod:`grokinterp.tickets.ticket` and :mod:`grokinterp.tickets.controls` does). Scores are computed in float64.
Data-dependent pruners (SNIP, GraSP) take ``data``: a task (:class:`~grokinterp.tasks.Task`)
(its train split, full batch) or a pair ``(inputs, labels)``; the loss is the mean cross-entropy
(for a task with another loss, e.g. squared error, the task's loss, without GraSP's temperature).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import GrokinterpError
from ..tasks import Task, is_task
from ..masks import Mask
from ..metrics import task_loss
from .nets import Include, Net, as_net, double_weights, flat_logits, leaf_weights, resolve_include
from .select import Scope, check_prune_ratio, check_scope, mask_from_scores

__all__ = [
    "PRUNERS",
    "grasp_mask",
    "grasp_scores",
    "magnitude_mask",
    "magnitude_scores",
    "prune",
    "random_mask",
    "snip_mask",
    "snip_scores",
    "synflow_batch_mask",
    "synflow_mask",
    "synflow_scores",
]

Data = Task | tuple[Tensor, Tensor]


def _batch(data: Data) -> tuple[Tensor, Tensor]:
    if is_task(data):
        return data.inputs("train"), data.labels("train")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(t) for t in data)
        if y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise GrokinterpError(
                f"data must be (inputs, labels) with labels of shape (n,) matching the inputs, got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        return x, y.long()
    raise GrokinterpError(
        f"data must be a task (its train split is used) or a pair (inputs, labels), got {type(data).__name__}"
    )


def _loss(net: Net, weights: Mapping[str, Tensor], data: Data, temperature: float = 1.0) -> Tensor:
    x, y = _batch(data)
    logits = flat_logits(net, weights, x)
    if is_task(data) and data.loss != "cross_entropy":  # e.g. squared error: the task's own loss, no temperature
        return task_loss(data, logits.double(), y)
    return F.cross_entropy(logits.double() / temperature, y)


# ---------------------------------------------------------------------------------- magnitude


def magnitude_scores(model_or_state, *, include: Include = None, weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """``|W|`` for every pruned tensor."""
    net = as_net(model_or_state, weights)
    return {n: net.weights[n].double().abs() for n in resolve_include(net, include)}


def magnitude_mask(
    model_or_state,
    prune_ratio: float,
    scope: Scope = "global",
    include: Include = None,
    *,
    weights: Mapping[str, Tensor] | None = None,
) -> Mask:
    """Keep the largest ``|W|`` (the grokking-ticket mask, Minegishi et al.). Works on a model or a
    state dict (e.g. a checkpoint's weights)."""
    check_prune_ratio(prune_ratio), check_scope(scope)
    return mask_from_scores(magnitude_scores(model_or_state, include=include, weights=weights), prune_ratio, scope)


# ---------------------------------------------------------------------------------- random


def random_mask(
    model_or_state,
    prune_ratio: float,
    scope: Scope = "global",
    include: Include = None,
    *,
    seed: int = 0,
) -> Mask:
    """Keep a uniformly random subset of exactly ``round((1 - prune_ratio) * N)`` weights.

    Scores are i.i.d. uniform from a ``torch.Generator`` seeded with ``seed``, drawn tensor by tensor
    in the network's order; same seed, same mask.
    """
    check_prune_ratio(prune_ratio), check_scope(scope)
    net = as_net(model_or_state)
    g = torch.Generator().manual_seed(int(seed))
    scores = {n: torch.rand(net.weights[n].shape, generator=g, dtype=torch.float64) for n in resolve_include(net, include)}
    return mask_from_scores(scores, prune_ratio, scope)


# ---------------------------------------------------------------------------------- SNIP


def snip_scores(
    model, data: Data, *, include: Include = None, weights: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """SNIP connection sensitivity ``|g ⊙ W|`` with ``g = dL/dW`` (Lee et al. 2019, "SNIP").

    ``L`` is the mean cross-entropy over the full batch. The paper's normalisation by the sum of all
    scores does not change the ranking and is left out.
    """
    net = as_net(model, weights)
    names = resolve_include(net, include)
    w, leaves = leaf_weights(net, names)
    grads = torch.autograd.grad(_loss(net, w, data), leaves, allow_unused=True)
    return {n: (_zero_if_none(g, w[n]) * w[n]).detach().abs() for n, g in zip(names, grads)}


def snip_mask(
    model,
    prune_ratio: float,
    data: Data,
    scope: Scope = "global",
    include: Include = None,
    *,
    weights: Mapping[str, Tensor] | None = None,
) -> Mask:
    """Keep the largest SNIP scores ``|g ⊙ W|`` (one shot)."""
    check_prune_ratio(prune_ratio), check_scope(scope)
    return mask_from_scores(snip_scores(model, data, include=include, weights=weights), prune_ratio, scope)


# ---------------------------------------------------------------------------------- GraSP


def grasp_scores(
    model,
    data: Data,
    *,
    temperature: float = 200.0,
    include: Include = None,
    weights: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """GraSP scores ``θ ⊙ (H g)`` (Wang et al. 2020, "Picking winning tickets before training by
    preserving gradient flow").

    ``g = ∇L`` and ``H = ∇²L`` over the pruned tensors, with ``L`` the cross-entropy of
    ``logits / temperature`` (the reference uses 200); ``H g = ∇_θ (g(θ) · stop(g))``. GraSP
    removes the weights whose removal least reduces gradient flow, which amounts to *keeping the
    largest* ``θ ⊙ Hg`` (signed; the paper's ``-θ ⊙ Hg`` with the largest removed). The
    normalisation by ``|Σ scores|`` does not change the ranking and is left out.
    """
    if not temperature > 0:
        raise GrokinterpError(f"temperature must be > 0, got {temperature!r}")
    net = as_net(model, weights)
    names = resolve_include(net, include)
    w, leaves = leaf_weights(net, names)
    grads = torch.autograd.grad(_loss(net, w, data, temperature), leaves, create_graph=True, allow_unused=True)
    grads = [_zero_if_none(g, leaf) for g, leaf in zip(grads, leaves)]
    z = sum((g * g.detach()).sum() for g in grads)
    hg = torch.autograd.grad(z, leaves, allow_unused=True) if z.requires_grad else [None] * len(leaves)
    return {n: (w[n] * _zero_if_none(h, w[n])).detach() for n, h in zip(names, hg)}


def grasp_mask(
    model,
    prune_ratio: float,
    data: Data,
    scope: Scope = "global",
    include: Include = None,
    *,
    temperature: float = 200.0,
    weights: Mapping[str, Tensor] | None = None,
) -> Mask:
    """Keep the largest GraSP scores ``θ ⊙ Hg`` (one shot, logits / ``temperature``)."""
    check_prune_ratio(prune_ratio), check_scope(scope)
    scores = grasp_scores(model, data, temperature=temperature, include=include, weights=weights)
    return mask_from_scores(scores, prune_ratio, scope)


# ---------------------------------------------------------------------------------- SynFlow


def synflow_scores(
    model_or_module,
    *,
    mask: Mapping[str, Tensor] | None = None,
    include: Include = None,
    weights: Mapping[str, Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
    data: Data | None = None,
) -> dict[str, Tensor]:
    """One round of SynFlow scores (Tanaka et al. 2020, "Pruning neural networks without any data
    by iteratively conserving synaptic flow").

    Every tensor is replaced by its absolute value (times ``mask`` where given), the network is run
    on one all-ones input (token models: every embedding row replaced by the column sum, see
    :mod:`grokinterp.tickets.nets`), ``R = Σ outputs``, and the score is ``|θ ⊙ ∂R/∂θ|``. Data-free.
    With ``data`` the network is run on its inputs instead (the training batch) and ``R`` sums the
    outputs over the batch: the variant the tickets paper's code uses. ``input_shape`` (generic
    modules only) is the shape of one input without the batch axis; inferred from the first
    ``nn.Linear`` when omitted.
    """
    net = as_net(model_or_module, weights, input_shape)
    if net.ones_logits is None:
        raise GrokinterpError("SynFlow needs a forward pass, so a model or nn.Module, not a state dict")
    names = resolve_include(net, include)
    w = {n: (t.abs() if t.is_floating_point() else t) for n, t in double_weights(net).items()}
    if mask is not None:
        for n, m in mask.items():
            if n in w:
                w[n] = w[n] * m.to(w[n].dtype)
    leaves = []
    for n in names:
        w[n] = w[n].clone().requires_grad_(True)
        leaves.append(w[n])
    R = (net.ones_logits(w) if data is None else flat_logits(net, w, _batch(data)[0])).sum()
    grads = torch.autograd.grad(R, leaves, allow_unused=True)
    return {n: (_zero_if_none(g, w[n]) * w[n]).detach().abs() for n, g in zip(names, grads)}


def synflow_mask(
    model_or_module,
    prune_ratio: float,
    scope: Scope = "global",
    include: Include = None,
    *,
    rounds: int = 100,
    weights: Mapping[str, Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
) -> Mask:
    """Iterative SynFlow: ``rounds`` rounds; round ``r = 0..rounds-1`` recomputes the scores with the
    current mask applied and keeps the top ``density ** ((r + 1) / rounds)`` (an exponentially
    growing prune ratio ending exactly at ``prune_ratio``). Weights pruned in an earlier round stay
    pruned. The reference uses 100 rounds and a global threshold.
    """
    return _iterative_synflow(
        lambda mask: synflow_scores(model_or_module, mask=mask, include=include, weights=weights, input_shape=input_shape),
        prune_ratio, scope, rounds,
    )


def _iterative_synflow(scores_of: Callable[[Mask | None], dict[str, Tensor]], prune_ratio: float, scope: Scope,
                       rounds: int) -> Mask:
    """``rounds`` rounds of scoring with the current mask applied, round ``r`` keeping the top
    ``density ** ((r + 1) / rounds)``; weights pruned in a round stay pruned."""
    prune_ratio = check_prune_ratio(prune_ratio)
    check_scope(scope)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise GrokinterpError(f"rounds must be a positive integer, got {rounds!r}")
    density = 1.0 - prune_ratio
    mask: Mask | None = None
    for r in range(rounds):
        ratio = prune_ratio if r == rounds - 1 else min(1.0 - density ** ((r + 1) / rounds), prune_ratio)
        scores = scores_of(mask)
        if mask is not None:
            scores = {n: s.masked_fill(~mask[n], float("-inf")) for n, s in scores.items()}
        mask = mask_from_scores(scores, ratio, scope)
    return mask


def synflow_batch_mask(
    model_or_module,
    prune_ratio: float,
    data: Data,
    scope: Scope = "global",
    include: Include = None,
    *,
    rounds: int = 1,
    weights: Mapping[str, Tensor] | None = None,
) -> Mask:
    """SynFlow as the tickets paper's code runs it: the scores of :func:`synflow_scores` with the
    training batch (``data``) as input instead of the all-ones input, one round by default. Same
    schedule as :func:`synflow_mask` when ``rounds > 1``."""
    return _iterative_synflow(
        lambda mask: synflow_scores(model_or_module, mask=mask, include=include, weights=weights, data=data),
        prune_ratio, scope, rounds,
    )


def _zero_if_none(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g


# ---------------------------------------------------------------------------------- registry


PRUNERS: dict[str, Callable[..., Mask]] = {
    "magnitude": magnitude_mask,
    "random": random_mask,
    "snip": snip_mask,
    "grasp": grasp_mask,
    "synflow": synflow_mask,  # the SynFlow paper's: all-ones input, 100 rounds
    "synflow_batch": synflow_batch_mask,  # the tickets paper's code: the training batch, one round
}
DATA_PRUNERS = ("snip", "grasp", "synflow_batch")


def prune(
    method: str,
    model,
    prune_ratio: float,
    data: Data | None = None,
    scope: Scope = "global",
    include: Include = None,
    **kwargs,
) -> Mask:
    """Dispatch by name: ``method`` in ``PRUNERS``. ``data`` is needed by ``snip``, ``grasp`` and
    ``synflow_batch`` and ignored by the others; ``kwargs`` go to the pruner (``seed`` for random, ``rounds`` for SynFlow,
    ``temperature`` for GraSP, ``weights`` for all but random)."""
    if method not in PRUNERS:
        raise GrokinterpError(f"unknown pruning method {method!r}; expected one of {sorted(PRUNERS)}")
    if method in DATA_PRUNERS:
        if data is None:
            raise GrokinterpError(f"{method} needs data (a task or (inputs, labels))")
        return PRUNERS[method](model, prune_ratio, data, scope, include, **kwargs)
    return PRUNERS[method](model, prune_ratio, scope, include, **kwargs)
