"""The tickets paper's MLP on modular arithmetic, as a hooked module.

``logits = act((E_a + E_b) W_in) W_out W_U`` with one embedding ``W_E`` shared by both operands and
no biases (Minegishi et al., "Grokking Tickets"). Built on TransformerLens's ``HookedRootModule`` so
``run_with_cache`` / ``run_with_hooks`` behave as on a TransformerLens model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..errors import GrokinterpError
from ._tl import HookedRootModule, HookPoint

__all__ = ["ACTIVATIONS", "HookedMLP", "MLPConfig"]

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "quadratic": torch.square,
}


@dataclass(frozen=True)
class MLPConfig:
    """Shape and init of a :class:`HookedMLP`.

    ``init_scale`` is κ in the init ``normal(0, κ / sqrt(d_in))``, where ``d_in`` is the input
    size of each matrix (p for ``W_E``, acting on one-hot tokens). ``seed`` seeds the init only.
    """

    p: int
    d_embed: int = 500
    d_hidden: int = 48
    act: str = "relu"
    init_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or self.p < 2:
            raise GrokinterpError(f"MLPConfig.p must be an integer >= 2, got {self.p!r}")
        for name in ("d_embed", "d_hidden"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise GrokinterpError(f"MLPConfig.{name} must be a positive integer, got {v!r}")
        if self.act not in ACTIVATIONS:
            raise GrokinterpError(f"unknown activation {self.act!r}; expected one of {sorted(ACTIVATIONS)}")
        if not self.init_scale > 0:
            raise GrokinterpError(f"init_scale must be > 0, got {self.init_scale!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class HookedMLP(HookedRootModule):
    """Hooked two-layer MLP. Weights ``W_E`` (p, d_embed), ``W_in`` (d_embed, d_hidden),
    ``W_out`` (d_hidden, d_embed), ``W_U`` (d_embed, p), all in ``x @ W`` orientation.

    Hook points: ``hook_embed_a``, ``hook_embed_b``, ``hook_embed`` (E_a + E_b), ``hook_pre``,
    ``hook_post`` (neurons), ``hook_out`` (post @ W_out), ``hook_logits``.
    The input is a batch of pairs ``(a, b)`` of shape (batch, 2).
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
        self.hook_embed_a = HookPoint()
        self.hook_embed_b = HookPoint()
        self.hook_embed = HookPoint()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self.hook_out = HookPoint()
        self.hook_logits = HookPoint()
        self.act = ACTIVATIONS[cfg.act]
        self.reset_parameters()
        self.setup()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``W ~ normal(0, (κ / sqrt(d_in))²)`` from a generator seeded with ``cfg.seed``, drawn in the
        order W_E, W_in, W_out, W_U."""
        g = torch.Generator().manual_seed(int(self.cfg.seed))
        for w in (self.W_E, self.W_in, self.W_out, self.W_U):
            d_in = w.shape[0]
            w.normal_(0.0, self.cfg.init_scale / math.sqrt(d_in), generator=g)

    def forward(
        self, inputs: Int[Tensor, "batch 2"], weights: Mapping[str, Tensor] | None = None
    ) -> Float[Tensor, "batch p"]:
        """Logits for each pair. ``weights`` optionally replaces parameters by name (the trainer
        passes masked weights ``W * mask`` here)."""
        w = weights or {}
        W_E = w.get("W_E", self.W_E)
        if inputs.ndim != 2 or inputs.shape[-1] != 2:
            raise GrokinterpError(f"HookedMLP expects pairs of shape (batch, 2), got {tuple(inputs.shape)}")
        e_a = self.hook_embed_a(W_E[inputs[:, 0]])
        e_b = self.hook_embed_b(W_E[inputs[:, 1]])
        x = self.hook_embed(e_a + e_b)
        pre = self.hook_pre(x @ w.get("W_in", self.W_in))
        post = self.hook_post(self.act(pre))
        out = self.hook_out(post @ w.get("W_out", self.W_out))
        return self.hook_logits(out @ w.get("W_U", self.W_U))
