"""The dense MLP on vectors through the model seam: config, init, hooks, ModelWeights, and the
tickets machinery (masks, rewinding, Jaccard distance, norm-matched controls, pruners, edge-popup);
and the per-weight init scales of the tickets MLP."""

import json
import math

import pytest
import torch

import grokinterp as gi
from grokinterp.models import (
    HookedVectorMLP,
    ModelWeights,
    VectorMLPConfig,
    answer_loss,
    as_weights,
    build_model,
    config_from_dict,
    config_to_dict,
    model_kind,
    named_weights,
    prunable_names,
)
from grokinterp.tasks import PolynomialRegression, SparseParity
from grokinterp.tickets import (
    edge_popup,
    grokking_ticket,
    jaccard_distance,
    magnitude_mask,
    norm_matched_dense,
    prune,
    rewind,
)

CFG = VectorMLPConfig(d_in=6, widths=(12, 9), d_out=3, act="relu", init_scales=(2.0, 1.0, 0.5), seed=4)


def test_config_round_trip_and_validation():
    d = json.loads(json.dumps(config_to_dict(CFG)))
    assert d["kind"] == "vector_mlp" and config_from_dict(d) == CFG and model_kind(CFG) == "vector_mlp"
    assert VectorMLPConfig(d_in=3, widths=[4]).widths == (4,)
    assert "init_scales" not in VectorMLPConfig(d_in=3, widths=(4,)).to_dict()
    for bad, match in [
        (dict(d_in=0), "d_in"), (dict(d_in=3, widths=()), "widths"), (dict(d_in=3, widths=(4, 0)), "widths"),
        (dict(d_in=3, act="tanhh"), "activation"), (dict(d_in=3, bias=1), "bias"),
        (dict(d_in=3, widths=(4,), init_scales=(1.0,)), "2 numbers"), (dict(d_in=3, widths=(4,), init_scales=(1.0, -1.0)), "init_scales"),
        (dict(d_in=3, init_scale=float("nan")), "init_scale"),
    ]:
        with pytest.raises(gi.GrokinterpError, match=match):
            VectorMLPConfig(**bad)


def test_init_is_seeded_and_scaled_per_layer():
    m = HookedVectorMLP(CFG)
    assert _equal(m, HookedVectorMLP(CFG)) and not _equal(m, HookedVectorMLP(VectorMLPConfig(**{**CFG.to_dict(), "seed": 5})))
    g = torch.Generator().manual_seed(4)
    for name, fan_in, scale in [("blocks.0.W_in", 6, 2.0), ("blocks.1.W_in", 12, 1.0), ("W_U", 9, 0.5)]:
        shape = named_weights(m)[name].shape
        expected = torch.empty(shape).normal_(0.0, scale / math.sqrt(fan_in), generator=g)
        assert torch.equal(named_weights(m)[name], expected)  # drawn in layer order from one generator
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in named_weights(m).items() if ".b_" in n or n == "b_U")
    no_bias = HookedVectorMLP(VectorMLPConfig(d_in=6, widths=(12,), d_out=3, bias=False))
    assert sorted(named_weights(no_bias)) == ["W_U", "blocks.0.W_in"]
    assert prunable_names(m) == ["W_U", "blocks.0.W_in", "blocks.1.W_in"]


def test_forward_by_hand_hooks_and_model_weights():
    m = HookedVectorMLP(CFG)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    x = torch.randn(5, 6)
    W = named_weights(m)
    h1 = torch.relu(x @ W["blocks.0.W_in"] + W["blocks.0.b_in"])
    h2 = torch.relu(h1 @ W["blocks.1.W_in"] + W["blocks.1.b_in"])
    by_hand = h2 @ W["W_U"] + W["b_U"]
    out, cache = m.run_with_cache(x)
    assert torch.allclose(out, by_hand, atol=1e-6)
    assert torch.equal(cache["post", 0], h1) and torch.equal(cache["blocks.1.mlp.hook_post"], h2)
    assert torch.equal(cache["blocks.0.hook_resid_pre"], x) and torch.equal(cache["unembed.hook_out"], out)
    w = as_weights(m)
    assert w.kind == "vector_mlp" and torch.equal(w.logits(x), out) and w.d_mlp == 9
    acts = w.forward(x)
    assert torch.equal(acts.logits, out) and torch.equal(acts.post, h2) and acts.pattern is None
    # an intervention through the hooks: zeroing the last layer's neurons leaves only the readout bias
    ablated = m.run_with_hooks(x, fwd_hooks=[("blocks.1.mlp.hook_post", lambda v, hook: v * 0)])
    assert torch.allclose(ablated, W["b_U"].expand(5, 3))
    assert torch.equal(ModelWeights(CFG, {n: p.detach() for n, p in W.items()}).logits(x), out.detach())
    with pytest.raises(gi.GrokinterpError, match=r"\(batch, 6\)"):
        m(torch.randn(5, 7))
    with pytest.raises(gi.GrokinterpError, match="weights lack"):
        ModelWeights(CFG, {"W_U": W["W_U"]})
    for what in ("W_E", "W_L", "p"):
        with pytest.raises(gi.GrokinterpError, match="modular-arithmetic models"):
            getattr(w, what)
    with pytest.raises(gi.GrokinterpError, match="modular-arithmetic models"):
        answer_loss(m, x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(gi.GrokinterpError, match="vectors, not token pairs"):
        gi.models.to_tokens(m, torch.zeros(2, 2, dtype=torch.long))


def _equal(a, b):
    wa, wb = named_weights(a), named_weights(b)
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def test_pruners_and_masks_on_the_vector_mlp():
    task = SparseParity(n_bits=6, k=2, n_train=30, n_test=20)
    m = HookedVectorMLP(VectorMLPConfig(d_in=6, widths=(12, 9), d_out=2, seed=1))
    total = sum(named_weights(m)[n].numel() for n in prunable_names(m))
    for method in ("magnitude", "random", "snip", "grasp", "synflow", "synflow_batch"):
        mask = prune(method, m, 0.6, task)
        assert sorted(mask) == prunable_names(m) and sum(int(v.sum()) for v in mask.values()) == round(0.4 * total)
    reg = PolynomialRegression(d=6, n_train=20, n_test=10)
    r = HookedVectorMLP(VectorMLPConfig(d_in=6, widths=(8,), d_out=1))
    snip = prune("snip", r, 0.5, reg)  # scored with the task's squared error
    assert sum(int(v.sum()) for v in snip.values()) == round(0.5 * sum(named_weights(r)[n].numel() for n in prunable_names(r)))
    a, b = magnitude_mask(m, 0.6), prune("random", m, 0.6, seed=3)
    assert jaccard_distance(a, a) == 0.0 and 0.0 < jaccard_distance(a, b) < 1.0


def test_ticket_rewind_norm_match_and_edge_popup(tmp_path):
    task = SparseParity(n_bits=8, k=2, n_train=40, n_test=30)
    cfg = gi.TrainConfig(epochs=20, lr=1e-2, eval_every=10, checkpoint_every=10, progress=False)
    model = HookedVectorMLP(VectorMLPConfig(d_in=8, widths=(16,), d_out=2, seed=2))
    init = {n: p.detach().clone() for n, p in named_weights(model).items()}
    gi.train(model, task, cfg, out_dir=tmp_path / "base")
    run = gi.load_run(tmp_path / "base")
    assert run.task == task and run.model_config == model.cfg and run.checkpoint_epochs == [0, 10, 20]
    rewound = rewind(run)
    assert all(torch.equal(named_weights(rewound)[n], init[n]) for n in init)
    ticket = grokking_ticket(tmp_path / "base", 20, 0.5, tmp_path / "ticket")
    assert ticket.row()["density"] == pytest.approx(0.5, abs=0.01) and ticket.history[-1]["epoch"] == 20
    pruned = [n for n, m in ticket.mask.items()]
    assert all(torch.count_nonzero(named_weights(ticket.model)[n][~ticket.mask[n]]) == 0 for n in pruned)
    control = norm_matched_dense(tmp_path / "base", ticket.mask, "l2", tmp_path / "l2")
    start = gi.load_run(tmp_path / "l2").weights_at(0)
    ticket_norm = sum(float((init[n].double() * ticket.mask[n]).square().sum()) for n in pruned)
    assert sum(float(start[n].double().square().sum()) for n in pruned) == pytest.approx(ticket_norm, rel=1e-5)
    assert control.info["scale"] < 1.0
    popup = edge_popup(tmp_path / "base", 0.5, tmp_path / "popup", epochs=10, eval_every=5, progress=False)
    assert popup.history[-1]["density"] == pytest.approx(0.5, abs=0.01) and sorted(popup.mask) == prunable_names(model)


def test_tickets_mlp_per_weight_init_scales():
    base = gi.MLPConfig(p=11, d_embed=16, d_hidden=8, seed=3)
    scaled = gi.MLPConfig(p=11, d_embed=16, d_hidden=8, seed=3, init_scales={"W_in": 3.0, "W_U": 0.5})
    a, b = gi.HookedMLP(base), gi.HookedMLP(scaled)
    assert torch.equal(a.W_E, b.W_E) and torch.equal(a.W_out, b.W_out)  # the same draws, rescaled
    assert torch.allclose(b.W_in, 3.0 * a.W_in) and torch.allclose(b.W_U, 0.5 * a.W_U)
    assert scaled.scale_of("W_E") == 1.0 and scaled.scale_of("W_in") == 3.0
    d = json.loads(json.dumps(config_to_dict(scaled)))
    assert d["init_scales"] == {"W_in": 3.0, "W_U": 0.5} and config_from_dict(d) == scaled and hash(scaled) == hash(config_from_dict(d))
    assert _equal(build_model(config_from_dict(d)), b)
    with pytest.raises(gi.GrokinterpError, match="W_hidden"):
        gi.MLPConfig(p=11, init_scales={"W_hidden": 1.0})
    with pytest.raises(gi.GrokinterpError, match="init_scales"):
        gi.MLPConfig(p=11, init_scales={"W_E": 0.0})
