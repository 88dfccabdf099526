"""TransformerLens's cache and hook idioms on both models, and the answer-position loss."""

import pytest
import torch

import grokinterp as gi
from grokinterp.models import answer_loss, as_weights, to_tokens
from grokinterp.metrics import cross_entropy_f64


def _models():
    return [
        (gi.HookedMLP(gi.MLPConfig(23, d_embed=24, d_hidden=12, seed=1)), gi.ModularArithmetic(23, frac_train=0.5)),
        (gi.make_transformer(gi.TransformerConfig(p=23, d_model=16, d_head=8, n_heads=2, d_mlp=20, seed=1)),
         gi.ModularArithmetic(23, frac_train=0.5)),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["mlp", "transformer"])
def test_cache_shorthand_and_hooks_by_name(index):
    model, task = _models()[index]
    tokens = task.tokens("test")[:8]
    logits, cache = model.run_with_cache(tokens)
    post = cache["post", 0]
    assert post is cache["blocks.0.mlp.hook_post"]
    torch.testing.assert_close(post, torch.relu(cache["pre", 0]))
    assert cache["embed"].shape[:2] == (8, tokens.shape[1] if index else 2)
    # the hooked neurons are those of the hook-free forward the analyses use
    acts = as_weights(model).forward(task.test_inputs[:8])
    torch.testing.assert_close(post if index == 0 else post[:, -1], acts.post, atol=1e-5, rtol=1e-5)

    # ablating every neuron by hook name leaves only the paths around the MLP
    zero = lambda t, hook: torch.zeros_like(t)  # noqa: E731
    ablated = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_post", zero)])
    if index == 0:
        assert torch.count_nonzero(ablated) == 0
    else:
        assert not torch.allclose(ablated, logits)
    # a hook that doubles the neurons changes the logits; run_with_hooks leaves no hook behind
    doubled = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_post", lambda t, hook: 2 * t)])
    assert not torch.allclose(doubled, logits)
    torch.testing.assert_close(model(tokens), logits)


def test_mlp_reads_pairs_and_eq_tokens_alike():
    model, task = _models()[0]
    pairs, tokens = task.test_inputs[:5], task.tokens("test")[:5]
    assert tokens.shape[1] == 3
    torch.testing.assert_close(model(pairs), model(tokens))
    with pytest.raises(gi.GrokinterpError, match=r"\(batch, 2\)"):
        model(torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(gi.GrokinterpError, match="= token"):
        model(torch.tensor([[1, 2, 3]]))


def test_language_model_loss_is_not_the_task_loss_and_answer_loss_is():
    model, task = _models()[1]
    tokens, labels = task.tokens("train"), task.labels("train")
    # TransformerLens's return_type="loss" scores every next token; = (id p) is no answer: it fails
    with pytest.raises((IndexError, RuntimeError)):
        model(tokens, return_type="loss")
    expected = cross_entropy_f64(model(tokens)[:, -1].detach(), labels)
    torch.testing.assert_close(answer_loss(model, tokens, labels).detach(), expected)
    torch.testing.assert_close(answer_loss(model, task, split="train").detach(), expected)
    # the task's own loss of the hook-free evaluation path, on the same split
    torch.testing.assert_close(expected, cross_entropy_f64(gi.models.answer_logits(model, task.train_inputs).detach(), labels),
                               atol=1e-5, rtol=1e-5)
    # hooks act on it, and it is differentiable
    with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", lambda t, hook: torch.zeros_like(t))]):
        ablated = answer_loss(model, task)
    assert float(ablated.detach()) != pytest.approx(float(expected))
    answer_loss(model, task).backward()
    assert model.W_E.grad is not None and model.W_E.grad.abs().sum() > 0
    with pytest.raises(gi.GrokinterpError, match="labels"):
        answer_loss(model, tokens)


def test_answer_loss_of_the_mlp_and_to_tokens():
    model, task = _models()[0]
    expected = cross_entropy_f64(model(task.test_inputs).detach(), task.test_labels)
    torch.testing.assert_close(answer_loss(model, task, split="test").detach(), expected)
    torch.testing.assert_close(answer_loss(model, task.tokens("test"), task.test_labels).detach(), expected)
    tf = _models()[1][0]
    tokens = to_tokens(tf, task.test_inputs[:3])
    assert tokens[:, 2].tolist() == [23] * 3
    assert torch.equal(to_tokens(tf, tokens), tokens)
    with pytest.raises(gi.GrokinterpError, match="pairs"):
        to_tokens(tf, torch.zeros(3, dtype=torch.long))
