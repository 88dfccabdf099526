"""The two state-dict layouts of pre-grokinterp transformers, converted to grokinterp's names.

* **HookedTransformer** (TransformerLens before 4.x; the TransformerLens grokking demo):
  ``embed.W_E`` (d_vocab, d_model), ``pos_embed.W_pos`` (n_ctx, d_model), per layer
  ``attn.W_Q/W_K/W_V`` (heads, d_model, d_head), ``attn.W_O`` (heads, d_head, d_model), biases
  ``attn.b_Q/b_K/b_V`` (heads, d_head), ``attn.b_O`` (d_model), buffers ``attn.mask`` / ``attn.IGNORE``,
  ``mlp.W_in`` (d_model, d_mlp), ``mlp.b_in``, ``mlp.W_out`` (d_mlp, d_model), ``mlp.b_out``,
  ``unembed.W_U`` (d_model, d_vocab_out), ``unembed.b_U``. ``x @ W`` orientation; causal attention.
* **Column layout** (the progress-measures code of Nanda et al. 2023, reused by ARENA and by the
  clock-vs-pizza code of Zhong et al. 2023): ``embed.W_E`` (d_model, d_vocab),
  ``pos_embed.W_pos`` (n_ctx, d_model), per layer ``attn.W_Q/W_K/W_V`` (heads, d_head, d_model),
  ``attn.W_O`` (d_model, heads * d_head), buffer ``attn.mask``, ``mlp.W_in`` (d_mlp, d_model),
  ``mlp.b_in`` (d_mlp), ``mlp.W_out`` (d_model, d_mlp), ``mlp.b_out`` (d_model), ``unembed.W_U``
  (d_model, d_vocab_out). ``W x`` orientation; no attention biases.

No LayerNorm in either (a file with one is refused). Every key, layer and shape is checked; what does
not fit raises a ``ValueError`` saying what was found and what was expected. Output columns beyond
the p answers (the ``=`` token's, or the second operand's tokens under ``diff_vocab``) are dropped:
they are never a correct answer, so accuracy is unchanged, while the cross-entropy over the p answers
can differ slightly from one over every output (the import notes say so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from einops import rearrange
from torch import Tensor

from ...models import TransformerConfig, make_transformer, named_weights
from .base import check_keys

__all__ = ["Architecture", "column_layout", "from_column_layout", "from_hooked_transformer", "hooked_transformer_layout", "layout_of"]

_HT_LAYER = ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O",
             "attn.mask", "attn.IGNORE", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")
_HT_LAYER_REQUIRED = ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_out")
_HT_TOP = ("embed.W_E", "pos_embed.W_pos", "unembed.W_U", "unembed.b_U")
_COL_LAYER = ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.mask", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")
_COL_LAYER_REQUIRED = ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_out")
_COL_TOP = ("embed.W_E", "pos_embed.W_pos", "unembed.W_U")


@dataclass(frozen=True)
class Architecture:
    """What a layout's file or config says about the forward, beyond the tensor shapes.

    ``p``: the modulus when the file records it (else inferred from the shapes: ``d_vocab = p + 1``
    with a 3-position ``W_pos``, ``d_vocab = p`` with a 2-position one); ``diff_vocab`` /
    ``eq_token`` likewise; ``act`` relu / gelu; ``attn_rate`` and ``attention_dir`` as in
    :class:`grokinterp.models.TransformerConfig`; ``use_mask``: whether the file's ``attn.mask`` buffer
    is what its authors' forward applies (then it must be the causal lower triangle).
    """

    act: str = "relu"
    attn_rate: float = 1.0
    attention_dir: str = "causal"
    p: Optional[int] = None
    diff_vocab: bool = False
    eq_token: Optional[bool] = None
    use_mask: bool = True


def layout_of(sd: object) -> Optional[str]:
    """``"hooked_transformer"``, ``"column"`` or ``None`` for a mapping of tensors, by the rank of
    the first layer's ``attn.W_O`` (3 vs 2)."""
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        return None
    w_o = sd.get("blocks.0.attn.W_O")
    if "embed.W_E" not in sd or not isinstance(w_o, Tensor):
        return None
    return {3: "hooked_transformer", 2: "column"}.get(w_o.ndim)


def hooked_transformer_layout(sd: object) -> bool:
    return layout_of(sd) == "hooked_transformer"


def column_layout(sd: object) -> bool:
    return layout_of(sd) == "column"


def _layers(sd: Mapping[str, Tensor], per_layer: tuple[str, ...], required: tuple[str, ...], top: tuple[str, ...]) -> int:
    if any(re.search(r"(^|\.)ln", k) for k in sd):
        raise ValueError(f"LayerNorm weights found ({sorted(k for k in sd if re.search(r'(^|[.])ln', k))[:3]}): "
                         "only transformers without LayerNorm are supported")
    layer_ids = sorted({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    n_layers = len(layer_ids)
    if not n_layers or layer_ids != list(range(n_layers)):
        raise ValueError(f"expected blocks 0 .. n-1, found blocks {layer_ids}")
    allowed = set(top) | {f"blocks.{i}.{k}" for i in range(n_layers) for k in per_layer}
    needed = {"embed.W_E", "unembed.W_U"} | {f"blocks.{i}.{k}" for i in range(n_layers) for k in required}
    check_keys(sd, allowed, needed, "the state dict")
    return n_layers


def _expect(name: str, t: Tensor, shape: tuple[int, ...]) -> Tensor:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name!r} has shape {tuple(t.shape)}, expected {shape} for this model")
    return t


def _vocab(arch: Architecture, d_vocab: int, d_out: int, n_ctx: Optional[int]) -> tuple[int, bool, bool]:
    """``(p, eq_token, diff_vocab)`` from the architecture and the shapes."""
    if arch.eq_token is None and n_ctx is None:
        raise ValueError("without a positional embedding the token layout ([a, b] or [a, b, =]) is not in the file")
    eq = arch.eq_token if arch.eq_token is not None else n_ctx == 3
    operands = d_vocab - (1 if eq else 0)
    p = arch.p if arch.p is not None else (operands // 2 if arch.diff_vocab else operands)
    expected_vocab = p * (2 if arch.diff_vocab else 1) + (1 if eq else 0)
    if d_vocab != expected_vocab:
        raise ValueError(
            f"the embedding has {d_vocab} tokens; p={p}{' with separate operand vocabularies' if arch.diff_vocab else ''}"
            f"{' and an = token' if eq else ''} needs {expected_vocab}"
        )
    if d_out not in (p, d_vocab):
        raise ValueError(f"the unembedding has {d_out} outputs; expected p={p} or the vocabulary size {d_vocab}")
    if n_ctx is not None and n_ctx != (3 if eq else 2):
        raise ValueError(f"the positional embedding has {n_ctx} positions; inputs {'[a, b, =]' if eq else '[a, b]'} need {3 if eq else 2}")
    return p, eq, arch.diff_vocab


def _check_mask(sd: Mapping[str, Tensor], n_layers: int, n_ctx: int, arch: Architecture) -> None:
    for i in range(n_layers):
        mask = sd.get(f"blocks.{i}.attn.mask")
        if mask is None or not arch.use_mask:
            continue
        tril = torch.ones(n_ctx, n_ctx).tril()
        if mask.shape[0] < n_ctx or mask.ndim != 2 or not torch.equal(mask[:n_ctx, :n_ctx].float(), tril):
            raise ValueError(f"blocks.{i}.attn.mask is not the causal lower triangle; only causal masks are supported")


def _finish(config: TransformerConfig, out: dict[str, Tensor]) -> tuple[TransformerConfig, dict[str, Tensor]]:
    expected = named_weights(make_transformer(config))
    for name, param in expected.items():  # biases the file does not have are zero
        if name not in out:
            if not name.endswith(".bias"):
                raise ValueError(f"no tensor for {name!r}")
            out[name] = torch.zeros(param.shape)
    extra = sorted(set(out) - set(expected))
    if extra:
        raise ValueError(f"tensors {extra} have no place in the model")
    for name, param in expected.items():
        _expect(name, out[name], tuple(param.shape))
    return config, {k: out[k].detach().to(torch.float32).contiguous() for k in expected}


def from_hooked_transformer(sd: Mapping[str, Tensor], arch: Architecture = Architecture()) -> tuple[TransformerConfig, dict, tuple[str, ...]]:
    """A HookedTransformer state dict as ``(config, weights, notes)``."""
    n_layers = _layers(sd, _HT_LAYER, _HT_LAYER_REQUIRED, _HT_TOP)
    d_vocab, d_model = sd["embed.W_E"].shape
    n_heads, _, d_head = sd["blocks.0.attn.W_Q"].shape
    d_mlp = sd["blocks.0.mlp.W_in"].shape[1]
    W_U = _expect("unembed.W_U", sd["unembed.W_U"], (d_model, sd["unembed.W_U"].shape[-1]))
    W_pos = sd.get("pos_embed.W_pos")
    p, eq, diff = _vocab(arch, d_vocab, W_U.shape[1], None if W_pos is None else W_pos.shape[0])
    n_ctx = 3 if eq else 2
    if "unembed.b_U" in sd and bool(_expect("unembed.b_U", sd["unembed.b_U"], (W_U.shape[1],)).abs().max() > 0):
        raise ValueError("a non-zero unembedding bias b_U is not supported (the model has no unembedding bias)")
    _check_mask(sd, n_layers, n_ctx, arch)
    biases = [v for k, v in sd.items() if re.search(r"\.b_(Q|K|V|O|in|out)$", k)]
    config = TransformerConfig(
        p=p, n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head, d_mlp=d_mlp, act=arch.act,
        eq_token=eq, diff_vocab=diff, pos_embed=W_pos is not None, attn_rate=arch.attn_rate,
        attention_dir=arch.attention_dir, freeze_biases=not any(bool(b.abs().max() > 0) for b in biases),
    )
    out = {
        "embed.weight": _expect("embed.W_E", sd["embed.W_E"], (config.d_vocab, d_model)),
        "unembed.weight": W_U[:, :p].T,
    }
    if W_pos is not None:
        out["pos_embed.weight"] = _expect("pos_embed.W_pos", W_pos, (n_ctx, d_model))
    else:
        out["pos_embed.weight"] = torch.zeros(n_ctx, d_model)
    for i in range(n_layers):
        b = f"blocks.{i}."
        for x in "QKV":
            w = _expect(f"{b}attn.W_{x}", sd[f"{b}attn.W_{x}"], (n_heads, d_model, d_head))
            out[f"{b}attn.{x.lower()}.weight"] = rearrange(w, "h d e -> (h e) d")
            if f"{b}attn.b_{x}" in sd:
                out[f"{b}attn.{x.lower()}.bias"] = rearrange(_expect(f"{b}attn.b_{x}", sd[f"{b}attn.b_{x}"], (n_heads, d_head)), "h e -> (h e)")
        out[f"{b}attn.o.weight"] = rearrange(_expect(f"{b}attn.W_O", sd[f"{b}attn.W_O"], (n_heads, d_head, d_model)), "h e d -> d (h e)")
        if f"{b}attn.b_O" in sd:
            out[f"{b}attn.o.bias"] = _expect(f"{b}attn.b_O", sd[f"{b}attn.b_O"], (d_model,))
        out[f"{b}mlp.in.weight"] = _expect(f"{b}mlp.W_in", sd[f"{b}mlp.W_in"], (d_model, d_mlp)).T
        out[f"{b}mlp.out.weight"] = _expect(f"{b}mlp.W_out", sd[f"{b}mlp.W_out"], (d_mlp, d_model)).T
        for name, key, size in (("in", "b_in", d_mlp), ("out", "b_out", d_model)):
            if f"{b}mlp.{key}" in sd:
                out[f"{b}mlp.{name}.bias"] = _expect(f"{b}mlp.{key}", sd[f"{b}mlp.{key}"], (size,))
    config, weights = _finish(config, out)
    return config, weights, _dropped(W_U.shape[1], p)


def from_column_layout(sd: Mapping[str, Tensor], arch: Architecture = Architecture()) -> tuple[TransformerConfig, dict, tuple[str, ...]]:
    """A column-layout state dict (progress-measures / ARENA / clock-vs-pizza) as
    ``(config, weights, notes)``."""
    n_layers = _layers(sd, _COL_LAYER, _COL_LAYER_REQUIRED, _COL_TOP)
    d_model, d_vocab = sd["embed.W_E"].shape
    n_heads, d_head, _ = sd["blocks.0.attn.W_Q"].shape
    d_mlp = sd["blocks.0.mlp.W_in"].shape[0]
    W_U = _expect("unembed.W_U", sd["unembed.W_U"], (d_model, sd["unembed.W_U"].shape[-1]))
    W_pos = sd.get("pos_embed.W_pos")
    p, eq, diff = _vocab(arch, d_vocab, W_U.shape[1], None if W_pos is None else W_pos.shape[0])
    n_ctx = 3 if eq else 2
    _check_mask(sd, n_layers, n_ctx, arch)
    has_mlp_bias = any(re.search(r"mlp\.b_(in|out)$", k) for k in sd)
    config = TransformerConfig(
        p=p, n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head, d_mlp=d_mlp, act=arch.act,
        eq_token=eq, diff_vocab=diff, pos_embed=W_pos is not None, attn_rate=arch.attn_rate,
        attention_dir=arch.attention_dir, freeze_biases=not has_mlp_bias, attn_biases=False,
    )
    hd = n_heads * d_head
    out = {"embed.weight": sd["embed.W_E"].T, "unembed.weight": W_U[:, :p].T}
    out["pos_embed.weight"] = _expect("pos_embed.W_pos", W_pos, (n_ctx, d_model)) if W_pos is not None else torch.zeros(n_ctx, d_model)
    for i in range(n_layers):
        b = f"blocks.{i}."
        for x in "QKV":
            w = _expect(f"{b}attn.W_{x}", sd[f"{b}attn.W_{x}"], (n_heads, d_head, d_model))
            out[f"{b}attn.{x.lower()}.weight"] = rearrange(w, "h e d -> (h e) d")
        out[f"{b}attn.o.weight"] = _expect(f"{b}attn.W_O", sd[f"{b}attn.W_O"], (d_model, hd))
        out[f"{b}mlp.in.weight"] = _expect(f"{b}mlp.W_in", sd[f"{b}mlp.W_in"], (d_mlp, d_model))
        out[f"{b}mlp.out.weight"] = _expect(f"{b}mlp.W_out", sd[f"{b}mlp.W_out"], (d_model, d_mlp))
        for name, key, size in (("in", "b_in", d_mlp), ("out", "b_out", d_model)):
            if f"{b}mlp.{key}" in sd:
                out[f"{b}mlp.{name}.bias"] = _expect(f"{b}mlp.{key}", sd[f"{b}mlp.{key}"], (size,))
    config, weights = _finish(config, out)
    return config, weights, _dropped(W_U.shape[1], p)


def _dropped(d_out: int, p: int) -> tuple[str, ...]:
    if d_out == p:
        return ()
    return (f"the unembedding's {d_out - p} output columns after the p={p} answers were dropped (never a correct answer)",)
