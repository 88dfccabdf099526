import math

import pytest
import torch

import grokinterp as gi
from grokinterp.metrics import accuracy, cross_entropy_f64, evaluate, split_scores, task_loss, weight_norms_of
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
