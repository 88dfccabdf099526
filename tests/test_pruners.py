"""Pruners: exact densities on both hooked models, and scores against closed forms on tiny networks."""

import pytest
import torch
from torch import nn

import grokinterp as gi
from grokinterp.models import TransformerConfig, make_transformer, named_weights, prunable_names
from grokinterp.tickets import (
    PRUNERS,
    grasp_scores,
    layer_density,
    magnitude_mask,
    magnitude_scores,
    prune,
    random_mask,
    snip_scores,
    synflow_batch_mask,
    synflow_mask,
    synflow_scores,
)
from grokinterp.tickets.select import n_keep

TINY_TRANSFORMER = TransformerConfig(p=11, n_heads=1, d_model=16, d_head=16, d_mlp=16, eq_token=True)


def _expected_kept(model, prune_ratio, scope):
    sizes = [named_weights(model)[n].numel() for n in prunable_names(model)]
    if scope == "global":
        return n_keep(sum(sizes), prune_ratio)
    return sum(n_keep(s, prune_ratio) for s in sizes)


@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("prune_ratio", [0.0, 0.6, 0.93])
def test_exact_density_on_the_mlp(method, scope, prune_ratio, fast_task, fast_mlp):
    kwargs = {"rounds": 10} if method == "synflow" else {}
    mask = prune(method, fast_mlp, prune_ratio, fast_task, scope, **kwargs)
    assert list(mask) == prunable_names(fast_mlp) == ["W_E", "W_in", "W_out", "W_U"]
    assert all(m.dtype == torch.bool for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == _expected_kept(fast_mlp, prune_ratio, scope)
    if scope == "layer":
        assert all(int(m.sum()) == n_keep(m.numel(), prune_ratio) for m in mask.values())


@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_exact_density_on_the_transformer(method, scope):
    model = make_transformer(TINY_TRANSFORMER)
    task = gi.ModularArithmetic(11, frac_train=0.5)
    kwargs = {"rounds": 5} if method == "synflow" else {}
    mask = prune(method, model, 0.7, task, scope, **kwargs)
    names = prunable_names(model)
    assert list(mask) == names and "embed.weight" in names and "unembed.weight" in names
    assert not any(n.endswith(".bias") for n in mask)
    assert sum(int(m.sum()) for m in mask.values()) == _expected_kept(model, 0.7, scope)
    gi.tickets.check_mask(model, mask)  # names and shapes match the parameters


def test_magnitude_keeps_the_largest_weights_and_works_on_a_state_dict(fast_mlp):
    state = {n: p.detach().clone() for n, p in named_weights(fast_mlp).items()}
    mask = magnitude_mask(state, 0.6)
    assert all(torch.equal(mask[n], m) for n, m in magnitude_mask(fast_mlp, 0.6).items())
    kept = torch.cat([state[n].abs()[mask[n]] for n in mask])
    pruned = torch.cat([state[n].abs()[~mask[n]] for n in mask])
    assert kept.min() >= pruned.max()


def test_include_selects_tensors(fast_mlp):
    mask = magnitude_mask(fast_mlp, 0.5, include=["W_in"])
    assert list(mask) == ["W_in"] and int(mask["W_in"].sum()) == n_keep(fast_mlp.W_in.numel(), 0.5)
    mask = random_mask(fast_mlp, 0.5, include=lambda name: name.startswith("W_"))
    assert list(mask) == ["W_E", "W_in", "W_out", "W_U"]
    with pytest.raises(gi.MaskError, match="not tensors"):
        magnitude_mask(fast_mlp, 0.5, include=["W_nope"])


def test_random_mask_is_seeded(fast_mlp):
    a, b, c = (random_mask(fast_mlp, 0.5, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)
    assert abs(layer_density(a)["W_in"] - 0.5) < 0.05


def test_data_pruners_need_a_model_and_data(fast_mlp, fast_task):
    state = {n: p.detach() for n, p in named_weights(fast_mlp).items()}
    with pytest.raises(gi.GrokinterpError, match="forward pass"):
        prune("snip", state, 0.5, fast_task)
    with pytest.raises(gi.GrokinterpError, match="needs data"):
        prune("grasp", fast_mlp, 0.5)
    with pytest.raises(gi.GrokinterpError, match="unknown pruning method"):
        prune("lottery", fast_mlp, 0.5)


def test_scores_are_taken_at_the_weights_passed(fast_mlp, fast_task):
    other = gi.HookedMLP(gi.MLPConfig(**{**fast_mlp.cfg.to_dict(), "seed": 7}))
    weights = {n: p.detach() for n, p in named_weights(other).items()}
    a = snip_scores(fast_mlp, fast_task, weights=weights)
    b = snip_scores(other, fast_task)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert all(torch.equal(magnitude_scores(fast_mlp, weights=weights)[n], weights[n].double().abs()) for n in a)


# ------------------------------------------------------------------ closed forms on a tiny network


class TwoLayer(nn.Module):
    """logits = W2 relu(W1 x) (nn.Linear layout: W1 (4, 3), W2 (2, 4)), no biases."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.l1 = nn.Linear(3, 4, bias=False)
        self.l2 = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.randn(4, 3, generator=g))
            self.l2.weight.copy_(torch.randn(2, 4, generator=g))

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


def _tiny():
    net = TwoLayer()
    x = torch.tensor([[1.0, -0.5, 2.0], [0.3, 1.2, -0.7], [-1.1, 0.4, 0.9]])
    y = torch.tensor([0, 1, 1])
    W1, W2 = net.l1.weight.detach().double(), net.l2.weight.detach().double()
    return net, x.double(), y, W1, W2


def _forward_terms(W1, W2, x, y, T):
    """Per-sample h, relu derivative D, softmax p and r = dL_b/dz_b (for logits / T)."""
    pre = x @ W1.T  # (B, 4)
    D = (pre > 0).double()
    h = pre * D
    z = h @ W2.T / T
    p = torch.softmax(z, dim=1)
    onehot = torch.nn.functional.one_hot(y, 2).double()
    r = (p - onehot) / T
    return h, D, p, r


def _grads(W1, W2, x, y, T):
    B = x.shape[0]
    h, D, p, r = _forward_terms(W1, W2, x, y, T)
    g2 = r.T @ h / B
    g1 = ((r @ W2) * D).T @ x / B
    return g1, g2


def _hessian_times(W1, W2, x, y, T, V1, V2):
    """Exact H v for v = (V1, V2): derivative of the closed-form gradient along v."""
    B = x.shape[0]
    h, D, p, r = _forward_terms(W1, W2, x, y, T)
    dh = (x @ V1.T) * D
    dz = h @ V2.T + dh @ W2.T
    J = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    dr = torch.einsum("bij,bj->bi", J, dz) / T**2
    dg2 = (dr.T @ h + r.T @ dh) / B
    dg1 = (((r @ V2) + (dr @ W2)) * D).T @ x / B
    return dg1, dg2


def test_snip_scores_match_the_closed_form():
    net, x, y, W1, W2 = _tiny()
    g1, g2 = _grads(W1, W2, x, y, 1.0)
    scores = snip_scores(net, (x.float(), y))
    torch.testing.assert_close(scores["l1.weight"], (g1 * W1).abs(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(scores["l2.weight"], (g2 * W2).abs(), rtol=1e-6, atol=1e-9)


def test_grasp_scores_match_the_closed_form():
    net, x, y, W1, W2 = _tiny()
    T = 200.0
    g1, g2 = _grads(W1, W2, x, y, T)
    hg1, hg2 = _hessian_times(W1, W2, x, y, T, g1, g2)
    scores = grasp_scores(net, (x.float(), y), temperature=T)
    torch.testing.assert_close(scores["l1.weight"], W1 * hg1, rtol=1e-6, atol=1e-15)
    torch.testing.assert_close(scores["l2.weight"], W2 * hg2, rtol=1e-6, atol=1e-15)
    # grasp keeps the largest signed score
    mask = gi.tickets.grasp_mask(net, 0.5, (x.float(), y))
    flat = torch.cat([(W1 * hg1).reshape(-1), (W2 * hg2).reshape(-1)])
    kept = torch.cat([mask["l1.weight"].reshape(-1), mask["l2.weight"].reshape(-1)])
    assert flat[kept].min() >= flat[~kept].max()


def test_synflow_scores_match_the_closed_form():
    net, _, _, W1, W2 = _tiny()
    A1, A2 = W1.abs(), W2.abs()
    # R = 1ᵀ|W2||W1|1: score(W1_ij) = |W1_ij| Σ_k |W2_ki|, score(W2_ki) = |W2_ki| Σ_j |W1_ij|
    expected1 = A1 * A2.sum(0)[:, None]
    expected2 = A2 * A1.sum(1)[None, :]
    scores = synflow_scores(net)
    torch.testing.assert_close(scores["l1.weight"], expected1)
    torch.testing.assert_close(scores["l2.weight"], expected2)
    # with a mask, pruned weights count as zero
    mask = {"l1.weight": torch.ones(4, 3, dtype=torch.bool), "l2.weight": torch.tensor([[1, 0, 1, 1], [1, 1, 1, 0]]).bool()}
    scores = synflow_scores(net, mask=mask)
    A2m = A2 * mask["l2.weight"]
    torch.testing.assert_close(scores["l1.weight"], A1 * A2m.sum(0)[:, None])
    torch.testing.assert_close(scores["l2.weight"], A2m * A1.sum(1)[None, :])


def test_synflow_on_the_mlp_uses_the_all_ones_token_input(fast_mlp):
    W_E, W_in, W_out, W_U = (fast_mlp.get_parameter(n).detach().double().abs() for n in ("W_E", "W_in", "W_out", "W_U"))
    # all-ones input for both operands: x = 2 · 1ᵀ|W_E|; R = x |W_in| |W_out| |W_U| 1 (ReLU acts as identity)
    u = W_U.sum(1)  # d_embed
    v = W_out @ u  # d_hidden
    x = 2 * W_E.sum(0)
    expected_in = W_in * x[:, None] * v[None, :]
    scores = synflow_scores(fast_mlp)
    torch.testing.assert_close(scores["W_in"], expected_in)
    expected_E = W_E * 2 * (W_in @ v)[None, :]
    torch.testing.assert_close(scores["W_E"], expected_E)


def test_synflow_avoids_the_layer_collapse_of_magnitude_pruning():
    torch.manual_seed(0)
    layers = [nn.Linear(4, 4, bias=False) for _ in range(6)]
    net = nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])
    with torch.no_grad():
        layers[3].weight.mul_(0.01)  # a layer of tiny weights
    names = [n for n, _ in net.named_parameters()]
    magnitude = magnitude_mask(net, 0.8)
    assert int(magnitude[names[3]].sum()) == 0  # magnitude pruning removes that whole layer
    synflow = synflow_mask(net, 0.8)
    assert sum(int(m.sum()) for m in synflow.values()) == n_keep(96, 0.8)
    assert all(int(m.sum()) > 0 for m in synflow.values())
    # and the pruned network still connects input to output
    masked = {n: p.detach().abs() * synflow[n] for n, p in net.named_parameters()}
    assert torch.func.functional_call(net, masked, (torch.ones(1, 4),)).sum() > 0


def test_synflow_one_round_is_exact_and_bad_rounds_raise(fast_mlp):
    coarse = synflow_mask(fast_mlp, 0.5, rounds=1)
    assert sum(int(m.sum()) for m in coarse.values()) == n_keep(sum(m.numel() for m in coarse.values()), 0.5)
    with pytest.raises(gi.GrokinterpError, match="rounds"):
        synflow_mask(fast_mlp, 0.5, rounds=0)


def test_synflow_on_the_training_batch_is_the_closed_form_and_one_round_by_default():
    net, x, y, W1, W2 = _tiny()
    A1, A2 = W1.abs(), W2.abs()
    # R = Σ_b 1ᵀ |W2| relu(|W1| x_b): with D_b the ReLU gate of |W1| x_b,
    # ∂R/∂|W1|_ij = Σ_b (Σ_k |W2|_ki) D_bi x_bj, ∂R/∂|W2|_ki = Σ_b relu(|W1| x_b)_i
    pre = x @ A1.T
    D = (pre > 0).double()
    expected1 = (A1 * ((A2.sum(0)[None, :] * D).T @ x)).abs()
    expected2 = (A2 * (pre * D).sum(0)[None, :]).abs()
    scores = synflow_scores(net, data=(x, y))
    torch.testing.assert_close(scores["l1.weight"], expected1)
    torch.testing.assert_close(scores["l2.weight"], expected2)
    mask = synflow_batch_mask(net, 0.5, (x, y))
    expected = gi.tickets.mask_from_scores(scores, 0.5, "global")
    assert mask.keys() == expected.keys() and all(torch.equal(mask[n], expected[n]) for n in mask)
    with pytest.raises(gi.GrokinterpError, match="needs data"):
        prune("synflow_batch", net, 0.5)
    assert synflow_batch_mask is gi.tickets.PRUNERS["synflow_batch"]


def test_pruning_at_init_can_score_the_final_checkpoint_and_then_rewind(tmp_path, fast_task):
    cfg = gi.TrainConfig(epochs=40, lr=1e-2, eval_every=10, checkpoint_every=20, progress=False)
    gi.train(gi.HookedMLP(gi.MLPConfig(p=23, d_embed=32, d_hidden=16)), fast_task, cfg, tmp_path / "base")
    run = gi.load_run(tmp_path / "base")
    final = gi.tickets.pruned_at_init(run, "magnitude", 0.6, score_at="final", epochs=1)
    assert all(torch.equal(final.mask[n], m) for n, m in gi.tickets.ticket_mask(run, None, 0.6).items())
    at_init = gi.tickets.pruned_at_init(run, "magnitude", 0.6, tmp_path / "pai", epochs=1)
    assert any(not torch.equal(at_init.mask[n], m) for n, m in final.mask.items())
    assert gi.load_run(tmp_path / "pai").config["parent"]["method"] == "magnitude"
    with pytest.raises(gi.GrokinterpError, match="score_at"):
        gi.tickets.pruned_at_init(run, "magnitude", 0.6, score_at="end")
