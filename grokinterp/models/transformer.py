"""TransformerLens transformers for modular arithmetic, with grokinterp's own seeded init.

``make_transformer("nanda")`` is the progress-measures model (Nanda et al. 2023): p=113, 1 layer,
4 heads, d_model 128, d_head 32, d_mlp 512, ReLU, no LayerNorm, tokens ``[a, b, =]``.
``make_transformer("tickets")`` is the tickets paper's transformer: 1 layer, 1 head,
d_model = d_head = d_mlp = 128, no positional embedding, no biases, tokens ``[a, b]``.
``make_transformer("pizza")`` / ``("clock")`` are the clock-vs-pizza models (Zhong et al. 2023):
p=59, 4 heads, d_model 128, tokens ``[a, b]``, unmasked attention with rate 0 / 1, MLP biases.

Architecture options (:class:`TransformerConfig`), covering the checkpoints of the field:

* ``attn_rate`` r: the attention pattern is ``A = r * softmax(q k^T / sqrt(d_head)) + (1 - r)``
  (Zhong et al. 2023, "The Clock and the Pizza", Sec. 3: r = 1 is ordinary attention, r = 0 a
  constant pattern of ones). With causal attention the entries above the diagonal are 0 for every r.
* ``attention_dir``: ``"causal"`` (each position reads itself and earlier ones) or
  ``"bidirectional"`` (every position reads every position, as in the clock-vs-pizza models);
  transformer_lens 4.x's ``TransformerBridgeConfig`` knows exactly these two values.
* ``act``: ReLU or GeLU (the exact, erf-based GeLU); 1 or more layers; ``eq_token``: inputs
  ``[a, b, =]`` or ``[a, b]``; ``diff_vocab``: separate vocabularies for the operands, ``b`` read as
  the token ``p + b`` (vocabulary 2p, plus ``=``); ``pos_embed`` on or off; ``d_mlp`` any width;
  ``attn_biases``: whether the attention projections have (trainable) biases.

The returned object is a TransformerLens 4.x ``TransformerBridge`` (``boot_native``), so every
TransformerLens tool works on it. grokinterp's config travels with it as ``model.grokinterp_config``.
The bridge has no attention-rate option: for ``attn_rate != 1`` grokinterp registers a permanent
hook on every layer's ``hook_pattern`` that maps the softmax pattern to ``r * A + (1 - r)`` (masked
causally when the attention is causal). The bridge applies ``hook_pattern`` before the value
product, so the model's own forward, ``run_with_cache`` and ``run_with_hooks`` all compute the rated
attention; the cached ``pattern`` is the rated one. ``reset_hooks(including_permanent=True)`` would
remove it: do not call that on such a model.

Init scheme (grokinterp's, documented because the bridge's default differs): one
``torch.Generator`` seeded with ``config.seed`` draws, in state-dict order, every weight matrix
(embedding, positional embedding, W_Q, W_K, W_V, W_O, W_in, W_out, unembedding) from
``normal(0, (init_scale * 0.8 / sqrt(d_model))²)`` — the HookedTransformer scheme for these toy
models, without the bridge's 1/sqrt(2) scaling of output projections. Biases start at zero; with
``freeze_biases`` they stay at zero (``requires_grad=False``), as in the TransformerLens grokking demo;
without ``attn_biases`` the attention biases stay at zero whatever ``freeze_biases`` says.
Without a positional embedding its matrix is zero and frozen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_flag, check_rate, check_seed, replace_fields
from ..errors import GrokinterpError
from ._tl import TransformerBridge, TransformerBridgeConfig, add_permanent_pattern_hook, boot_native, convert_tl_checkpoint

__all__ = [
    "ATTENTION_DIRS",
    "PRESETS",
    "TransformerConfig",
    "apply_attention_rate",
    "convert_hooked_transformer_state",
    "make_transformer",
    "transformer_tokens",
]

_ACTS = ("relu", "gelu")
#: The attention directions transformer_lens 4.x's bridge implements (its native attention is causal
#: for ``"causal"`` and unmasked otherwise; ``"bidirectional"`` is the name its encoder adapters use).
ATTENTION_DIRS = ("causal", "bidirectional")
# fields added after the first run folders were written: left out of to_dict() at their default, so
# the config dicts (and run keys) of models that do not use them stay as they were
_OPTIONAL_FIELDS = {"attn_rate": 1.0, "attention_dir": "causal", "diff_vocab": False, "attn_biases": True}


@dataclass(frozen=True)
class TransformerConfig:
    """Shape, token layout, attention and init of a modular-arithmetic transformer.

    ``eq_token``: inputs are ``[a, b, =]`` with ``=`` the last token id (``p``, or ``2p`` with
    ``diff_vocab``); otherwise ``[a, b]``. ``diff_vocab``: the second operand is the token ``p + b``.
    Logits are read at the last position and cover the p answers.
    ``attn_rate`` r in [0, 1]: pattern ``r * softmax(q k^T / sqrt(d_head)) + (1 - r)``
    (Zhong et al. 2023). ``attention_dir``: ``"causal"`` or ``"bidirectional"``.
    ``attn_biases``: the attention projections have biases (else they are zero and frozen).
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
    attn_rate: float = 1.0
    attention_dir: Literal["causal", "bidirectional"] = "causal"
    diff_vocab: bool = False
    attn_biases: bool = True

    def __post_init__(self) -> None:
        for name in ("p", "n_layers", "n_heads", "d_model", "d_head", "d_mlp"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise GrokinterpError(f"TransformerConfig.{name} must be a positive integer, got {v!r}")
        if self.p < 2:
            raise GrokinterpError(f"TransformerConfig.p must be >= 2, got {self.p}")
        if not isinstance(self.act, str) or self.act not in _ACTS:
            raise GrokinterpError(f"unknown activation {self.act!r}; expected one of {sorted(_ACTS)}")
        check_rate("TransformerConfig.init_scale", self.init_scale, positive=True)
        check_seed("TransformerConfig.seed", self.seed)
        rate = self.attn_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
            raise GrokinterpError(f"TransformerConfig.attn_rate must be a number in [0, 1], got {rate!r}")
        object.__setattr__(self, "attn_rate", float(rate))
        if not isinstance(self.attention_dir, str) or self.attention_dir not in ATTENTION_DIRS:
            raise GrokinterpError(
                f"TransformerConfig.attention_dir must be one of {list(ATTENTION_DIRS)}, got {self.attention_dir!r}"
            )
        for name in ("eq_token", "pos_embed", "freeze_biases", "diff_vocab", "attn_biases"):
            check_flag(f"TransformerConfig.{name}", getattr(self, name))

    @property
    def n_ctx(self) -> int:
        return 3 if self.eq_token else 2

    @property
    def d_vocab(self) -> int:
        """Input vocabulary: p operand tokens (2p with ``diff_vocab``), plus ``=``."""
        return self.p * (2 if self.diff_vocab else 1) + (1 if self.eq_token else 0)

    @property
    def causal(self) -> bool:
        return self.attention_dir == "causal"

    def to_dict(self) -> dict:
        """Every field, except the later options (``attn_rate``, ``attention_dir``, ``diff_vocab``,
        ``attn_biases``) at their defaults, so older config dicts and run keys are unchanged."""
        d = asdict(self)
        for name, default in _OPTIONAL_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d


PRESETS: dict[str, TransformerConfig] = {
    "nanda": TransformerConfig(p=113, n_heads=4, d_model=128, d_head=32, d_mlp=512),
    "tickets": TransformerConfig(
        p=67, n_heads=1, d_model=128, d_head=128, d_mlp=128, eq_token=False, pos_embed=False
    ),
    # the clock-vs-pizza models (Zhong et al. 2023): p = 59, tokens [a, b], unmasked attention, MLP
    # biases trained; attention rate 0 (constant attention: the pizza) or 1 (softmax: the clock).
    # Their training: all pairs, 80 % train, AdamW lr 1e-3, weight decay 2, 20k epochs.
    "pizza": TransformerConfig(
        p=59, n_heads=4, d_model=128, d_head=32, d_mlp=512, eq_token=False, freeze_biases=False,
        attn_rate=0.0, attention_dir="bidirectional", attn_biases=False,
    ),
    "clock": TransformerConfig(
        p=59, n_heads=4, d_model=128, d_head=32, d_mlp=512, eq_token=False, freeze_biases=False,
        attn_rate=1.0, attention_dir="bidirectional", attn_biases=False,
    ),
}


def transformer_tokens(config: TransformerConfig, inputs: Int[Tensor, "batch 2"]) -> Int[Tensor, "batch seq"]:
    """Token sequences for pairs ``(a, b)``: ``[a, b]``, with ``b -> p + b`` under ``diff_vocab`` and
    the ``=`` token (the last id, ``d_vocab - 1``) appended under ``eq_token``."""
    tokens = inputs
    if config.diff_vocab:
        tokens = torch.stack([inputs[:, 0], inputs[:, 1] + config.p], dim=1)
    if config.eq_token:
        tokens = torch.cat([tokens, torch.full_like(tokens[:, :1], config.d_vocab - 1)], dim=1)
    return tokens


def apply_attention_rate(
    pattern: Float[Tensor, "batch heads q k"], rate: float, causal: bool
) -> Float[Tensor, "batch heads q k"]:
    """``rate * pattern + (1 - rate)`` (Zhong et al. 2023), the entries above the diagonal set to 0
    when ``causal``. Queries are the last ``q`` of the ``k`` positions (``q < k`` when only the
    answer position is computed)."""
    if rate == 1.0:
        return pattern
    out = pattern * rate + (1.0 - rate)
    if causal:
        n_q, n_k = pattern.shape[-2:]
        allowed = torch.ones(n_k, n_k, dtype=torch.bool, device=pattern.device).tril()[n_k - n_q :]
        out = out * allowed.to(out.dtype)
    return out


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
    config = replace_fields(config, overrides, "TransformerConfig override(s)")
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
        attention_dir=config.attention_dir,
        seed=config.seed,
    )
    model = boot_native(bridge_cfg)
    model.grokinterp_config = config
    _init_weights(model, config)
    if config.attn_rate != 1.0:
        rate, causal = config.attn_rate, config.causal
        for layer in range(config.n_layers):
            add_permanent_pattern_hook(model, layer, lambda pattern, hook: apply_attention_rate(pattern, rate, causal))
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
            frozen = config.freeze_biases or (".attn." in name and not config.attn_biases)
            p.requires_grad_(not frozen)
    if not config.pos_embed:
        params["pos_embed.weight"].zero_()
        params["pos_embed.weight"].requires_grad_(False)


def convert_hooked_transformer_state(state_dict, model: TransformerBridge) -> dict:
    """A TransformerLens ``HookedTransformer`` state dict under the bridge's parameter names
    (TransformerLens's own conversion, for ``model``'s config)."""
    return convert_tl_checkpoint(dict(state_dict), model.cfg)
