"""The importer registry: the clock-vs-pizza fixtures against their authors' forward written here from
the paper's equations, a hand-built file of every declared layout, and refusals of what a layout does
not define."""

import json
import math
import os
import random
from pathlib import Path

import pytest
import torch
from einops import einsum, rearrange

import grokinterp as gi
from grokinterp.models import answer_logits, to_tokens
from grokinterp.runs.importers import LAYOUTS, import_file

PIZZA = Path(__file__).parents[2] / "shared" / "fixtures" / "pizza"
FIXTURES = {"p99zdpze5l": 0.0, "l8k1hzciux": 1.0}  # Model A (pizza, rate 0), Model B (clock, rate 1)


def _pizza_dir():
    if not PIZZA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the clock-vs-pizza fixtures are missing: expected them in {PIZZA}")
        pytest.skip(f"clock-vs-pizza fixtures not found in {PIZZA}")
    return PIZZA


# ------------------------------------------------------------------ forwards written from the papers
def clock_pizza_forward(sd, rate, tokens, act=torch.relu):
    """Zhong et al. 2023: x = W_E[:, t]^T + W_pos; per layer A = r softmax(q k^T / sqrt(d_head)) + (1 - r)
    with no mask, x += W_O (A v), x += W_out act(W_in x + b_in) + b_out; logits x W_U at the last position.
    Storage: W_E / W_U (d_model, vocab), W_Q/K/V (heads, d_head, d_model), W_O (d_model, heads*d_head),
    W_in (d_mlp, d_model), W_out (d_model, d_mlp)."""
    x = rearrange(sd["embed.W_E"][:, tokens], "d n s -> n s d") + sd["pos_embed.W_pos"][: tokens.shape[1]]
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(n_layers):
        b = f"blocks.{i}."
        q = einsum(sd[b + "attn.W_Q"], x, "h e d, n s d -> n h s e")
        k = einsum(sd[b + "attn.W_K"], x, "h e d, n s d -> n h s e")
        v = einsum(sd[b + "attn.W_V"], x, "h e d, n s d -> n h s e")
        scores = einsum(q, k, "n h s e, n h t e -> n h s t") / math.sqrt(q.shape[-1])
        A = scores.softmax(-1) * rate + (1 - rate)
        z = rearrange(einsum(A, v, "n h s t, n h t e -> n h s e"), "n h s e -> n s (h e)")
        x = x + einsum(sd[b + "attn.W_O"], z, "d f, n s f -> n s d")
        post = act(einsum(sd[b + "mlp.W_in"], x, "m d, n s d -> n s m") + sd[b + "mlp.b_in"])
        x = x + einsum(sd[b + "mlp.W_out"], post, "d m, n s m -> n s d") + sd[b + "mlp.b_out"]
    return (x @ sd["unembed.W_U"])[:, -1]


def causal_column_forward(sd, tokens):
    """The progress-measures code's forward (same storage as above, causal softmax attention, ReLU)."""
    x = rearrange(sd["embed.W_E"][:, tokens], "d n s -> n s d") + sd["pos_embed.W_pos"][: tokens.shape[1]]
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    seq = tokens.shape[1]
    for i in range(n_layers):
        b = f"blocks.{i}."
        q = einsum(sd[b + "attn.W_Q"], x, "h e d, n s d -> n h s e")
        k = einsum(sd[b + "attn.W_K"], x, "h e d, n s d -> n h s e")
        v = einsum(sd[b + "attn.W_V"], x, "h e d, n s d -> n h s e")
        scores = einsum(q, k, "n h s e, n h t e -> n h s t") / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
        z = rearrange(einsum(scores.softmax(-1), v, "n h s t, n h t e -> n h s e"), "n h s e -> n s (h e)")
        x = x + einsum(sd[b + "attn.W_O"], z, "d f, n s f -> n s d")
        post = torch.relu(einsum(sd[b + "mlp.W_in"], x, "m d, n s d -> n s m") + sd[b + "mlp.b_in"])
        x = x + einsum(sd[b + "mlp.W_out"], post, "d m, n s m -> n s d") + sd[b + "mlp.b_out"]
    return x @ sd["unembed.W_U"]


def _grid(p):
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


# ------------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("run_id", sorted(FIXTURES))
def test_clock_pizza_fixtures_import_exactly(run_id, tmp_path):
    folder = _pizza_dir()
    model, info = gi.load_checkpoint(folder / f"model_{run_id}.pt")
    sd = torch.load(folder / f"model_{run_id}.pt", weights_only=True, map_location="cpu")
    cfg = model.grokinterp_config
    assert info["layout"] == "clock_pizza" and cfg.attn_rate == FIXTURES[run_id]
    assert cfg.attention_dir == "bidirectional" and not cfg.eq_token and cfg.p == 59
    pairs = _grid(59)
    expected = clock_pizza_forward(sd, FIXTURES[run_id], pairs)
    torch.testing.assert_close(answer_logits(model, pairs), expected, atol=1e-4, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(to_tokens(model, pairs))[:, -1], expected, atol=1e-4, rtol=0)
    labels = (pairs[:, 0] + pairs[:, 1]) % 59
    assert float((expected.argmax(-1) == labels).double().mean()) == 1.0
    assert float((answer_logits(model, pairs).argmax(-1) == labels).double().mean()) == 1.0
    # the config records frac 0.8 but not how the pairs were drawn: the split is assumed, and says so
    assert info["task_assumed"] and "assumed" in info["split"] and info["task"].frac_train == 0.8
    report = gi.analyze(folder / f"model_{run_id}.pt", progress=False)
    assert report.task_assumed and "frac=0.8" in report.task_note and "(assumed)" in report.summary()
    assert report.metrics["test_acc"] == 1.0 and report.model.get("attn_rate", 1.0) == FIXTURES[run_id]
    assert "task assumed: config_" in report.to_html(tmp_path / "report.html").read_text()
    assert gi.Report.from_json(report.to_json()).task_note == report.task_note


def test_rate_changes_the_fixture_logits():
    """Run with ordinary attention, Model A would give other logits: the rate is not ignored."""
    folder = _pizza_dir()
    sd = torch.load(folder / "model_p99zdpze5l.pt", weights_only=True, map_location="cpu")
    pairs = _grid(59)
    assert (clock_pizza_forward(sd, 0.0, pairs) - clock_pizza_forward(sd, 1.0, pairs)).abs().max() > 1.0


# ------------------------------------------------------------------ hand-built files per layout
P, D, H, DH, M = 11, 16, 2, 8, 32


def _rand(g, *shape):
    return torch.randn(*shape, generator=g) * 0.3


def _column_state(g, vocab, n_ctx, d_out, n_layers=1, mask=True):
    sd = {"embed.W_E": _rand(g, D, vocab), "pos_embed.W_pos": _rand(g, n_ctx, D), "unembed.W_U": _rand(g, D, d_out)}
    for i in range(n_layers):
        b = f"blocks.{i}."
        sd.update({b + "attn.W_K": _rand(g, H, DH, D), b + "attn.W_Q": _rand(g, H, DH, D), b + "attn.W_V": _rand(g, H, DH, D),
                   b + "attn.W_O": _rand(g, D, H * DH), b + "mlp.W_in": _rand(g, M, D), b + "mlp.b_in": _rand(g, M),
                   b + "mlp.W_out": _rand(g, D, M), b + "mlp.b_out": _rand(g, D)})
        if mask:
            sd[b + "attn.mask"] = torch.ones(n_ctx, n_ctx).tril()
    return sd


def _pizza_config(run_id, **over):
    cfg = {"name": "modadd", "funcs": f"lambda x: (x[0]+x[1])%{P}", "C": P, "n_heads": H, "d_model": D, "n_layers": 1,
           "attention_dir": "casual", "act_fn": "ReLU", "epoch": 100, "batch_size": P * P, "lr": 1e-3, "weight_decay": 2.0,
           "frac": 0.8, "attn_coeff": 0.5, "runid": run_id, "diff_vocab": False, "eqn_sign": False, "func": None}
    cfg.update(over)
    return cfg


def _write_pizza(folder, run_id, sd, cfg):
    torch.save(sd, folder / f"model_{run_id}.pt")
    (folder / f"config_{run_id}.json").write_text(json.dumps(cfg))
    return folder / f"model_{run_id}.pt"


@pytest.mark.parametrize("diff_vocab,act,n_layers,rate", [(False, "ReLU", 1, 0.5), (True, "GeLU", 2, 0.25), (True, "ReLU", 3, 1.0)])
def test_clock_pizza_layout_options(tmp_path, diff_vocab, act, n_layers, rate):
    g = torch.Generator().manual_seed(n_layers)
    vocab = 2 * P if diff_vocab else P
    sd = _column_state(g, vocab, 2, vocab, n_layers)
    f = _write_pizza(tmp_path, "abc123", sd, _pizza_config("abc123", diff_vocab=diff_vocab, act_fn=act, n_layers=n_layers,
                                                              attn_coeff=rate))
    model, info = gi.load_checkpoint(f)
    cfg = model.grokinterp_config
    assert (cfg.p, cfg.diff_vocab, cfg.n_layers, cfg.attn_rate) == (P, diff_vocab, n_layers, rate)
    pairs = _grid(P)
    tokens = torch.stack([pairs[:, 0], pairs[:, 1] + (P if diff_vocab else 0)], dim=1)
    expected = clock_pizza_forward(sd, rate, tokens, torch.relu if act == "ReLU" else torch.nn.functional.gelu)[:, :P]
    torch.testing.assert_close(answer_logits(model, pairs), expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(model(to_tokens(model, pairs))[:, -1], expected, atol=1e-5, rtol=1e-5)
    assert bool(info["notes"]) == diff_vocab  # the b-token output columns are dropped, and that is said


def _progress_config(**over):
    cfg = {"lr": 1e-3, "weight_decay": 1.0, "p": P, "d_model": D, "fn_name": "add", "frac_train": 0.3, "num_epochs": 10,
           "save_models": True, "save_every": 1, "stopping_thresh": -1, "seed": 7, "num_layers": 1, "batch_style": "full",
           "d_vocab": P + 1, "n_ctx": 3, "d_mlp": M, "num_heads": H, "act_type": "ReLU", "device": "cuda", "use_ln": False,
           "take_metrics_every_n_epochs": 1}
    cfg.update(over)
    return cfg


def _eq_tokens(pairs, eq=P):
    return torch.cat([pairs, torch.full((len(pairs), 1), eq)], dim=1)


def test_progress_measures_file_gets_its_python_shuffle_split(tmp_path):
    g = torch.Generator().manual_seed(3)
    sd = _column_state(g, P + 1, 3, P + 1)
    f = tmp_path / "final.pth"
    torch.save({"model": sd, "config": _progress_config(), "train_losses": [1.0, 0.5], "test_losses": [2.0, 1.5], "epoch": 1}, f)
    model, info = gi.load_checkpoint(f)
    assert info["layout"] == "progress_measures" and not info["task_assumed"] and info["epoch"] == 1
    pairs = _grid(P)
    torch.testing.assert_close(answer_logits(model, pairs), causal_column_forward(sd, _eq_tokens(pairs))[:, -1, :P], atol=1e-5, rtol=1e-5)
    # the split, rebuilt by hand: random.seed(seed); random.shuffle of the (i, j) pairs, a-major; first int(frac n) train
    hand = [(i, j) for i in range(P) for j in range(P)]
    random.seed(7)
    random.shuffle(hand)
    train = sorted(i * P + j for i, j in hand[: int(0.3 * P * P)])
    task = info["task"]
    assert task.split == "python_shuffle" and task.train_indices.tolist() == train
    assert sorted(task.test_indices.tolist()) == sorted(set(range(P * P)) - set(train))


def test_arena_saved_run(tmp_path):
    g = torch.Generator().manual_seed(4)
    states = [_column_state(g, P + 1, 3, P + 1) for _ in range(3)]
    f = tmp_path / "full_run_data.pth"
    torch.save({"state_dicts": states, "epochs": [0, 10, 20], "train_losses": [float(i) for i in range(21)],
                "test_losses": [float(-i) for i in range(21)], "config": _progress_config(seed=2, frac_train=0.4)}, f)
    run = gi.load_run(f)
    assert run.checkpoint_epochs == [0, 10, 20] and [r["train_loss"] for r in run.history] == [0.0, 10.0, 20.0]
    assert run.task.split == "python_shuffle" and run.task.seed == 2 and not run.config["task_assumed"]
    pairs = _grid(P)
    for e, sd in zip([0, 10, 20], states):
        torch.testing.assert_close(answer_logits(run.model_at(e), pairs), causal_column_forward(sd, _eq_tokens(pairs))[:, -1, :P],
                                   atol=1e-5, rtol=1e-5)
    acc = (answer_logits(run.model_at(20), run.task.train_inputs).argmax(-1) == run.task.train_labels).double().mean()
    assert run.history[-1]["train_acc"] == pytest.approx(float(acc))
    model, info = gi.load_checkpoint(f)  # one file, the last state dict
    assert info["layout"] == "arena" and info["epoch"] == 20


def test_transformer_lens_bare_and_demo_files(tmp_path):
    g = torch.Generator().manual_seed(5)
    sd = {"embed.W_E": _rand(g, P + 1, D), "pos_embed.W_pos": _rand(g, 3, D), "unembed.W_U": _rand(g, D, P),
          "blocks.0.attn.W_Q": _rand(g, H, D, DH), "blocks.0.attn.W_K": _rand(g, H, D, DH), "blocks.0.attn.W_V": _rand(g, H, D, DH),
          "blocks.0.attn.W_O": _rand(g, H, DH, D), "blocks.0.attn.b_Q": _rand(g, H, DH), "blocks.0.attn.b_K": _rand(g, H, DH),
          "blocks.0.attn.b_V": _rand(g, H, DH), "blocks.0.attn.b_O": _rand(g, D),
          "blocks.0.mlp.W_in": _rand(g, D, M), "blocks.0.mlp.b_in": _rand(g, M), "blocks.0.mlp.W_out": _rand(g, M, D),
          "blocks.0.mlp.b_out": _rand(g, D)}
    pairs = _grid(P)
    x = sd["embed.W_E"][_eq_tokens(pairs)] + sd["pos_embed.W_pos"]
    q = einsum(x, sd["blocks.0.attn.W_Q"], "n s d, h d e -> n h s e") + sd["blocks.0.attn.b_Q"][None, :, None]
    k = einsum(x, sd["blocks.0.attn.W_K"], "n s d, h d e -> n h s e") + sd["blocks.0.attn.b_K"][None, :, None]
    v = einsum(x, sd["blocks.0.attn.W_V"], "n s d, h d e -> n h s e") + sd["blocks.0.attn.b_V"][None, :, None]
    scores = (q @ k.transpose(-1, -2) / math.sqrt(DH)).masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
    x = x + einsum(scores.softmax(-1) @ v, sd["blocks.0.attn.W_O"], "n h s e, h e d -> n s d") + sd["blocks.0.attn.b_O"]
    x = x + torch.relu(x @ sd["blocks.0.mlp.W_in"] + sd["blocks.0.mlp.b_in"]) @ sd["blocks.0.mlp.W_out"] + sd["blocks.0.mlp.b_out"]
    expected = (x @ sd["unembed.W_U"])[:, -1]
    torch.save(sd, tmp_path / "bare.pth")
    model, info = gi.load_checkpoint(tmp_path / "bare.pth")
    assert info["layout"] == "transformer_lens" and info["task_assumed"] and info["task"] is None
    torch.testing.assert_close(answer_logits(model, pairs), expected, atol=1e-5, rtol=1e-5)
    torch.manual_seed(598)
    perm = torch.randperm(P * P)
    n_train = int(0.3 * P * P)
    torch.save({"model": sd, "checkpoints": [sd, sd], "checkpoint_epochs": [0, 5], "train_indices": perm[:n_train],
                "test_indices": perm[n_train:]}, tmp_path / "demo.pth")
    model, info = gi.load_checkpoint(tmp_path / "demo.pth")
    assert not info["task_assumed"] and info["task"].train_indices.tolist() == sorted(perm[:n_train].tolist())
    torch.testing.assert_close(answer_logits(model, pairs), expected, atol=1e-5, rtol=1e-5)
    # the demo's own split rule by name gives the same pairs
    assert gi.ModularArithmetic(P, frac_train=0.3, seed=598, split="torch_randperm").train_indices.tolist() == sorted(perm[:n_train].tolist())


def test_grokinterp_file_through_the_registry(tmp_path):
    model = gi.make_transformer(gi.TransformerConfig(p=P, n_heads=H, d_model=D, d_head=DH, d_mlp=M, attn_rate=0.3,
                                                     attention_dir="bidirectional", diff_vocab=True, eq_token=False))
    task = gi.ModularArithmetic(P, pairs="a>b", frac_train=0.5, split="python_shuffle")
    f = gi.save_checkpoint(model, tmp_path / "m.safetensors", task=task)
    loaded, info = gi.load_checkpoint(f)
    assert info["layout"] == "grokinterp" and info["task"] == task and not info["task_assumed"]
    assert loaded.grokinterp_config == model.grokinterp_config
    pairs = _grid(P)
    assert torch.equal(answer_logits(loaded, pairs), answer_logits(model, pairs))


# --------------------------------------------------------------------------------------- refusals
def test_refusals_name_what_was_found_and_what_is_supported(tmp_path):
    g = torch.Generator().manual_seed(6)
    # an attention rate in a layout that has none
    f = tmp_path / "rated.pth"
    torch.save({"model": _column_state(g, P + 1, 3, P + 1), "config": _progress_config(attn_coeff=0.5)}, f)
    with pytest.raises(gi.CheckpointError, match=r"rated\.pth.*progress_measures.*attn_coeff"):
        gi.load_checkpoint(f)
    # an unknown key
    torch.save({"model": _column_state(g, P + 1, 3, P + 1), "optimizer": {"lr": 1.0}}, f)
    with pytest.raises(gi.CheckpointError, match=r"\['optimizer'\].*supported keys"):
        gi.load_checkpoint(f)
    sd = _column_state(g, P + 1, 3, P + 1)
    sd["blocks.0.attn.hook_z"] = torch.zeros(1)
    torch.save(sd, f)
    with pytest.raises(gi.CheckpointError, match="hook_z"):
        gi.load_checkpoint(f)
    # a wrong shape
    sd = _column_state(g, P + 1, 3, P + 1)
    sd["blocks.0.mlp.W_out"] = sd["blocks.0.mlp.W_out"][:, :5]
    torch.save(sd, f)
    with pytest.raises(gi.CheckpointError, match=r"W_out.*shape \(16, 5\).*expected \(16, 32\)"):
        gi.load_checkpoint(f)
    # LayerNorm, an architecture option grokinterp does not implement
    sd = _column_state(g, P + 1, 3, P + 1)
    sd["blocks.0.ln1.w"] = torch.ones(D)
    torch.save(sd, f)
    with pytest.raises(gi.CheckpointError, match="LayerNorm"):
        gi.load_checkpoint(f)
    # a non-causal mask in a causal layout
    sd = _column_state(g, P + 1, 3, P + 1)
    sd["blocks.0.attn.mask"] = torch.ones(3, 3)
    torch.save(sd, f)
    with pytest.raises(gi.CheckpointError, match="causal"):
        gi.load_checkpoint(f)
    # a TransformerLens config option the model does not have
    torch.save({"model": {"embed.W_E": _rand(g, P + 1, D), "pos_embed.W_pos": _rand(g, 3, D), "unembed.W_U": _rand(g, D, P),
                          "blocks.0.attn.W_Q": _rand(g, H, D, DH), "blocks.0.attn.W_K": _rand(g, H, D, DH),
                          "blocks.0.attn.W_V": _rand(g, H, D, DH), "blocks.0.attn.W_O": _rand(g, H, DH, D),
                          "blocks.0.mlp.W_in": _rand(g, D, M), "blocks.0.mlp.W_out": _rand(g, M, D)},
                "config": {"normalization_type": "LN", "act_fn": "relu"}}, f)
    with pytest.raises(gi.CheckpointError, match="normalization_type='LN'"):
        gi.load_checkpoint(f)
    # nothing any layout declares
    torch.save({"weights": torch.zeros(3)}, f)
    with pytest.raises(gi.CheckpointError, match=r"none of the layouts") as e:
        gi.load_checkpoint(f)
    assert all(layout.name in str(e.value) for layout in LAYOUTS)


def test_clock_pizza_refusals(tmp_path):
    g = torch.Generator().manual_seed(7)
    sd = _column_state(g, P, 2, P)
    torch.save(sd, tmp_path / "model_lonely.pt")
    with pytest.raises(gi.CheckpointError, match="config_lonely.json is not beside it"):
        gi.load_checkpoint(tmp_path / "model_lonely.pt")
    for over, message in [({"eqn_sign": True}, "eqn_sign"), ({"funcs": "lambda x: (x[0]**2+x[1])%11"}, "funcs"),
                          ({"act_fn": "SiLU"}, "act_fn"), ({"attn_coeff": 2}, "attn_coeff"), ({"dropout": 0.1}, "dropout"),
                          ({"n_heads": 4}, "n_heads=4"), ({"C": 13}, "13")]:
        f = _write_pizza(tmp_path, "x1", sd, _pizza_config("x1", **over))
        with pytest.raises(gi.CheckpointError, match=rf"model_x1\.pt.*clock_pizza.*{message}"):
            import_file(f)
