import math

import pytest
import torch

import grokinterp as gi
from grokinterp.models import answer_logits, as_weights, named_weights, prunable_names, to_tokens


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
    assert set(cache.keys()) >= {"hook_embed", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
                                 "blocks.0.hook_mlp_out", "unembed.hook_out"}
    torch.testing.assert_close(cache["post", 0], torch.relu(cache["pre", 0]))
    torch.testing.assert_close(cache["embed"], torch.stack([m.W_E[x[:, 0]], m.W_E[x[:, 1]]], dim=1).detach())
    torch.testing.assert_close(cache["unembed.hook_out"], logits)
    ablated = m.run_with_hooks(x, fwd_hooks=[("blocks.0.mlp.hook_post", lambda t, hook: torch.zeros_like(t))])
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


# ---------------------------------------------------------------- architecture options of the field
def _rated_forward(model, x):
    """The forward written from the configs' definitions: rated attention r·softmax + (1 - r), causal
    or not, for every layer; read-out at the last position."""
    cfg = model.grokinterp_config
    w = named_weights(model)
    tokens = to_tokens(model, x)
    h = w["embed.weight"][tokens] + w["pos_embed.weight"][: tokens.shape[1]]
    seq = tokens.shape[1]
    act = torch.relu if cfg.act == "relu" else torch.nn.functional.gelu
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        lin = lambda n, t: torch.nn.functional.linear(t, w[b + n + ".weight"], w[b + n + ".bias"])  # noqa: E731
        q, k, v = (lin(f"attn.{n}", h).unflatten(-1, (cfg.n_heads, cfg.d_head)).transpose(1, 2) for n in "qkv")
        scores = q @ k.transpose(-1, -2) / math.sqrt(cfg.d_head)
        allowed = torch.ones(seq, seq).tril() if cfg.attention_dir == "causal" else torch.ones(seq, seq)
        soft = scores.masked_fill(allowed == 0, float("-inf")).softmax(-1)
        A = (soft * cfg.attn_rate + (1 - cfg.attn_rate)) * allowed
        h = h + lin("attn.o", (A @ v).transpose(1, 2).flatten(-2))
        h = h + lin("mlp.out", act(lin("mlp.in", h)))
    return torch.nn.functional.linear(h, w["unembed.weight"])[:, -1]


@pytest.mark.parametrize(
    "options",
    [
        dict(attn_rate=0.0, attention_dir="bidirectional", eq_token=False),
        dict(attn_rate=0.4, n_layers=2),
        dict(attn_rate=0.7, attention_dir="bidirectional", n_layers=3, act="gelu", diff_vocab=True),
        dict(diff_vocab=True, eq_token=True, n_layers=4, pos_embed=False),
        dict(attention_dir="bidirectional", n_layers=2, freeze_biases=False, attn_biases=False),
    ],
)
def test_transformer_options_forward(options):
    m = gi.make_transformer(gi.TransformerConfig(p=11, n_heads=2, d_model=16, d_head=8, d_mlp=24, seed=2, **options))
    with torch.no_grad():  # give the biases values so that they count
        for name, p in named_weights(m).items():
            if name.endswith(".bias") and p.requires_grad:
                p.normal_(0, 0.3)
    x = gi.ModularArithmetic(11).grid_inputs
    expected = _rated_forward(m, x)
    torch.testing.assert_close(answer_logits(m, x), expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(m(to_tokens(m, x))[:, -1], expected, atol=1e-5, rtol=1e-5)
        _, cache = m.run_with_cache(to_tokens(m, x))
        ablated = m.run_with_hooks(to_tokens(m, x), fwd_hooks=[("blocks.0.attn.hook_pattern", lambda t, hook: t * 0)])
    pattern = cache["pattern", 0]
    if m.grokinterp_config.attn_rate < 1:  # the cached pattern is the rated one
        assert float(pattern[:, :, -1].sum(-1).max()) > 1.0 + 1e-3
    if m.grokinterp_config.attention_dir == "causal":
        assert torch.count_nonzero(pattern.triu(1)) == 0
    assert not torch.allclose(ablated[:, -1], expected)  # a user's hook still acts, after the rate
    torch.testing.assert_close(as_weights(m).forward(x).pattern[:, 0], pattern[:, :, -1], atol=1e-6, rtol=1e-5)
    c = m.grokinterp_config
    assert m.W_E.shape[0] == c.d_vocab == 11 * (2 if c.diff_vocab else 1) + (1 if c.eq_token else 0)
    if not c.attn_biases:
        assert all(not p.requires_grad for n, p in named_weights(m).items() if ".attn." in n and n.endswith(".bias"))


def test_transformer_config_dicts_old_and_new():
    old = {"kind": "transformer", "p": 113, "n_layers": 1, "n_heads": 4, "d_model": 128, "d_head": 32, "d_mlp": 512,
           "act": "relu", "eq_token": True, "pos_embed": True, "freeze_biases": True, "init_scale": 1.0, "seed": 0}
    cfg = gi.models.config_from_dict(old)
    assert cfg == gi.models.PRESETS["nanda"]
    assert gi.models.config_to_dict(cfg) == old  # defaults of the later options are not written
    rated = gi.TransformerConfig(p=59, attn_rate=0.0, attention_dir="bidirectional", diff_vocab=True, eq_token=False)
    d = gi.models.config_to_dict(rated)
    assert d["attn_rate"] == 0.0 and d["attention_dir"] == "bidirectional" and d["diff_vocab"] is True
    assert gi.models.config_from_dict(d) == rated
    for bad, match in [(dict(attn_rate=1.5), "attn_rate"), (dict(attention_dir="casual"), "attention_dir"),
                       (dict(diff_vocab=1), "diff_vocab")]:
        with pytest.raises(gi.GrokinterpError, match=match):
            gi.TransformerConfig(**bad)


def test_a_rate_zero_bidirectional_transformer_trains():
    task = gi.ModularArithmetic(11, frac_train=0.5)
    m = gi.make_transformer(gi.TransformerConfig(p=11, n_heads=2, d_model=32, d_head=16, d_mlp=64, attn_rate=0.0,
                                                 attention_dir="bidirectional", eq_token=False, seed=1))
    result = gi.train(m, task, gi.TrainConfig(epochs=60, lr=3e-3, eval_every=20, progress=False))
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    x = task.grid_inputs
    with torch.no_grad():
        torch.testing.assert_close(answer_logits(result.model, x), _rated_forward(result.model, x), atol=1e-5, rtol=1e-5)
