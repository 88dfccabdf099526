"""Grokking and grokking tickets beyond modular arithmetic, on small fast settings: on each task
on vectors the dense base run memorises before it generalises (t_mem < t_gen, both reached), and
its grokking ticket (the magnitude mask of the generalised run, rewound to the initial weights and
retrained with the base run's settings) generalises earlier than the base run.

The settings are this test's own, chosen to grok in seconds on one core (small data, weight decay,
an enlarged init for the images and the regression as in Omnigrok); the papers' set-ups are
:data:`grokinterp.tasks.presets.PAPER_PRESETS`.
"""

import pytest

import grokinterp as gi
from grokinterp.models import HookedVectorMLP, VectorMLPConfig
from grokinterp.tasks import ImageClassification, PolynomialRegression, SparseParity

CASES = {
    "sparse_parity": (
        SparseParity(n_bits=12, k=3, n_train=300, n_test=500),
        VectorMLPConfig(d_in=12, widths=(64,), d_out=2),
        gi.TrainConfig(epochs=2000, lr=1e-2, weight_decay=1.0, eval_every=10, checkpoint_every=100, stop_at_test_acc=0.99,
                       progress=False),
    ),
    "polynomial_regression": (
        PolynomialRegression(d=40, n_train=300, n_test=300),
        VectorMLPConfig(d_in=40, widths=(48,), d_out=1, act="quadratic", init_scale=2.0),
        gi.TrainConfig(epochs=600, lr=1e-2, weight_decay=1.0, eval_every=10, checkpoint_every=100, progress=False),
    ),
    "image_classification": (
        ImageClassification(n_train=500),
        VectorMLPConfig(d_in=64, widths=(128, 128), d_out=10, init_scale=3.0),
        gi.TrainConfig(epochs=700, lr=1e-3, weight_decay=1.0, eval_every=10, checkpoint_every=100, stop_at_test_acc=0.97,
                       progress=False),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_base_groks_and_its_ticket_generalises_earlier(tmp_path, name):
    task, model_cfg, train_cfg = CASES[name]
    base = gi.train(HookedVectorMLP(model_cfg), task, train_cfg, out_dir=tmp_path / "base")
    t_mem, t_gen = base.times.t_mem, base.times.t_gen
    assert t_mem is not None and t_gen is not None and t_mem < t_gen, base.times
    ticket = gi.grokking_ticket(tmp_path / "base", None, 0.6, tmp_path / "ticket")
    assert ticket.ticket_epoch >= t_gen  # the mask of the generalised run
    assert ticket.times.t_gen is not None and ticket.times.t_gen < t_gen, (base.times, ticket.times)
