"""Legacy imports: hand-built state dicts in both layouts, checked against forward passes written
here from each layout's definition."""

import dataclasses
import math
import os
import sys
import types

import pytest
import torch
from einops import einsum, rearrange

import grokinterp as gi
from grokinterp.models import answer_logits

P, D, H, DH, M = 13, 16, 2, 8, 24


def _causal_softmax(scores):
    seq = scores.shape[-1]
    mask = torch.ones(seq, seq, dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def _hooked_transformer_state(g, d_vocab_out=P):
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    return {
        "embed.W_E": r(P + 1, D), "pos_embed.W_pos": r(3, D),
        "blocks.0.attn.W_Q": r(H, D, DH), "blocks.0.attn.W_K": r(H, D, DH), "blocks.0.attn.W_V": r(H, D, DH),
        "blocks.0.attn.W_O": r(H, DH, D), "blocks.0.attn.b_Q": torch.zeros(H, DH), "blocks.0.attn.b_K": torch.zeros(H, DH),
        "blocks.0.attn.b_V": torch.zeros(H, DH), "blocks.0.attn.b_O": torch.zeros(D),
        "blocks.0.attn.mask": torch.ones(3, 3).tril().bool(), "blocks.0.attn.IGNORE": torch.tensor(-1e5),
        "blocks.0.mlp.W_in": r(D, M), "blocks.0.mlp.b_in": r(M), "blocks.0.mlp.W_out": r(M, D), "blocks.0.mlp.b_out": r(D),
        "unembed.W_U": r(D, d_vocab_out), "unembed.b_U": torch.zeros(d_vocab_out),
    }


def _hooked_transformer_forward(sd, tokens):
    x = sd["embed.W_E"][tokens] + sd["pos_embed.W_pos"][: tokens.shape[1]]
    a = "blocks.0.attn."
    q = einsum(x, sd[a + "W_Q"], "b p m, h m d -> b p h d") + sd[a + "b_Q"]
    k = einsum(x, sd[a + "W_K"], "b p m, h m d -> b p h d") + sd[a + "b_K"]
    v = einsum(x, sd[a + "W_V"], "b p m, h m d -> b p h d") + sd[a + "b_V"]
    pattern = _causal_softmax(einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(DH))
    z = einsum(pattern, v, "b h q k, b k h d -> b q h d")
    x = x + einsum(z, sd[a + "W_O"], "b q h d, h d m -> b q m") + sd[a + "b_O"]
    post = torch.relu(x @ sd["blocks.0.mlp.W_in"] + sd["blocks.0.mlp.b_in"])
    x = x + post @ sd["blocks.0.mlp.W_out"] + sd["blocks.0.mlp.b_out"]
    return (x @ sd["unembed.W_U"] + sd["unembed.b_U"])[:, -1, :P]


def _progress_measures_state(g):
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    return {
        "embed.W_E": r(D, P + 1), "pos_embed.W_pos": r(3, D),
        "blocks.0.attn.W_K": r(H, DH, D), "blocks.0.attn.W_Q": r(H, DH, D), "blocks.0.attn.W_V": r(H, DH, D),
        "blocks.0.attn.W_O": r(D, H * DH), "blocks.0.attn.mask": torch.ones(3, 3).tril(),
        "blocks.0.mlp.W_in": r(M, D), "blocks.0.mlp.b_in": r(M), "blocks.0.mlp.W_out": r(D, M), "blocks.0.mlp.b_out": r(D),
        "unembed.W_U": r(D, P + 1),
    }


def _progress_measures_forward(sd, tokens):
    x = rearrange(sd["embed.W_E"][:, tokens], "d b p -> b p d") + sd["pos_embed.W_pos"][: tokens.shape[1]]
    a = "blocks.0.attn."
    k = einsum(sd[a + "W_K"], x, "i h d, b p d -> b i p h")
    q = einsum(sd[a + "W_Q"], x, "i h d, b p d -> b i p h")
    v = einsum(sd[a + "W_V"], x, "i h d, b p d -> b i p h")
    attn = _causal_softmax(einsum(q, k, "b i q h, b i p h -> b i q p") / math.sqrt(DH))
    z = rearrange(einsum(v, attn, "b i p h, b i q p -> b i q h"), "b i q h -> b q (i h)")
    x = x + einsum(sd[a + "W_O"], z, "d f, b q f -> b q d")
    post = torch.relu(einsum(sd["blocks.0.mlp.W_in"], x, "m d, b p d -> b p m") + sd["blocks.0.mlp.b_in"])
    x = x + einsum(sd["blocks.0.mlp.W_out"], post, "d m, b p m -> b p d") + sd["blocks.0.mlp.b_out"]
    return (x @ sd["unembed.W_U"])[:, -1, :P]


@pytest.mark.parametrize(
    "build,forward,wrap",
    [
        (_hooked_transformer_state, _hooked_transformer_forward, True),
        (_hooked_transformer_state, _hooked_transformer_forward, False),
        (_progress_measures_state, _progress_measures_forward, False),
    ],
)
def test_legacy_layouts_reproduce_logits(tmp_path, build, forward, wrap):
    sd = build(torch.Generator().manual_seed(0))
    f = tmp_path / "legacy.pth"
    torch.save({"model": sd} if wrap else sd, f)
    model, info = gi.load_checkpoint(f)
    assert info["format"] == "legacy" and model.grokinterp_config.p == P
    pairs = gi.ModularArithmetic(P).grid_inputs
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), P)], dim=1)
    torch.testing.assert_close(answer_logits(model, pairs), forward(sd, tokens), atol=1e-5, rtol=1e-5)
    # the TransformerLens forward of the imported model agrees too
    torch.testing.assert_close(model(tokens)[:, -1], forward(sd, tokens), atol=1e-5, rtol=1e-5)


def test_demo_file_with_pickled_config_and_checkpoints(tmp_path):
    """The grokking demo pickles its config object; it is read as an inert stand-in."""
    mod = types.ModuleType("vanished_pkg")

    @dataclasses.dataclass
    class HookedTransformerConfig:
        d_model: int = D
        act_fn: str = "relu"

    HookedTransformerConfig.__module__ = "vanished_pkg"
    HookedTransformerConfig.__qualname__ = "HookedTransformerConfig"
    mod.HookedTransformerConfig = HookedTransformerConfig
    sys.modules["vanished_pkg"] = mod
    g = torch.Generator().manual_seed(1)
    ckpts = [_hooked_transformer_state(g) for _ in range(3)]
    train_idx = torch.randperm(P * P, generator=g)[:50]
    blob = {
        "model": ckpts[-1], "config": HookedTransformerConfig(), "checkpoints": ckpts,
        "checkpoint_epochs": [0, 100, 200], "train_losses": [float(i) for i in range(201)],
        "test_losses": [float(-i) for i in range(201)], "train_indices": train_idx, "test_indices": None,
    }
    f = tmp_path / "grokking_demo.pth"
    try:
        torch.save(blob, f)
    finally:
        del sys.modules["vanished_pkg"]
    run = gi.load_run(f)
    assert run.checkpoint_epochs == [0, 100, 200]
    assert [r["train_loss"] for r in run.history] == [0.0, 100.0, 200.0]
    assert sorted(run.task.train_indices.tolist()) == sorted(train_idx.tolist())
    pairs = run.task.grid_inputs
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), P)], dim=1)
    torch.testing.assert_close(answer_logits(run.model_at(100), pairs), _hooked_transformer_forward(ckpts[1], tokens), atol=1e-5, rtol=1e-5)
    acc = (answer_logits(run.model_at(200), run.task.train_inputs).argmax(-1) == run.task.train_labels).float().mean()
    assert run.history[-1]["train_acc"] == pytest.approx(float(acc))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def test_loading_never_runs_pickled_code(tmp_path):
    _Payload.marker = tmp_path / "pwned"
    f = tmp_path / "evil.pth"
    torch.save({"model": _hooked_transformer_state(torch.Generator().manual_seed(0)), "extra": _Payload()}, f)
    with pytest.raises(gi.CheckpointError, match="evil.pth.*safe loader"):
        gi.load_checkpoint(f)
    assert not _Payload.marker.exists()


def test_corrupt_legacy_file(tmp_path):
    f = tmp_path / "broken.pth"
    torch.save({"model": _hooked_transformer_state(torch.Generator().manual_seed(0))}, f)
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(gi.CheckpointError, match="broken.pth"):
        gi.load_checkpoint(f)
    sd = _hooked_transformer_state(torch.Generator().manual_seed(0))
    sd["blocks.0.attn.W_Q"] = sd["blocks.0.attn.W_Q"][:, :, :4]
    torch.save(sd, f)
    with pytest.raises(gi.CheckpointError, match="broken.pth"):
        gi.load_checkpoint(f)


def _multi_layer_hooked_state(g, n_layers):
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    sd = {"embed.W_E": r(P + 1, D), "pos_embed.W_pos": r(3, D), "unembed.W_U": r(D, P + 1), "unembed.b_U": torch.zeros(P + 1)}
    for i in range(n_layers):
        b = f"blocks.{i}."
        sd.update({b + "attn.W_Q": r(H, D, DH), b + "attn.W_K": r(H, D, DH), b + "attn.W_V": r(H, D, DH), b + "attn.W_O": r(H, DH, D),
                   b + "attn.b_Q": r(H, DH), b + "attn.b_K": r(H, DH), b + "attn.b_V": r(H, DH), b + "attn.b_O": r(D),
                   b + "mlp.W_in": r(D, M), b + "mlp.b_in": r(M), b + "mlp.W_out": r(M, D), b + "mlp.b_out": r(D)})
    return sd


def _multi_layer_hooked_forward(sd, tokens, n_layers, act):
    x = sd["embed.W_E"][tokens] + sd["pos_embed.W_pos"][: tokens.shape[1]]
    for i in range(n_layers):
        a = f"blocks.{i}.attn."
        q = einsum(x, sd[a + "W_Q"], "b p m, h m d -> b p h d") + sd[a + "b_Q"]
        k = einsum(x, sd[a + "W_K"], "b p m, h m d -> b p h d") + sd[a + "b_K"]
        v = einsum(x, sd[a + "W_V"], "b p m, h m d -> b p h d") + sd[a + "b_V"]
        pattern = _causal_softmax(einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(DH))
        z = einsum(pattern, v, "b h q k, b k h d -> b q h d")
        x = x + einsum(z, sd[a + "W_O"], "b q h d, h d m -> b q m") + sd[a + "b_O"]
        m = f"blocks.{i}.mlp."
        x = x + act(x @ sd[m + "W_in"] + sd[m + "b_in"]) @ sd[m + "W_out"] + sd[m + "b_out"]
    return (x @ sd["unembed.W_U"])[:, -1, :P]


@pytest.mark.parametrize("n_layers,act_fn", [(2, "relu"), (3, "gelu")])
def test_multi_layer_and_gelu_demo_files(tmp_path, n_layers, act_fn):
    sd = _multi_layer_hooked_state(torch.Generator().manual_seed(n_layers), n_layers)
    f = tmp_path / "demo.pth"
    torch.save({"model": sd, "config": {"act_fn": act_fn, "n_layers": n_layers, "d_model": D, "normalization_type": None}}, f)
    model, info = gi.load_checkpoint(f)
    assert model.grokinterp_config.n_layers == n_layers and model.grokinterp_config.act == act_fn
    pairs = gi.ModularArithmetic(P).grid_inputs
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), P)], dim=1)
    act = torch.relu if act_fn == "relu" else torch.nn.functional.gelu
    expected = _multi_layer_hooked_forward(sd, tokens, n_layers, act)
    torch.testing.assert_close(answer_logits(model, pairs), expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[:, -1], expected, atol=1e-5, rtol=1e-5)
    assert info["notes"]  # the = column of W_U was dropped, and that is said
    torch.save({"model": sd, "config": {"act_fn": act_fn, "n_layers": n_layers + 1}}, f)
    with pytest.raises(gi.CheckpointError, match=f"n_layers={n_layers + 1}.*weights have {n_layers}"):
        gi.load_checkpoint(f)


def test_progress_measures_gelu_two_layers(tmp_path):
    g = torch.Generator().manual_seed(9)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    sd = {"embed.W_E": r(D, P + 1), "pos_embed.W_pos": r(3, D), "unembed.W_U": r(D, P + 1)}
    for i in range(2):
        b = f"blocks.{i}."
        sd.update({b + "attn.W_K": r(H, DH, D), b + "attn.W_Q": r(H, DH, D), b + "attn.W_V": r(H, DH, D), b + "attn.W_O": r(D, H * DH),
                   b + "attn.mask": torch.ones(3, 3).tril(), b + "mlp.W_in": r(M, D), b + "mlp.b_in": r(M),
                   b + "mlp.W_out": r(D, M), b + "mlp.b_out": r(D)})
    f = tmp_path / "gelu.pth"
    torch.save({"model": sd, "config": {"p": P, "act_type": "GeLU", "num_layers": 2, "seed": 3, "frac_train": 0.5}}, f)
    model, info = gi.load_checkpoint(f)
    pairs = gi.ModularArithmetic(P).grid_inputs
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), P)], dim=1)
    x = rearrange(sd["embed.W_E"][:, tokens], "d b p -> b p d") + sd["pos_embed.W_pos"]
    for i in range(2):
        a = f"blocks.{i}."
        k = einsum(sd[a + "attn.W_K"], x, "i h d, b p d -> b i p h")
        q = einsum(sd[a + "attn.W_Q"], x, "i h d, b p d -> b i p h")
        v = einsum(sd[a + "attn.W_V"], x, "i h d, b p d -> b i p h")
        attn = _causal_softmax(einsum(q, k, "b i q h, b i p h -> b i q p") / math.sqrt(DH))
        z = rearrange(einsum(v, attn, "b i p h, b i q p -> b i q h"), "b i q h -> b q (i h)")
        x = x + einsum(sd[a + "attn.W_O"], z, "d f, b q f -> b q d")
        post = torch.nn.functional.gelu(einsum(sd[a + "mlp.W_in"], x, "m d, b p d -> b p m") + sd[a + "mlp.b_in"])
        x = x + einsum(sd[a + "mlp.W_out"], post, "d m, b p m -> b p d") + sd[a + "mlp.b_out"]
    torch.testing.assert_close(answer_logits(model, pairs), (x @ sd["unembed.W_U"])[:, -1, :P], atol=1e-5, rtol=1e-5)
    assert info["task"].split == "python_shuffle" and info["task"].seed == 3 and not info["task_assumed"]
