"""Weight views and the analysis forward pass: same function as the models, loud on bad input."""

import pytest
import torch

import grokinterp as gi
from grokinterp.errors import GrokinterpError, MaskError
from grokinterp.fourier import key_frequencies
from grokinterp.models.gather import gather_rows
from grokinterp.models import ModelWeights, as_weights, grid_activations, named_weights, to_tokens

from _planted import hooked_logits_and_post


def _randomise_biases(model):
    with torch.no_grad():
        for name, p in named_weights(model).items():
            if name.endswith(".bias"):
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return model


@pytest.mark.parametrize(
    "cfg",
    [
        gi.TransformerConfig(p=13, n_heads=2, d_model=16, d_head=8, d_mlp=24, seed=1),
        gi.TransformerConfig(p=11, n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, act="gelu", seed=2),
        gi.TransformerConfig(p=11, n_heads=1, d_model=16, d_head=16, d_mlp=16, eq_token=False, pos_embed=False),
    ],
)
def test_grid_forward_equals_the_transformer(cfg):
    model = _randomise_biases(gi.make_transformer(cfg))
    grid = gi.ModularArithmetic(cfg.p).grid_inputs
    acts = grid_activations(model)
    logits, post = hooked_logits_and_post(model, grid)
    torch.testing.assert_close(acts.logits, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(acts.post, post, atol=1e-5, rtol=1e-4)
    _, cache = model.run_with_cache(to_tokens(model, grid))
    for layer in range(cfg.n_layers):
        torch.testing.assert_close(acts.pattern[:, layer], cache["pattern", layer][:, :, -1], atol=1e-6, rtol=1e-5)
    resid = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"][:, -1]
    torch.testing.assert_close(acts.resid, resid, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("act", ["relu", "gelu", "quadratic"])
def test_grid_forward_equals_the_mlp(act):
    model = gi.HookedMLP(gi.MLPConfig(11, d_embed=20, d_hidden=7, act=act, seed=4))
    grid = gi.ModularArithmetic(11).grid_inputs
    acts = grid_activations(model)
    _, cache = model.run_with_cache(grid)
    torch.testing.assert_close(acts.logits, cache["unembed.hook_out"])
    torch.testing.assert_close(acts.post, cache["post", 0])
    torch.testing.assert_close(acts.resid, cache["resid_post", 0])
    assert acts.pattern is None


def test_matrices_in_x_at_w_orientation():
    model = gi.make_transformer(gi.TransformerConfig(p=13, n_heads=2, d_model=16, d_head=8, d_mlp=24))
    w = as_weights(model)
    torch.testing.assert_close(w.W_E, model.W_E[:13].detach())
    torch.testing.assert_close(w.W_U, model.W_U.detach())
    torch.testing.assert_close(w.W_in, model.blocks[0].mlp.W_in.detach())
    torch.testing.assert_close(w.W_out, model.blocks[0].mlp.W_out.detach())
    torch.testing.assert_close(w.W_V(0), model.blocks[0].attn.W_V.detach())
    torch.testing.assert_close(w.W_O(0), model.blocks[0].attn.W_O.detach())
    torch.testing.assert_close(w.W_L, (model.blocks[0].mlp.W_out @ model.W_U).detach())
    mlp = as_weights(gi.HookedMLP(gi.MLPConfig(7, d_embed=5, d_hidden=3)))
    assert mlp.kind == "mlp" and mlp.d_mlp == 3
    with pytest.raises(GrokinterpError, match="only for transformers"):
        mlp.W_V(0)


def test_weights_from_a_checkpoint_and_masks(tmp_path):
    model = gi.HookedMLP(gi.MLPConfig(7, d_embed=5, d_hidden=3))
    task = gi.ModularArithmetic(7, frac_train=0.5)
    result = gi.train(model, task, gi.TrainConfig(epochs=4, checkpoint_every=2, progress=False), out_dir=tmp_path / "r")
    run = gi.load_run(result.run_dir)
    w = run.model_weights(2)
    torch.testing.assert_close(grid_activations(w).logits, grid_activations(run.model_at(2)).logits)
    tensors = {n: t.clone() for n, t in named_weights(model).items()}
    with pytest.raises(GrokinterpError, match="lack"):
        ModelWeights(model.cfg, {k: v for k, v in tensors.items() if k != "W_U"})
    with pytest.raises(GrokinterpError, match="shape"):
        ModelWeights(model.cfg, {**tensors, "W_in": torch.zeros(5, 4)})
    mask = {"W_out": torch.zeros(3, 5, dtype=torch.bool)}
    masked = as_weights(model, mask)
    assert masked.W_out.abs().sum() == 0 and masked.W_in.abs().sum() > 0
    assert grid_activations(masked).logits.abs().max() == 0
    with pytest.raises(MaskError, match="shape"):
        as_weights(model, {"W_out": torch.zeros(2, 2, dtype=torch.bool)})
    with pytest.raises(MaskError, match="not parameters"):
        as_weights(model, {"W_x": torch.zeros(2, dtype=torch.bool)})
    with pytest.raises(GrokinterpError, match="by keyword"):
        key_frequencies(model, "embed")


@pytest.mark.parametrize("shape", [(500,), (3, 400)])
def test_gather_rows_matches_embedding_values_and_gradients_bit_for_bit(shape):
    """gather_rows is F.embedding's forward, and its index_add_ backward adds the same rows in the
    same order as embedding's dense backward (repeated rows included)."""
    g = torch.Generator().manual_seed(0)
    table = torch.randn(13, 7, generator=g, requires_grad=True)
    index = torch.randint(0, 13, shape, generator=g)
    upstream = torch.randn(*shape, 7, generator=g)
    ours = gather_rows(table, index)
    theirs = torch.nn.functional.embedding(index, table)
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours, table, upstream)
    (g_theirs,) = torch.autograd.grad(theirs, table, upstream)
    assert torch.equal(g_ours, g_theirs)
    # and the gradient is the sum of the upstream rows of each index (a planted count)
    assert torch.allclose(g_ours.sum(0), upstream.reshape(-1, 7).sum(0), atol=1e-4)
