import math

import pytest
import torch

import grokinterp as gi
from grokinterp.models import answer_logits, as_weights, named_weights, prunable_names, to_tokens

from _planted import hooked_logits_and_post


def test_mlp_forward_is_the_formula():
    m = gi.HookedMLP(gi.MLPConfig(11, d_embed=16, d_hidden=8, seed=3))
    x = torch.tensor([[1, 2], [10, 0], [4, 4]])
    expected = torch.relu((m.W_E[x[:, 0]] + m.W_E[x[:, 1]]) @ m.W_in) @ m.W_out @ m.W_U
    torch.testing.assert_close(m(x), expected)
    q = gi.HookedMLP(gi.MLPConfig(11, d_embed=16, d_hidden=8, act="quadratic", seed=3))
    torch.testing.assert_close(q(x), ((q.W_E[x[:, 0]] + q.W_E[x[:, 1]]) @ q.W_in) ** 2 @ q.W_out @ q.W_U)


def test_mlp_hooks_cache_and_intervene():
    m = gi.HookedMLP(gi.MLPConfig(11, d_embed=16, d_hidden=8))
    x = torch.tensor([[1, 2], [3, 4]])
    logits, cache = m.run_with_cache(x)
    assert set(cache.keys()) >= {"hook_embed", "hook_pre", "hook_post", "hook_out", "hook_logits"}
    torch.testing.assert_close(cache["hook_post"], torch.relu(cache["hook_pre"]))
    torch.testing.assert_close(cache["hook_logits"], logits)
    ablated = m.run_with_hooks(x, fwd_hooks=[("hook_post", lambda t, hook: torch.zeros_like(t))])
    assert torch.count_nonzero(ablated) == 0


def test_mlp_init_is_seeded_and_scaled():
    cfg = gi.MLPConfig(67, d_embed=500, d_hidden=48, init_scale=2.0, seed=5)
    a, b = gi.HookedMLP(cfg), gi.HookedMLP(cfg)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    c = gi.HookedMLP(gi.MLPConfig(67, d_embed=500, d_hidden=48, init_scale=2.0, seed=6))
    assert not torch.equal(a.W_in, c.W_in)
    for w in (a.W_E, a.W_in, a.W_out, a.W_U):
        assert w.std().item() == pytest.approx(2.0 / math.sqrt(w.shape[0]), rel=0.05)


def test_mlp_config_errors():
    with pytest.raises(gi.GrokinterpError, match="activation"):
        gi.MLPConfig(11, act="tanh")
    with pytest.raises(gi.GrokinterpError, match="d_hidden"):
        gi.MLPConfig(11, d_hidden=0)


@pytest.mark.parametrize("preset", ["nanda", "tickets"])
def test_transformer_fast_path_matches_transformerlens_forward(preset):
    m = gi.make_transformer(preset, seed=1)
    cfg = m.grokinterp_config
    x = gi.ModularArithmetic(cfg.p).grid_inputs[::7]
    reference = m(to_tokens(m, x))[:, -1]
    torch.testing.assert_close(answer_logits(m, x), reference, atol=1e-5, rtol=1e-5)
    acts = as_weights(m).forward(x[:10]).post
    _, cache = m.run_with_cache(to_tokens(m, x[:10]))
    torch.testing.assert_close(acts, cache["blocks.0.mlp.hook_post"][:, -1], atol=1e-6, rtol=1e-5)


def test_transformer_presets_and_protocol_shapes():
    nanda = gi.make_transformer("nanda")
    c = nanda.grokinterp_config
    assert (c.p, c.n_heads, c.d_model, c.d_head, c.d_mlp, c.n_ctx) == (113, 4, 128, 32, 512, 3)
    assert nanda.W_E.shape == (114, 128)
    w = as_weights(nanda)
    assert w.W_E.shape == (113, 128)
    assert w.W_in.shape == (128, 512)
    assert w.W_out.shape == (512, 128)
    assert w.W_U.shape == (128, 113)
    tickets = gi.make_transformer("tickets")
    w = named_weights(tickets)
    assert tickets.grokinterp_config.n_ctx == 2 and tickets.W_E.shape == (67, 128)
    assert torch.count_nonzero(w["pos_embed.weight"]) == 0 and not w["pos_embed.weight"].requires_grad
    assert "pos_embed.weight" not in prunable_names(tickets)
    for name, p in w.items():
        if name.endswith(".bias"):
            assert torch.count_nonzero(p) == 0 and not p.requires_grad


def test_transformer_init_scheme():
    a, b = gi.make_transformer("nanda", seed=4), gi.make_transformer("nanda", seed=4)
    wa, wb = named_weights(a), named_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    std = 0.8 / math.sqrt(128)
    for name in ("blocks.0.attn.o.weight", "blocks.0.mlp.out.weight", "embed.weight"):
        assert wa[name].std().item() == pytest.approx(std, rel=0.05)
    with pytest.raises(gi.GrokinterpError, match="preset"):
        gi.make_transformer("gpt2")


@pytest.mark.parametrize("act", ["relu", "gelu", "quadratic"])
def test_mlp_fast_path_equals_hooked_forward(act):
    m = gi.HookedMLP(gi.MLPConfig(13, d_embed=64, d_hidden=16, act=act, seed=2))
    x = gi.ModularArithmetic(13).grid_inputs
    torch.testing.assert_close(answer_logits(m, x), m(x), atol=1e-5, rtol=1e-4)
    mask = {"W_in": torch.rand(64, 16, generator=torch.Generator().manual_seed(0)) < 0.5}
    masked = {"W_in": m.W_in * mask["W_in"]}
    torch.testing.assert_close(answer_logits(m, x, masked), m(x, masked), atol=1e-5, rtol=1e-4)
