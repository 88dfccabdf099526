"""What the pruners need from a network, for the three kinds of input they accept.

* a grokinterp model (:class:`~grokinterp.models.HookedMLP` or a transformer from
  ``make_transformer``): tensors are :func:`~grokinterp.models.named_weights`, prunable names are
  :func:`~grokinterp.models.prunable_names` (every trainable weight matrix, embedding and unembedding
  included, no biases), the forward pass is :meth:`~grokinterp.models.ModelWeights.logits` on pairs
  ``(a, b)``;
* any other ``torch.nn.Module`` (tiny test networks): tensors are ``named_parameters()``, prunable
  names are the trainable parameters with two or more dimensions, the forward pass is
  ``torch.func.functional_call(module, weights, (inputs,))``;
* a mapping ``name -> tensor`` (a state dict, checkpoint weights): floating tensors with two or more
  dimensions are prunable; no forward pass, so only data-free, forward-free pruners (magnitude,
  random) accept it.

``Net.logits(weights, inputs)`` evaluates the network with every tensor replaced by ``weights``
(so scores can be taken at any weights, in any dtype). ``Net.ones_logits(weights)`` is the forward
pass on one all-ones input, for SynFlow (:meth:`~grokinterp.models.ModelWeights.ones_logits`): for
token models the one-hot input of every position is replaced by the all-ones vector, which is the
same as replacing every embedding row by the column sum of the embedding matrix and feeding any
single token; a vector MLP reads the all-ones vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import GrokinterpError, MaskError
from ..models import ModelWeights, is_model, model_config, named_weights, prunable_names

__all__ = ["Include", "Net", "as_net", "resolve_include"]

Include = Union[None, Sequence[str], Callable[[str], bool]]


@dataclass
class Net:
    weights: dict[str, Tensor]
    prunable: list[str]
    logits: Optional[Callable[[Mapping[str, Tensor], Tensor], Tensor]] = None
    ones_logits: Optional[Callable[[Mapping[str, Tensor]], Tensor]] = None
    kind: str = "state"


def as_net(
    obj: object,
    weights: Mapping[str, Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
) -> Net:
    """Wrap a grokinterp model, an ``nn.Module`` or a state dict. ``weights`` (optional) replaces
    tensors by name: the scores are taken at these weights instead of the module's own."""
    if is_model(obj):
        net = _model_net(obj)
    elif isinstance(obj, nn.Module):
        net = _module_net(obj, input_shape)
    elif isinstance(obj, Mapping):
        tensors = {}
        for name, t in obj.items():
            if not isinstance(t, Tensor):
                raise GrokinterpError(f"state dict entry {name!r} is a {type(t).__name__}, expected a tensor")
            tensors[name] = t.detach()
        net = Net(tensors, [n for n, t in tensors.items() if t.is_floating_point() and t.ndim >= 2])
    else:
        raise GrokinterpError(
            "expected a grokinterp model, a torch.nn.Module or a dict of tensors (state dict), "
            f"got {type(obj).__name__}"
        )
    if weights is not None:
        _override(net, weights)
    return net


def _override(net: Net, weights: Mapping[str, Tensor]) -> None:
    for name, w in weights.items():
        if name not in net.weights:
            raise MaskError(f"weights entry {name!r} is not a tensor of the network; expected names among {sorted(net.weights)}")
        if tuple(w.shape) != tuple(net.weights[name].shape):
            raise MaskError(
                f"weights entry {name!r} has shape {tuple(w.shape)}, expected {tuple(net.weights[name].shape)}"
            )
        net.weights[name] = w.detach()


def _model_net(model) -> Net:
    config = model_config(model)
    tensors = {n: p.detach() for n, p in named_weights(model).items()}

    def logits(weights: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        return ModelWeights(config, dict(weights)).logits(inputs)

    def ones_logits(weights: Mapping[str, Tensor]) -> Tensor:
        return ModelWeights(config, dict(weights)).ones_logits()

    return Net(tensors, prunable_names(model), logits, ones_logits, ModelWeights(config, tensors).kind)


def _module_net(module: nn.Module, input_shape: Sequence[int] | None) -> Net:
    params = dict(module.named_parameters())
    tensors = {n: p.detach() for n, p in params.items()}
    prunable = [n for n, p in params.items() if p.ndim >= 2 and p.requires_grad]

    def logits(weights: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        dtype = next(iter(weights.values())).dtype
        if inputs.is_floating_point():
            inputs = inputs.to(dtype)
        return torch.func.functional_call(module, dict(weights), (inputs,))

    def ones_logits(weights: Mapping[str, Tensor]) -> Tensor:
        shape = input_shape
        if shape is None:
            first = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
            if first is None:
                raise GrokinterpError(
                    "SynFlow needs the input shape of this module (no nn.Linear to infer it from); pass input_shape="
                )
            shape = (first.in_features,)
        dtype = next(iter(weights.values())).dtype
        return torch.func.functional_call(module, dict(weights), (torch.ones(1, *shape, dtype=dtype),))

    return Net(tensors, prunable, logits, ones_logits, "module")


def resolve_include(net: Net, include: Include) -> list[str]:
    """Names to prune, in the network's tensor order.

    ``None``: the default prunable names; a sequence: exactly those names (each must be a floating
    tensor of the network); a callable ``f(name) -> bool``: the tensors it accepts.
    """
    if include is None:
        names = list(net.prunable)
    elif callable(include):
        names = [n for n in net.weights if include(n)]
    else:
        if isinstance(include, str):
            include = [include]
        wanted = list(include)
        unknown = sorted(set(wanted) - set(net.weights))
        if unknown:
            raise MaskError(f"include names {unknown} are not tensors of the network; expected names among {list(net.weights)}")
        names = [n for n in net.weights if n in set(wanted)]
    for n in names:
        if not net.weights[n].is_floating_point():
            raise MaskError(f"cannot prune {n!r}: it is not a floating-point tensor")
    if not names:
        raise MaskError("nothing to prune: `include` selected no tensors")
    return names


def double_weights(net: Net) -> dict[str, Tensor]:
    """Every floating tensor as float64 (scores are computed in float64)."""
    return {n: (t.double() if t.is_floating_point() else t) for n, t in net.weights.items()}


def leaf_weights(net: Net, names: Sequence[str]) -> tuple[dict[str, Tensor], list[Tensor]]:
    """float64 copies of every tensor; those in ``names`` require grad. Returns (all, leaves)."""
    w = {n: t.clone() for n, t in double_weights(net).items()}
    leaves = []
    for n in names:
        w[n].requires_grad_(True)
        leaves.append(w[n])
    return w, leaves


def flat_logits(net: Net, weights: Mapping[str, Tensor], inputs: Tensor) -> Float[Tensor, "batch classes"]:
    if net.logits is None:
        raise GrokinterpError(
            "this pruner needs a forward pass, so it needs a model (grokinterp model or nn.Module), not a state dict"
        )
    return net.logits(weights, inputs)
