"""The model kinds as one type: their configs, building a model from a config, and their
parameters by name. Kinds: ``"mlp"`` (the tickets paper's MLP on modular arithmetic),
``"transformer"``, and ``"vector_mlp"`` (a dense MLP on vectors, for the tasks on vectors).

``named_weights`` gives the parameters under the names masks use (the state-dict names: ``W_E`` ...
for the MLP, ``embed.weight``, ``blocks.0.attn.q.weight`` ... for the transformer,
``blocks.0.W_in``, ``W_U`` ... for the vector MLP). What analyses
and pruners read of a model goes through :class:`grokinterp.models.weights.ModelWeights`.
"""

from __future__ import annotations

from typing import Literal, Mapping, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..errors import GrokinterpError
from ..masks import parameters_of
from ._tl import TransformerBridge, is_bridge
from .mlp import HookedMLP, MLPConfig
from .transformer import TransformerConfig, make_transformer, transformer_tokens
from .vector_mlp import HookedVectorMLP, VectorMLPConfig

__all__ = [
    "CONFIG_KINDS",
    "Model",
    "ModelConfig",
    "ModelKind",
    "attention_pattern",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "is_model",
    "model_config",
    "model_kind",
    "named_weights",
    "prunable_names",
    "to_tokens",
]

Model = Union[HookedMLP, TransformerBridge, HookedVectorMLP]
ModelConfig = Union[MLPConfig, TransformerConfig, VectorMLPConfig]
ModelKind = Literal["mlp", "transformer", "vector_mlp"]
#: Each config class by its kind (the ``kind`` of :func:`config_to_dict`).
CONFIG_KINDS = {"mlp": MLPConfig, "transformer": TransformerConfig, "vector_mlp": VectorMLPConfig}


def model_config(model: Model) -> ModelConfig:
    if isinstance(model, (HookedMLP, HookedVectorMLP)):
        return model.cfg
    if is_bridge(model) and isinstance(getattr(model, "grokinterp_config", None), TransformerConfig):
        return model.grokinterp_config
    raise GrokinterpError(
        f"expected a grokinterp model (HookedMLP, HookedVectorMLP or a transformer from make_transformer), "
        f"got {type(model).__name__}"
    )


def model_kind(model_or_config: Model | ModelConfig) -> ModelKind:
    cfg = model_or_config if isinstance(model_or_config, tuple(CONFIG_KINDS.values())) else model_config(model_or_config)
    return next(kind for kind, cls in CONFIG_KINDS.items() if isinstance(cfg, cls))


def is_model(obj: object) -> bool:
    """True for a grokinterp model (a HookedMLP, a HookedVectorMLP or a transformer from ``make_transformer``)."""
    return isinstance(obj, (HookedMLP, HookedVectorMLP)) or (is_bridge(obj) and isinstance(getattr(obj, "grokinterp_config", None), TransformerConfig))


def build_model(config: ModelConfig) -> Model:
    """A freshly initialised model for a config (the config's seed fixes the weights)."""
    if isinstance(config, MLPConfig):
        return HookedMLP(config)
    if isinstance(config, TransformerConfig):
        return make_transformer(config)
    if isinstance(config, VectorMLPConfig):
        return HookedVectorMLP(config)
    raise GrokinterpError(f"expected an MLPConfig, TransformerConfig or VectorMLPConfig, got {type(config).__name__}")


def config_to_dict(config: ModelConfig) -> dict:
    return {"kind": model_kind(config), **config.to_dict()}


def config_from_dict(d: Mapping) -> ModelConfig:
    """A model config from its ``config_to_dict`` form (``kind`` plus the config's fields)."""
    if not isinstance(d, Mapping):
        raise GrokinterpError(f"a model config must be a JSON object with a 'kind', got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("kind", None)
    cls = CONFIG_KINDS.get(kind)
    if cls is None:
        raise GrokinterpError(f"model config kind must be one of {sorted(CONFIG_KINDS)}, got {kind!r}")
    try:
        return cls(**d)
    except TypeError as e:
        raise GrokinterpError(f"bad {kind} model config {d}: {e}") from None


def named_weights(model: Model) -> dict[str, nn.Parameter]:
    """Every parameter under its state-dict name (the names masks use)."""
    model_config(model)
    return parameters_of(model)


def prunable_names(model: Model) -> list[str]:
    """Trainable weight matrices (embedding and unembedding included, biases and frozen tensors not)."""
    return [n for n, p in named_weights(model).items() if p.ndim == 2 and p.requires_grad]


def to_tokens(model: Model, inputs: Int[Tensor, "batch 2"]) -> Int[Tensor, "batch seq"]:
    """The token sequences the model reads for pairs ``(a, b)``: for a transformer ``[a, b]`` with
    ``b -> p + b`` under ``diff_vocab`` and the ``=`` token (the last id) appended under ``eq_token``;
    for the MLP the pairs themselves. Sequences of three tokens (``task.tokens()``) pass through
    unchanged. The result stays on the inputs' device."""
    cfg = model_config(model)
    if isinstance(cfg, VectorMLPConfig):
        raise GrokinterpError("a vector MLP reads vectors, not token pairs: pass the task's inputs as they are")
    eq = isinstance(cfg, TransformerConfig) and cfg.eq_token
    if not isinstance(inputs, Tensor) or inputs.ndim != 2 or inputs.shape[1] not in (2, 3):
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise GrokinterpError(f"to_tokens expects pairs of shape (batch, 2), got {shape}")
    if inputs.shape[1] == 3:
        if isinstance(cfg, TransformerConfig) and not eq:
            raise GrokinterpError("this model reads pairs [a, b] without the = token; got sequences of length 3")
        return inputs
    if isinstance(cfg, TransformerConfig):  # [a, b], b -> p + b under diff_vocab, = appended under eq_token
        return transformer_tokens(cfg, inputs)
    return inputs


@torch.no_grad()
def attention_pattern(model: Model, inputs: Int[Tensor, "batch 2"], layer: int = -1) -> Float[Tensor, "batch heads seq seq"]:
    """The attention pattern of one layer (default: the last) of a transformer for pairs ``(a, b)``,
    read from its ``hook_pattern`` hook."""
    cfg = model_config(model)
    if not isinstance(cfg, TransformerConfig):
        raise GrokinterpError("attention patterns exist only for transformers; this is an MLP")
    name = f"blocks.{layer % cfg.n_layers}.attn.hook_pattern"
    _, cache = model.run_with_cache(to_tokens(model, inputs), names_filter=name)
    return cache[name]
