"""Circuit checks, restricted / excluded loss, Gini, norms, attention and progress measures:
planted answers, closed forms, and grokked models end to end."""

import math

import pytest
import torch

import grokinterp as gi
from grokinterp.circuits import (
    FrequencyVerdict,
    attention_summary,
    excluded_loss,
    fourier_gini,
    gini,
    grid_activations,
    logit_fit,
    progress_measures,
    restricted_loss,
    trig_identity_check,
    weight_norms,
)
from grokinterp.errors import GrokinterpError
from grokinterp.fourier import fft1d, get_basis, key_frequencies, neuron_frequencies
from grokinterp.circuits.progress import select_epochs

from _planted import analytic_mlp

P, S = 31, [1, 2, 4, 8, 15]


@pytest.fixture(scope="module")
def analytic():
    return analytic_mlp(P, S), gi.ModularArithmetic(P, frac_train=0.3)


@pytest.fixture(scope="module")
def grokked_mlp_run(tmp_path_factory):
    """The fast-grokking MLP of conftest (p = 23), with a checkpoint every 20 epochs."""
    torch.set_num_threads(1)
    task = gi.ModularArithmetic(23, frac_train=0.5, seed=0)
    model = gi.HookedMLP(gi.MLPConfig(23, d_embed=128, d_hidden=48, seed=0))
    cfg = gi.TrainConfig(
        epochs=3000, lr=1e-2, weight_decay=1.0, eval_every=20, checkpoint_every=20, stop_at_test_acc=0.99,
        progress=False,
    )
    result = gi.train(model, task, cfg, out_dir=tmp_path_factory.mktemp("mlp") / "run")
    assert result.history[-1]["test_acc"] > 0.99
    return model, task, result


@pytest.fixture(scope="module")
def grokked_transformer_run(tmp_path_factory):
    """A small one-layer transformer that groks p = 31 addition in ~550 epochs (a few seconds)."""
    torch.set_num_threads(1)
    task = gi.ModularArithmetic(31, frac_train=0.7, seed=0)
    model = gi.make_transformer(gi.TransformerConfig(p=31, n_heads=2, d_model=32, d_head=16, d_mlp=128, seed=0))
    cfg = gi.TrainConfig(
        epochs=3000, lr=1e-2, weight_decay=1.0, eval_every=50, checkpoint_every=100, progress=False,
    )
    # past generalisation until the train loss is small too (it is ~2e-3 when test accuracy first passes 0.99)
    done = lambda epoch, row, model: row["test_acc"] > 0.99 and row["train_loss"] < 5e-4  # noqa: E731
    result = gi.train(model, task, cfg, out_dir=tmp_path_factory.mktemp("transformer") / "run", callbacks=[done])
    assert result.history[-1]["test_acc"] > 0.99
    return model, task, result


@pytest.fixture(scope="module")
def grokked_transformer(grokked_transformer_run):
    return grokked_transformer_run[:2]


# ---------------------------------------------------------------------------- planted: trig checks
def test_logit_fit_of_the_analytic_network_is_exact(analytic):
    model, task = analytic
    fit = logit_fit(model, task)
    assert fit.freqs == S
    torch.testing.assert_close(fit.alpha, torch.ones(len(S)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fit.per_frequency, torch.full((len(S),), 1 / len(S)), atol=1e-5, rtol=0)
    assert fit.fraction_explained == pytest.approx(1.0, abs=1e-6)
    # a frequency the network does not use gets a zero coefficient
    other = logit_fit(model, task, freqs=[3, 4])
    assert abs(float(other.alpha[0])) < 1e-5 and float(other.alpha[1]) == pytest.approx(1.0, abs=1e-4)


def test_logit_fit_recovers_planted_coefficients():
    model = analytic_mlp(P, S)
    alphas = torch.tensor([3.0, 0.5, 1.0, 2.0, 0.25])
    with torch.no_grad():
        for i, a in enumerate(alphas):  # unembedding rows cos k, sin k scaled by α_k
            model.W_U[2 * i : 2 * i + 2] *= a
    fit = logit_fit(model, freqs=S)
    torch.testing.assert_close(fit.alpha, alphas, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fit.per_frequency, alphas.square() / alphas.square().sum(), atol=1e-5, rtol=0)
    assert fit.fraction_explained == pytest.approx(1.0, abs=1e-6)


def test_trig_identity_check_on_the_analytic_network(analytic):
    model, task = analytic
    check = trig_identity_check(model, task)
    assert check.freqs == S and check.supported
    assert check.residual_fraction == pytest.approx(1.0, abs=1e-6)
    assert check.logit_fraction == pytest.approx(1.0, abs=1e-6)
    for v in check.verdicts:
        assert isinstance(v, FrequencyVerdict) and v.supported and v.reason == ""
        assert v.alpha == pytest.approx(1.0, abs=1e-4)
        assert v.form_fit == pytest.approx(1.0, abs=1e-5)
        assert v.logit_fraction == pytest.approx(1 / len(S), abs=1e-5)
        assert v.residual_fraction == pytest.approx(1 / len(S), abs=1e-5)
        assert v.n_neurons == 4 and v.neuron_fraction > 0.98
    frame = check.frame()
    assert list(frame["freq"]) == S and frame["supported"].all()


def test_trig_identity_check_flags_a_sign_flip():
    model = analytic_mlp(P, S)
    with torch.no_grad():
        model.W_U[2:4] *= -1  # frequency 2 now votes against the answer
    check = trig_identity_check(model, freqs=S)
    bad = {v.freq: v for v in check.verdicts}[2]
    assert not bad.supported and "alpha" in bad.reason and bad.alpha == pytest.approx(-1.0, abs=1e-4)
    assert not check.supported


# ----------------------------------------------------------------------- planted: ablation losses
def test_restricted_and_excluded_loss_on_the_analytic_network(analytic):
    model, task = analytic
    r, e = restricted_loss(model, task), excluded_loss(model, task)
    assert r.freqs == e.freqs == S and r.split == "train"
    # logits are a function of a+b in the key frequencies only: restricting changes nothing
    assert r.loss <= r.full_loss + 1e-6
    assert r.loss == pytest.approx(r.full_loss, abs=1e-6)
    # removing them leaves constant logits: chance level, ln p
    assert e.loss == pytest.approx(math.log(P), abs=1e-4)
    assert e.loss > 5 * e.full_loss
    for k in S:
        assert r.per_frequency[k] > r.full_loss + 1.0  # one frequency alone is not enough
        assert e.per_frequency[k] > e.full_loss + 0.1  # and each one matters
        assert e.per_frequency[k] < e.loss


def test_ablation_closed_forms(analytic):
    model, task = analytic
    assert restricted_loss(model, task, freqs=[]).loss == pytest.approx(math.log(P), abs=1e-4)
    none = excluded_loss(model, task, freqs=[])
    assert none.loss == pytest.approx(none.full_loss, abs=1e-9)
    assert excluded_loss(model, task, freqs=[3, 5]).loss == pytest.approx(none.full_loss, abs=1e-5)
    logits = model(task.train_inputs).detach()
    assert none.full_loss == pytest.approx(float(gi.metrics.cross_entropy_f64(logits, task.train_labels)), rel=1e-6)
    test = restricted_loss(model, task, split="test")
    assert test.split == "test" and test.loss == pytest.approx(test.full_loss, abs=1e-6)


def test_discrete_log_network_in_the_multiplicative_basis():
    p, freqs = 23, [2, 4, 6, 8, 10]
    model = analytic_mlp(p, freqs, multiplicative=True)
    task = gi.ModularArithmetic(p, op="mul", frac_train=0.5)
    fit = logit_fit(model, task)
    assert fit.freqs == freqs and fit.fraction_explained == pytest.approx(1.0, abs=1e-6)
    r, e = restricted_loss(model, task), excluded_loss(model, task)
    assert r.loss == pytest.approx(r.full_loss, abs=1e-6)
    assert e.loss > r.full_loss + 1.0
    check = trig_identity_check(model, task)
    assert check.supported and check.basis.kind == "multiplicative"
    # read in the additive basis the same network has no a+b structure
    assert logit_fit(model, freqs=[1, 2, 3]).fraction_explained < 0.2


def test_ablation_errors(analytic):
    model, task = analytic
    with pytest.raises(GrokinterpError, match="need the task"):
        restricted_loss(model, None)
    with pytest.raises(GrokinterpError, match="out of range"):
        excluded_loss(model, task, freqs=[16])
    with pytest.raises(GrokinterpError, match="ops"):
        restricted_loss(model, gi.ModularArithmetic(P, op="x2+y2"), freqs=[1])
    with pytest.raises(GrokinterpError, match="p=31"):
        restricted_loss(model, gi.ModularArithmetic(29))
    with pytest.raises(GrokinterpError, match="split"):
        restricted_loss(model, task, split="valid")


# -------------------------------------------------------------------------------- gini and norms
def test_gini_closed_forms():
    assert gini(torch.ones(10)) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0, 0.0, 0.0, 5.0])) == pytest.approx(3 / 4)
    assert gini(torch.tensor([1.0, 3.0])) == pytest.approx(0.25)  # (−1·1 + 1·3) / (2·4)
    assert gini(torch.zeros(3)) == 0.0
    with pytest.raises(GrokinterpError):
        gini(torch.tensor([-1.0, 2.0]))


def test_fourier_gini_of_the_analytic_network(analytic):
    model, task = analytic
    g = fourier_gini(model, task)
    B = get_basis(P)
    norms = fft1d(model.W_E.detach().T.double(), B).square().sum(0).sqrt()
    # 2|S| components of norm sqrt(p/2), the constant of norm sqrt(p), the rest 0
    expected = torch.zeros(P, dtype=torch.float64)
    expected[: 2 * len(S)] = math.sqrt(P / 2)
    expected[-1] = math.sqrt(P)
    torch.testing.assert_close(norms.sort().values, expected.sort().values, atol=1e-4, rtol=0)
    assert g.embed == pytest.approx(gini(expected), abs=1e-5)
    random = fourier_gini(gi.HookedMLP(gi.MLPConfig(P, d_embed=64, d_hidden=16)))
    assert g.embed > random.embed + 0.3 and g.logit > random.logit + 0.3


def test_weight_norms_closed_form_and_mask():
    model = gi.HookedMLP(gi.MLPConfig(7, d_embed=5, d_hidden=3))
    ws = [w.detach() for w in (model.W_E, model.W_in, model.W_out, model.W_U)]
    n = weight_norms(model)
    assert n.l1 == pytest.approx(sum(float(w.abs().sum()) for w in ws), rel=1e-6)
    assert n.sum_sq == pytest.approx(sum(float(w.square().sum()) for w in ws), rel=1e-6)
    assert n.l2 == pytest.approx(math.sqrt(n.sum_sq))
    mask = {"W_in": torch.zeros(5, 3, dtype=torch.bool)}
    masked = weight_norms(model, mask)
    assert masked.l1 == pytest.approx(n.l1 - float(ws[1].abs().sum()), rel=1e-6)
    metrics = gi.metrics.weight_norms_of(gi.models.named_weights(model))  # what the trainer records
    assert n.l1 == pytest.approx(metrics["l1_norm"]) and n.l2 == pytest.approx(metrics["l2_norm"])


# ---------------------------------------------------------------------------- attention
def test_attention_summary_shapes_and_identities():
    model = gi.make_transformer(gi.TransformerConfig(p=11, n_heads=3, d_model=12, d_head=4, d_mlp=16, seed=2))
    summary = attention_summary(model)
    assert summary.mean.shape == (3, 3) and summary.to_a.shape == (3, 11, 11)
    torch.testing.assert_close(summary.mean.sum(-1), torch.ones(3))
    acts = grid_activations(model)
    to_eq = acts.pattern[:, 0, :, 2].T.reshape(3, 11, 11)
    torch.testing.assert_close(summary.to_a + summary.to_b + to_eq, torch.ones(3, 11, 11))
    _, cache = model.run_with_cache(torch.cat([gi.ModularArithmetic(11).grid_inputs, torch.full((121, 1), 11)], 1))
    torch.testing.assert_close(summary.to_a[1, 4, 7], cache["pattern", 0][4 * 11 + 7, 1, -1, 0])
    assert ((summary.fractions >= 0) & (summary.fractions <= 1 + 1e-6)).all()
    assert (summary.fractions.sum(-1) <= 1 + 1e-5).all()
    with pytest.raises(GrokinterpError, match="transformer"):
        attention_summary(analytic_mlp(P, S))
    with pytest.raises(GrokinterpError, match="layer"):
        attention_summary(model, layer=1)


def test_attention_of_a_grokked_transformer(grokked_transformer):
    model, task = grokked_transformer
    summary = attention_summary(model, task)
    key = key_frequencies(model, task)
    # each head splits its attention between a and b (Nanda et al. 2023), periodically in a key frequency
    torch.testing.assert_close(summary.mean[:, :2].sum(-1), torch.ones(2), atol=0.05, rtol=0)
    assert set(summary.frequency.tolist()) <= set(key)


# ------------------------------------------------------------------------------- end to end
def _assert_grokked_circuit(model, task, embed_may_add_stragglers):
    methods = {m: key_frequencies(model, task, method=m) for m in ("logit", "embed", "neuron")}
    assert methods["logit"], methods
    assert methods["neuron"] == methods["logit"], methods
    if embed_may_add_stragglers:
        assert set(methods["logit"]) <= set(methods["embed"]), methods
    else:
        assert methods["embed"] == methods["logit"], methods
    r, e = restricted_loss(model, task), excluded_loss(model, task)
    assert r.full_loss < 1e-3
    assert r.loss < 1e-3  # restricted loss stays close to the (tiny) full loss
    assert e.loss > 1.0 and e.loss > 1000 * e.full_loss
    check = trig_identity_check(model, task)
    assert check.fit.fraction_explained > 0.75
    assert check.logit_fraction > 0.8
    assert all(v.alpha > 0 for v in check.verdicts)
    return methods["logit"]


def test_end_to_end_grokked_mlp(grokked_mlp_run):
    model, task, _ = grokked_mlp_run
    _assert_grokked_circuit(model, task, embed_may_add_stragglers=True)
    nf = neuron_frequencies(model, task)
    assert nf.explained_share > 0.5


def test_end_to_end_grokked_multiplication_mlp():
    """An MLP trained on a * b mod 23 computes in discrete-log frequencies: sparse in the
    multiplicative basis (chosen from task.op), dense in the additive one."""
    torch.set_num_threads(1)
    task = gi.ModularArithmetic(23, op="mul", frac_train=0.5, seed=0)
    model = gi.HookedMLP(gi.MLPConfig(23, d_embed=128, d_hidden=48, seed=0))
    cfg = gi.TrainConfig(epochs=3000, lr=1e-2, weight_decay=1.0, eval_every=20, stop_at_test_acc=0.99, progress=False)
    assert gi.train(model, task, cfg).history[-1]["test_acc"] > 0.99
    key = _assert_grokked_circuit(model, task, embed_may_add_stragglers=True)
    assert len(key) <= 5
    assert len(key_frequencies(model, task, basis="additive")) >= 8
    assert restricted_loss(model, task).loss < 1e-3


def test_end_to_end_grokked_transformer(grokked_transformer):
    model, task = grokked_transformer
    _assert_grokked_circuit(model, task, embed_may_add_stragglers=False)


# ------------------------------------------------------------------------------- progress
def test_progress_measures_over_a_run(grokked_mlp_run):
    model, task, result = grokked_mlp_run
    run = gi.load_run(result.run_dir)
    frame = progress_measures(run)
    assert list(frame["epoch"]) == run.checkpoint_epochs
    key = key_frequencies(model, task)
    assert frame.attrs["key_freqs"] == key and frame.attrs["basis"] == "additive"
    assert all(tuple(k) == tuple(key) for k in frame["key_freqs"])
    history = {row["epoch"]: row for row in run.history}
    for _, row in frame.iterrows():
        h = history[row["epoch"]]
        for col in ("train_loss", "test_loss", "train_acc", "test_acc", "l1_norm", "l2_norm"):
            assert row[col] == pytest.approx(h[col], rel=1e-4, abs=1e-7), col
    last = frame.iloc[-1]
    assert last["restricted_loss"] < 1e-3 and last["excluded_loss"] > 1.0
    assert last["excluded_loss"] > frame.iloc[0]["excluded_loss"] - 0.5
    assert last["gini_logit"] > frame.iloc[0]["gini_logit"] + 0.2
    assert last["embed_key_power"] > frame.iloc[0]["embed_key_power"]
    assert last["logit_fit"] > 0.75 and frame.iloc[0]["logit_fit"] < 0.05
    for k in key:
        assert last[f"excluded_loss_{k}"] > last["train_loss"]
    # the same numbers as the single-model functions on the last checkpoint
    assert last["restricted_loss"] == pytest.approx(restricted_loss(model, task).loss, rel=1e-4)
    assert last["gini_embed"] == pytest.approx(fourier_gini(model, task).embed, rel=1e-5)


def test_progress_measures_options(grokked_mlp_run):
    _, _, result = grokked_mlp_run
    run = gi.load_run(result.run_dir)
    sub = progress_measures(result.run_dir, every=100, per_frequency=False)
    expected = [e for e in run.checkpoint_epochs if e % 100 == 0]
    if expected[-1] != run.checkpoint_epochs[-1]:
        expected.append(run.checkpoint_epochs[-1])
    assert list(sub["epoch"]) == expected
    assert not any(c.startswith("excluded_loss_") for c in sub.columns)
    fixed = progress_measures(run, every=200, key_freqs=[3, 1])
    assert fixed.attrs["key_freqs"] == [1, 3] and "excluded_loss_3" in fixed.columns
    again = progress_measures(run, every=200, recompute=True)
    assert again.attrs["key_freqs"] is None
    assert again.iloc[-1]["key_freqs"] == tuple(key_frequencies(run.model_at(), run.task))
    assert select_epochs([0, 50, 100, 130], every=50) == [0, 50, 100, 130]
    with pytest.raises(GrokinterpError, match="every"):
        progress_measures(run, every=0)
    with pytest.raises(GrokinterpError, match="out of range"):
        progress_measures(run, key_freqs=[40])
    with pytest.raises(GrokinterpError, match="no checkpoints"):
        select_epochs([])


def test_progress_measures_of_a_transformer_run(grokked_transformer_run):
    model, task, result = grokked_transformer_run
    frame = progress_measures(result.run_dir)
    run = gi.load_run(result.run_dir)
    assert list(frame["epoch"]) == run.checkpoint_epochs
    history = {row["epoch"]: row for row in run.history}
    for _, row in frame.iterrows():
        for col in ("train_loss", "test_acc", "l2_norm"):
            assert row[col] == pytest.approx(history[row["epoch"]][col], rel=1e-4, abs=1e-7), col
    last = frame.iloc[-1]
    assert last["restricted_loss"] < 1e-3 and last["excluded_loss"] > 1.0
    assert last["attn_to_a"] + last["attn_to_b"] == pytest.approx(1.0, abs=0.05)
    summary = attention_summary(model, task)
    assert last["attn_to_a"] == pytest.approx(float(summary.mean[:, 0].mean()), rel=1e-5)


def test_progress_measures_of_an_op_without_a_fourier_circuit(tmp_path):
    task = gi.ModularArithmetic(7, op="x2+y2", frac_train=0.5)
    model = gi.HookedMLP(gi.MLPConfig(7, d_embed=8, d_hidden=4))
    result = gi.train(model, task, gi.TrainConfig(epochs=4, checkpoint_every=2, progress=False), out_dir=tmp_path / "r")
    frame = progress_measures(result.run_dir)
    assert list(frame["epoch"]) == [0, 2, 4] and not frame.attrs["circuit_measures"]
    assert "restricted_loss" not in frame.columns and "logit_fit" not in frame.columns
    assert frame.iloc[-1]["train_loss"] == pytest.approx(result.history[-1]["train_loss"], rel=1e-6)
    with pytest.raises(GrokinterpError, match="ops"):
        trig_identity_check(model, task)
