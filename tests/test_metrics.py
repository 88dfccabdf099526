import math

import pytest
import torch

import grokinterp as gi
from grokinterp.metrics import accuracy, cross_entropy_f64, cross_entropy_relative, evaluate, split_scores, task_loss, weight_norms_of
from grokinterp.models import answer_logits, named_weights


def test_cross_entropy_is_float64_and_matches_the_closed_form():
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
    labels = torch.tensor([1, 0])
    expected = (math.log(3) + (-2.0 + math.log(math.exp(2) + 1 + math.exp(-1)))) / 2
    loss = cross_entropy_f64(logits, labels)
    assert loss.dtype == torch.float64 and float(loss) == pytest.approx(expected, rel=1e-12)
    # a loss below float32's resolution at the logits' scale survives (float32 gives 0 or 2e-6 here)
    tiny = cross_entropy_f64(torch.tensor([[16.0, 0.0]]), torch.tensor([0]))
    assert float(tiny) == pytest.approx(math.log1p(math.exp(-16)), rel=1e-6)
    assert accuracy(logits, labels) == 0.5


def test_evaluate_is_loss_accuracy_per_split_and_the_norms(fast_task, fast_mlp):
    row = evaluate(lambda x: answer_logits(fast_mlp, x), fast_task, named_weights(fast_mlp))
    for split in ("train", "test"):
        logits = fast_mlp(fast_task.inputs(split)).detach()
        loss, acc = split_scores(fast_task, logits, fast_task.labels(split))
        assert row[f"{split}_loss"] == pytest.approx(loss, rel=1e-5) and row[f"{split}_acc"] == acc
        assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits.double(), fast_task.labels(split))))
    ws = [w.detach() for w in named_weights(fast_mlp).values()]
    assert row["l1_norm"] == pytest.approx(sum(float(w.abs().sum()) for w in ws))
    assert row == {**row, **weight_norms_of(named_weights(fast_mlp))}


def test_a_task_names_its_loss():
    class Other(gi.ModularArithmetic):
        loss = "hinge"

    with pytest.raises(gi.GrokinterpError, match="unknown loss 'hinge'"):
        task_loss(Other(5), torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))


def _f64_loss_and_grad(logits, labels):
    z = logits.detach().double().requires_grad_()
    loss = torch.nn.functional.cross_entropy(z, labels)
    loss.backward()
    return loss.detach(), z.grad


def test_the_training_loss_matches_float64_on_ordinary_logits():
    g = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(300, 13, generator=g)).requires_grad_()
    labels = torch.randint(0, 13, (300,), generator=g)
    loss = cross_entropy_relative(logits, labels)
    loss.backward()
    ref_loss, ref_grad = _f64_loss_and_grad(logits, labels)
    assert loss.dtype == torch.float32 and float(loss.detach()) == pytest.approx(float(ref_loss), rel=1e-6)
    torch.testing.assert_close(logits.grad.double(), ref_grad, rtol=1e-5, atol=1e-9)


def test_the_training_loss_keeps_tiny_losses_and_their_gradients():
    # the correct class leads by 40: loss log1p(2 e^-40) ~ 8.5e-18; float32's naive log-softmax gives a loss of 0
    # and no gradient on the correct logit (softmax_y - 1 rounds to 0)
    logits = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0])
    loss = cross_entropy_relative(logits, labels)
    loss.backward()
    e = math.exp(-40)
    assert float(loss.detach()) == pytest.approx(math.log1p(2 * e), rel=1e-6)
    assert logits.grad[0].tolist() == pytest.approx([-2 * e / (1 + 2 * e), e / (1 + 2 * e), e / (1 + 2 * e)], rel=1e-6)
    naive = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    naive_loss = torch.nn.functional.cross_entropy(naive, labels)
    naive_loss.backward()
    assert float(naive_loss.detach()) == 0.0 and float(naive.grad[0, 0]) == 0.0  # what the relative form avoids
    # and a wrong class that leads by 50: the loss is about 50, not rounded
    wrong = cross_entropy_relative(torch.tensor([[0.0, 50.0]]), labels)
    assert float(wrong) == pytest.approx(50 + math.log1p(math.exp(-50)), rel=1e-7)


def test_the_training_loss_of_stacked_models_is_each_models_own_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    logits = (3 * torch.randn(5, 200, 17, generator=g)).requires_grad_()
    labels = torch.randint(0, 17, (200,), generator=g)
    losses = cross_entropy_relative(logits, labels)
    losses.sum().backward()
    assert losses.shape == (5,)
    for i in range(5):
        alone = logits[i].detach().clone().requires_grad_()
        loss = cross_entropy_relative(alone, labels)
        loss.backward()
        assert torch.equal(loss.detach(), losses[i].detach()) and torch.equal(alone.grad, logits.grad[i])


def test_accuracy_reads_argmax_with_its_tie_and_nan_rule():
    """Ties go to the first largest logit and a NaN counts as largest, as argmax reads them."""
    logits = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, float("nan"), 5.0], [float("inf"), 1.0, float("inf")]])
    assert accuracy(logits, torch.tensor([1, 0, 1, 0])) == 1.0
    assert accuracy(logits, torch.tensor([2, 1, 2, 2])) == 0.0
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        z = torch.randint(-2, 3, (200, 17), generator=g).float()  # many ties
        z[torch.rand(200, 17, generator=g) < 0.02] = float("nan")
        y = torch.randint(0, 17, (200,), generator=g)
        assert accuracy(z, y) == float((z.argmax(-1) == y).double().mean())
