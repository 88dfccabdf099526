"""The tickets paper's MLP on modular arithmetic, as a hooked module.

``logits = act((E_a + E_b) W_in) W_out W_U`` with one embedding ``W_E`` shared by both operands and
no biases (Minegishi et al., "Grokking Tickets"). Built on TransformerLens's ``HookedRootModule`` so
``run_with_cache`` / ``run_with_hooks`` behave as on a TransformerLens model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from einops import reduce
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..checks import check_rate, check_seed
from ..errors import GrokinterpError
from ._tl import ActivationCache, HookedRootModule, HookPoint

__all__ = ["ACTIVATIONS", "MLP_WEIGHT_NAMES", "HookedMLP", "MLPConfig"]

#: The tickets MLP's weights, in init order.
MLP_WEIGHT_NAMES = ("W_E", "W_in", "W_out", "W_U")

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "quadratic": torch.square,
}


@dataclass(frozen=True)
class MLPConfig:
    """Shape and init of a :class:`HookedMLP`.

    ``init_scale`` is κ in the init ``normal(0, κ / sqrt(d_in))``, where ``d_in`` is the input
    size of each matrix (p for ``W_E``, acting on one-hot tokens). ``init_scales`` (optional)
    gives some matrices their own κ, e.g. ``{"W_E": 2.0, "W_U": 0.5}`` (kept as ``(name, scale)``
    pairs in init order; ``to_dict`` writes a mapping); the others keep
    ``init_scale`` (a config without it, the default, is recorded and initialised exactly as
    before). ``seed`` seeds the init only.
    """

    p: int
    d_embed: int = 500
    d_hidden: int = 48
    act: str = "relu"
    init_scale: float = 1.0
    seed: int = 0
    init_scales: Optional[Mapping[str, float] | tuple[tuple[str, float], ...]] = None

    def __post_init__(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, int) or self.p < 2:
            raise GrokinterpError(f"MLPConfig.p must be an integer >= 2, got {self.p!r}")
        for name in ("d_embed", "d_hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GrokinterpError(f"MLPConfig.{name} must be a positive integer, got {v!r}")
        if not isinstance(self.act, str) or self.act not in ACTIVATIONS:
            raise GrokinterpError(f"unknown activation {self.act!r}; expected one of {sorted(ACTIVATIONS)}")
        check_rate("MLPConfig.init_scale", self.init_scale, positive=True)
        check_seed("MLPConfig.seed", self.seed)
        if self.init_scales is not None:
            if isinstance(self.init_scales, tuple):  # the stored (name, scale) pairs
                object.__setattr__(self, "init_scales", dict(self.init_scales))
            if not isinstance(self.init_scales, Mapping):
                raise GrokinterpError(f"MLPConfig.init_scales must map weight names to scales, got {self.init_scales!r}")
            unknown = sorted(set(self.init_scales) - set(MLP_WEIGHT_NAMES))
            if unknown:
                raise GrokinterpError(f"MLPConfig.init_scales names {unknown}; expected names among {list(MLP_WEIGHT_NAMES)}")
            for name, scale in self.init_scales.items():
                check_rate(f"MLPConfig.init_scales[{name!r}]", scale, positive=True)
            # stored as (name, scale) pairs in init order, so that the frozen config stays hashable
            pairs = tuple((n, float(self.init_scales[n])) for n in MLP_WEIGHT_NAMES if n in self.init_scales)
            object.__setattr__(self, "init_scales", pairs)

    def scale_of(self, name: str) -> float:
        """κ of one weight matrix: its ``init_scales`` entry, else ``init_scale``."""
        return dict(self.init_scales or {}).get(name, self.init_scale)

    @property
    def n_layers(self) -> int:
        """One hidden layer (read by TransformerLens's cache for ``cache["post", -1]``)."""
        return 1

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.init_scales is None:
            del d["init_scales"]  # configs without per-weight scales keep their old dicts (and run keys)
        else:
            d["init_scales"] = dict(self.init_scales)
        return d


class _Hooks(nn.Module):
    """A container of hook points only (no parameters), so that the hook names carry the
    TransformerLens module path (``blocks.0.mlp.hook_post``) while the parameters keep their flat
    names (``W_E``, ``W_in``, ``W_out``, ``W_U``: the names masks and checkpoints use)."""

    def __init__(self, *names: str, **children: nn.Module):
        super().__init__()
        for name in names:
            setattr(self, name, HookPoint())
        for name, child in children.items():
            setattr(self, name, child)


class HookedMLP(HookedRootModule):
    """Hooked two-layer MLP. Weights ``W_E`` (p, d_embed), ``W_in`` (d_embed, d_hidden),
    ``W_out`` (d_hidden, d_embed), ``W_U`` (d_embed, p), all in ``x @ W`` orientation:

    ``logits = act((E_a + E_b) W_in) W_out W_U`` (Minegishi et al., "Grokking Tickets").

    Hook points, named as on a TransformerLens model so that the cache idioms carry over
    (``cache["post", 0]``, ``cache["embed"]``, ``run_with_hooks(fwd_hooks=[("blocks.0.mlp.hook_post", f)])``):

    ==============================  ===================  =====================================
    name                            shape                value
    ==============================  ===================  =====================================
    ``hook_embed``                  (batch, 2, d_embed)  ``E_a`` and ``E_b``, one per position
    ``blocks.0.hook_resid_pre``     (batch, d_embed)     ``E_a + E_b``, the MLP's input
    ``blocks.0.mlp.hook_pre``       (batch, d_hidden)    ``(E_a + E_b) W_in``
    ``blocks.0.mlp.hook_post``      (batch, d_hidden)    ``act(pre)``, the neurons
    ``blocks.0.hook_mlp_out``       (batch, d_embed)     ``post W_out``
    ``blocks.0.hook_resid_post``    (batch, d_embed)     the same (the MLP has no skip path)
    ``unembed.hook_out``            (batch, p)           the logits ``resid W_U``
    ==============================  ===================  =====================================

    The input is a batch of pairs ``(a, b)``, shape (batch, 2), or of token sequences
    ``[a, b, =]``, shape (batch, 3), as a transformer reads them (the ``=`` token is ignored).
    Unlike a transformer's, the logits have no position axis: (batch, p).
    """

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        if not isinstance(cfg, MLPConfig):
            raise GrokinterpError(f"HookedMLP expects an MLPConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.p = cfg.p
        self.W_E = nn.Parameter(torch.empty(cfg.p, cfg.d_embed))
        self.W_in = nn.Parameter(torch.empty(cfg.d_embed, cfg.d_hidden))
        self.W_out = nn.Parameter(torch.empty(cfg.d_hidden, cfg.d_embed))
        self.W_U = nn.Parameter(torch.empty(cfg.d_embed, cfg.p))
        self.hook_embed = HookPoint()
        block = _Hooks("hook_resid_pre", "hook_mlp_out", "hook_resid_post", mlp=_Hooks("hook_pre", "hook_post"))
        self.blocks = nn.ModuleList([block])
        self.unembed = _Hooks("hook_out")
        self.act = ACTIVATIONS[cfg.act]
        self.reset_parameters()
        self.setup()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``W ~ normal(0, (κ / sqrt(d_in))²)`` from a generator seeded with ``cfg.seed``, drawn in the
        order W_E, W_in, W_out, W_U (on the CPU, then copied to the parameters' device, so that the
        same seed gives the same weights everywhere); κ is :meth:`MLPConfig.scale_of` each matrix."""
        g = torch.Generator().manual_seed(int(self.cfg.seed))
        for name in MLP_WEIGHT_NAMES:
            w, scale = getattr(self, name), self.cfg.scale_of(name)
            w.copy_(torch.empty(w.shape, dtype=torch.float32).normal_(0.0, scale / math.sqrt(w.shape[0]), generator=g))

    def run_with_cache(self, *model_args, **kwargs) -> tuple[Tensor, ActivationCache]:
        """Logits and a TransformerLens ``ActivationCache`` of every hook (or those of
        ``names_filter``), so that shorthand keys work as on a transformer: ``cache["post", 0]``
        is ``cache["blocks.0.mlp.hook_post"]``, ``cache["embed"]`` is ``cache["hook_embed"]``."""
        out, cache = super().run_with_cache(*model_args, **kwargs)
        return out, ActivationCache(dict(cache), self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    def pairs(self, inputs: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch 2"]:
        """The operand pairs of ``inputs``: (batch, 2) pairs as they are, (batch, 3) tokens
        ``[a, b, =]`` without the ``=``; anything else is refused."""
        if not isinstance(inputs, Tensor) or inputs.ndim != 2 or inputs.shape[-1] not in (2, 3):
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise GrokinterpError(
                f"HookedMLP expects pairs of shape (batch, 2) or tokens [a, b, =] of shape (batch, 3), got {shape}"
            )
        if inputs.is_floating_point():
            raise GrokinterpError(f"HookedMLP expects integer token ids, got dtype {inputs.dtype}")
        if inputs.shape[-1] == 3 and inputs.numel() and bool((inputs[:, 2] != self.p).any()):
            raise GrokinterpError(f"the third token of [a, b, =] must be the = token (id {self.p})")
        return inputs[:, :2]

    def forward(
        self, inputs: Int[Tensor, "batch seq"], weights: Mapping[str, Tensor] | None = None
    ) -> Float[Tensor, "batch p"]:
        """Logits for each pair, on the weights' device (the inputs are moved there). ``weights``
        optionally replaces parameters by name (masked weights ``W * mask``, for example)."""
        w = weights or {}
        W_E = w.get("W_E", self.W_E)
        pairs = self.pairs(inputs).to(W_E.device)  # task tensors are CPU; the weights say the device
        embed = self.hook_embed(F.embedding(pairs, W_E))  # (batch, 2, d_embed)
        block = self.blocks[0]
        x = block.hook_resid_pre(reduce(embed, "batch pos d -> batch d", "sum"))
        pre = block.mlp.hook_pre(x @ w.get("W_in", self.W_in))
        post = block.mlp.hook_post(self.act(pre))
        out = block.hook_resid_post(block.hook_mlp_out(post @ w.get("W_out", self.W_out)))
        return self.unembed.hook_out(out @ w.get("W_U", self.W_U))
