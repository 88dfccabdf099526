"""A dense MLP on vectors, as a hooked module: the model of the tasks on vectors (polynomial
regression, sparse parity, images).

With hidden widths ``h_1 .. h_L`` and ``h_0 = d_in``:

    x_0 = x,   x_i = act(x_{i-1} W_i + b_i)   (i = 1..L),   out = x_L W_U + b_U,

weights in ``x @ W`` orientation (``W_i`` of shape (h_{i-1}, h_i), ``W_U`` (h_L, d_out)), biases
optional. Init: ``W ~ normal(0, (κ / sqrt(fan_in))²)`` per matrix, with one κ per layer
(``init_scales``; the readout's is the last), biases zero; drawn from a generator seeded with
``seed`` in layer order. The tickets paper's regression MLP is 40 → 48 → 500 → 1; its MNIST MLP
(after Liu et al. 2023, "Omnigrok") has four layers of width 200 with the init scaled ×8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..checks import check_flag, check_rate, check_seed
from ..errors import GrokinterpError
from ._tl import ActivationCache, HookedRootModule, HookPoint
from .mlp import ACTIVATIONS, _Hooks

__all__ = ["HookedVectorMLP", "VectorMLPConfig", "vector_mlp_forward", "vector_mlp_shapes"]


@dataclass(frozen=True)
class VectorMLPConfig:
    """Shape and init of a :class:`HookedVectorMLP`.

    ``widths``: the hidden widths (at least one layer). ``init_scale``: κ of every layer unless
    ``init_scales`` gives one per matrix (``len(widths) + 1`` numbers, the readout's last). ``bias``:
    whether each layer adds a bias. ``seed`` seeds the init only.
    """

    d_in: int
    widths: tuple[int, ...] = (200, 200, 200)
    d_out: int = 10
    act: str = "relu"
    bias: bool = True
    init_scale: float = 1.0
    init_scales: Optional[tuple[float, ...]] = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("d_in", "d_out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GrokinterpError(f"VectorMLPConfig.{name} must be a positive integer, got {v!r}")
        try:
            widths = tuple(self.widths)
        except TypeError:
            widths = None
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise GrokinterpError(f"VectorMLPConfig.widths must be one or more positive integers, got {self.widths!r}")
        object.__setattr__(self, "widths", widths)
        if not isinstance(self.act, str) or self.act not in ACTIVATIONS:
            raise GrokinterpError(f"unknown activation {self.act!r}; expected one of {sorted(ACTIVATIONS)}")
        check_flag("VectorMLPConfig.bias", self.bias)
        check_rate("VectorMLPConfig.init_scale", self.init_scale, positive=True)
        if self.init_scales is not None:
            scales = tuple(self.init_scales) if isinstance(self.init_scales, (list, tuple)) else None
            if scales is None or len(scales) != len(widths) + 1:
                raise GrokinterpError(
                    f"VectorMLPConfig.init_scales must give {len(widths) + 1} numbers (one per layer, the readout last), "
                    f"got {self.init_scales!r}"
                )
            for i, s in enumerate(scales):
                check_rate(f"VectorMLPConfig.init_scales[{i}]", s, positive=True)
            object.__setattr__(self, "init_scales", tuple(float(s) for s in scales))
        check_seed("VectorMLPConfig.seed", self.seed)

    @property
    def n_layers(self) -> int:
        """Hidden layers (read by TransformerLens's cache for ``cache["post", -1]``)."""
        return len(self.widths)

    @property
    def scales(self) -> tuple[float, ...]:
        """κ of each matrix, the readout's last."""
        return self.init_scales if self.init_scales is not None else (float(self.init_scale),) * (self.n_layers + 1)

    def to_dict(self) -> dict:
        d = {
            "d_in": self.d_in, "widths": list(self.widths), "d_out": self.d_out, "act": self.act, "bias": self.bias,
            "init_scale": self.init_scale, "seed": self.seed,
        }
        if self.init_scales is not None:
            d["init_scales"] = list(self.init_scales)
        return d


def vector_mlp_shapes(cfg: VectorMLPConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in init order: ``blocks.{i}.W_in`` (and ``b_in``), then
    ``W_U`` (and ``b_U``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    prev = cfg.d_in
    for i, w in enumerate(cfg.widths):
        shapes[f"blocks.{i}.W_in"] = (prev, w)
        if cfg.bias:
            shapes[f"blocks.{i}.b_in"] = (w,)
        prev = w
    shapes["W_U"] = (prev, cfg.d_out)
    if cfg.bias:
        shapes["b_U"] = (cfg.d_out,)
    return shapes


def _identity(x: Tensor) -> Tensor:
    return x


def vector_mlp_forward(
    cfg: VectorMLPConfig,
    tensors: Mapping[str, Tensor],
    x: Float[Tensor, "batch d_in"],
    hook: Callable[[str, Tensor], Tensor] | None = None,
) -> tuple[Float[Tensor, "batch d_out"], Float[Tensor, "batch h_last"]]:
    """The one forward pass of the vector MLP (the hooked module and
    :class:`~grokinterp.models.ModelWeights` both run it): ``(outputs, last hidden activations)``.
    ``hook(name, value)`` (optional) sees, and may replace, each hooked value."""
    hook = hook or (lambda name, value: value)
    act = ACTIVATIONS[cfg.act]
    for i in range(cfg.n_layers):
        x = hook(f"blocks.{i}.hook_resid_pre", x)
        pre = x @ tensors[f"blocks.{i}.W_in"]
        if cfg.bias:
            pre = pre + tensors[f"blocks.{i}.b_in"]
        x = hook(f"blocks.{i}.mlp.hook_post", act(hook(f"blocks.{i}.mlp.hook_pre", pre)))
    out = x @ tensors["W_U"]
    if cfg.bias:
        out = out + tensors["b_U"]
    return hook("unembed.hook_out", out), x


class _Block(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_in, d_out))
        if bias:
            self.b_in = nn.Parameter(torch.empty(d_out))
        self.hook_resid_pre = HookPoint()
        self.mlp = _Hooks("hook_pre", "hook_post")


class HookedVectorMLP(HookedRootModule):
    """Hooked dense MLP on vectors (see the module docstring for the forward pass and the init).

    Parameters (the names masks and checkpoints use): ``blocks.{i}.W_in`` (h_{i-1}, h_i),
    ``blocks.{i}.b_in`` (h_i,), ``W_U`` (h_L, d_out), ``b_U`` (d_out,); no biases with
    ``bias=False``. Hook points, named as on a TransformerLens model (``cache["post", 0]`` is
    ``blocks.0.mlp.hook_post``):

    ==============================  ==================  ==================================
    name                            shape               value
    ==============================  ==================  ==================================
    ``blocks.{i}.hook_resid_pre``   (batch, h_{i-1})    the layer's input (``x`` for i = 0)
    ``blocks.{i}.mlp.hook_pre``     (batch, h_i)        ``x_{i-1} W_i + b_i``
    ``blocks.{i}.mlp.hook_post``    (batch, h_i)        ``act(pre)``, the neurons
    ``unembed.hook_out``            (batch, d_out)      the outputs ``x_L W_U + b_U``
    ==============================  ==================  ==================================
    """

    def __init__(self, cfg: VectorMLPConfig):
        super().__init__()
        if not isinstance(cfg, VectorMLPConfig):
            raise GrokinterpError(f"HookedVectorMLP expects a VectorMLPConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        dims = (cfg.d_in, *cfg.widths)
        self.blocks = nn.ModuleList([_Block(dims[i], dims[i + 1], cfg.bias) for i in range(cfg.n_layers)])
        self.W_U = nn.Parameter(torch.empty(dims[-1], cfg.d_out))
        if cfg.bias:
            self.b_U = nn.Parameter(torch.empty(cfg.d_out))
        self.unembed = _Hooks("hook_out")
        self.reset_parameters()
        self.setup()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Each matrix ``W ~ normal(0, (κ_layer / sqrt(fan_in))²)`` (``fan_in`` its first axis), biases 0,
        drawn in layer order on the CPU from a generator seeded with ``cfg.seed``."""
        g = torch.Generator().manual_seed(int(self.cfg.seed))
        params = dict(self.named_parameters())
        matrices = [n for n in vector_mlp_shapes(self.cfg) if not n.rsplit(".", 1)[-1].startswith("b_")]
        for name, scale in zip(matrices, self.cfg.scales):
            w = params[name]
            w.copy_(torch.empty(w.shape, dtype=torch.float32).normal_(0.0, scale / math.sqrt(w.shape[0]), generator=g))
        for name, p in params.items():
            if name not in matrices:
                p.zero_()

    def run_with_cache(self, *model_args, **kwargs) -> tuple[Tensor, ActivationCache]:
        """Outputs and a TransformerLens ``ActivationCache`` (``cache["post", i]`` works)."""
        out, cache = super().run_with_cache(*model_args, **kwargs)
        return out, ActivationCache(dict(cache), self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    def check_inputs(self, inputs) -> Tensor:
        """``inputs`` as a float tensor of shape (batch, d_in), or an error saying what is expected."""
        if not isinstance(inputs, Tensor) or inputs.ndim != 2 or inputs.shape[1] != self.cfg.d_in:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise GrokinterpError(f"HookedVectorMLP expects inputs of shape (batch, {self.cfg.d_in}), got {shape}")
        return inputs if inputs.is_floating_point() else inputs.float()

    def forward(
        self, inputs: Float[Tensor, "batch d_in"], weights: Mapping[str, Tensor] | None = None
    ) -> Float[Tensor, "batch d_out"]:
        """Outputs for each input row, on the weights' device. ``weights`` optionally replaces
        parameters by name (masked weights ``W * mask``, for example)."""
        tensors = {**dict(self.named_parameters()), **(weights or {})}
        x = self.check_inputs(inputs).to(self.W_U.device, self.W_U.dtype)
        points = dict(self.hook_dict)
        return vector_mlp_forward(self.cfg, tensors, x, lambda name, value: points[name](value))[0]
