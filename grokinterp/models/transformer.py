"""TransformerLens transformers for modular arithmetic, with grokinterp's own seeded init.

``make_transformer("nanda")`` is the progress-measures model (Nanda et al. 2023): p=113, 1 layer,
4 heads, d_model 128, d_head 32, d_mlp 512, ReLU, no LayerNorm, tokens ``[a, b, =]``.
``make_transformer("tickets")`` is the tickets paper's transformer: 1 layer, 1 head,
d_model = d_head = d_mlp = 128, no positional embedding, no biases, tokens ``[a, b]``.

The returned object is a TransformerLens 4.x ``TransformerBridge`` (``boot_native``), so every
TransformerLens tool works on it. grokinterp's config travels with it as ``model.grokinterp_config``.

Init scheme (grokinterp's, documented because the bridge's default differs): one
``torch.Generator`` seeded with ``config.seed`` draws, in state-dict order, every weight matrix
(embedding, positional embedding, W_Q, W_K, W_V, W_O, W_in, W_out, unembedding) from
``normal(0, (init_scale * 0.8 / sqrt(d_model))²)`` — the HookedTransformer scheme for these toy
models, without the bridge's 1/sqrt(2) scaling of output projections. Biases start at zero; with
``freeze_biases`` they stay at zero (``requires_grad=False``), as in the TransformerLens grokking demo.
Without a positional embedding its matrix is zero and frozen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
import torch

from ..errors import GrokinterpError
from ._tl import TransformerBridge, TransformerBridgeConfig, boot_native, convert_tl_checkpoint

__all__ = ["PRESETS", "TransformerConfig", "convert_hooked_transformer_state", "make_transformer"]

_ACTS = ("relu", "gelu")


@dataclass(frozen=True)
class TransformerConfig:
    """Shape, token layout and init of a modular-arithmetic transformer.

    ``eq_token``: inputs are ``[a, b, =]`` with ``=`` the token id ``p`` (vocabulary p + 1);
    otherwise ``[a, b]``. Logits are read at the last position and cover the p answers.
    """

    p: int = 113
    n_layers: int = 1
    n_heads: int = 4
    d_model: int = 128
    d_head: int = 32
    d_mlp: int = 512
    act: str = "relu"
    eq_token: bool = True
    pos_embed: bool = True
    freeze_biases: bool = True
    init_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p", "n_layers", "n_heads", "d_model", "d_head", "d_mlp"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise GrokinterpError(f"TransformerConfig.{name} must be a positive integer, got {v!r}")
        if self.p < 2:
            raise GrokinterpError(f"TransformerConfig.p must be >= 2, got {self.p}")
        if self.act not in _ACTS:
            raise GrokinterpError(f"unknown activation {self.act!r}; expected one of {sorted(_ACTS)}")
        if not self.init_scale > 0:
            raise GrokinterpError(f"init_scale must be > 0, got {self.init_scale!r}")

    @property
    def n_ctx(self) -> int:
        return 3 if self.eq_token else 2

    @property
    def d_vocab(self) -> int:
        return self.p + 1 if self.eq_token else self.p

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, TransformerConfig] = {
    "nanda": TransformerConfig(p=113, n_heads=4, d_model=128, d_head=32, d_mlp=512),
    "tickets": TransformerConfig(
        p=67, n_heads=1, d_model=128, d_head=128, d_mlp=128, eq_token=False, pos_embed=False
    ),
}


def make_transformer(config: str | TransformerConfig = "nanda", **overrides) -> TransformerBridge:
    """Build a TransformerLens model from a preset name (``"nanda"``, ``"tickets"``) or a
    :class:`TransformerConfig`; keyword overrides replace config fields (``p=59, seed=1``)."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise GrokinterpError(f"unknown transformer preset {config!r}; expected one of {sorted(PRESETS)}")
        config = PRESETS[config]
    if not isinstance(config, TransformerConfig):
        raise GrokinterpError(
            f"make_transformer expects a preset name or TransformerConfig, got {type(config).__name__}"
        )
    try:
        config = replace(config, **overrides)
    except TypeError as e:
        raise GrokinterpError(f"bad TransformerConfig override: {e}") from None
    bridge_cfg = TransformerBridgeConfig(
        d_model=config.d_model,
        d_head=config.d_head,
        n_layers=config.n_layers,
        n_ctx=config.n_ctx,
        n_heads=config.n_heads,
        d_vocab=config.d_vocab,
        d_vocab_out=config.p,
        d_mlp=config.d_mlp,
        act_fn=config.act,
        normalization_type=None,
        attention_dir="causal",
        seed=config.seed,
    )
    model = boot_native(bridge_cfg)
    model.grokinterp_config = config
    _init_weights(model, config)
    return model


def _weight_names(config: TransformerConfig) -> list[str]:
    names = ["embed.weight", "pos_embed.weight"]
    for layer in range(config.n_layers):
        names += [f"blocks.{layer}.attn.{x}.weight" for x in "qkvo"]
        names += [f"blocks.{layer}.mlp.in.weight", f"blocks.{layer}.mlp.out.weight"]
    return names + ["unembed.weight"]


@torch.no_grad()
def _init_weights(model: TransformerBridge, config: TransformerConfig) -> None:
    params = {n: p for n, p in model.state_dict(keep_vars=True).items() if isinstance(p, torch.nn.Parameter)}
    g = torch.Generator().manual_seed(int(config.seed))
    std = config.init_scale * 0.8 / math.sqrt(config.d_model)
    for name in _weight_names(config):
        params[name].normal_(0.0, std, generator=g)
    for name, p in params.items():
        if name.endswith(".bias"):
            p.zero_()
            p.requires_grad_(not config.freeze_biases)
    if not config.pos_embed:
        params["pos_embed.weight"].zero_()
        params["pos_embed.weight"].requires_grad_(False)


def convert_hooked_transformer_state(state_dict, model: TransformerBridge) -> dict:
    """A TransformerLens ``HookedTransformer`` state dict under the bridge's parameter names
    (TransformerLens's own conversion, for ``model``'s config)."""
    return convert_tl_checkpoint(dict(state_dict), model.cfg)
