"""The per-checkpoint grid analysis and the batched ablations: ``analyze`` computes the grid forward and
the neuron decomposition once, every section equals the one computed on its own, and the batched
restricted / excluded losses equal the per-frequency projections and fits written out here."""

import json

import pytest
import torch

import grokinterp as gi
import grokinterp.fourier.grid as grid_module
import grokinterp.fourier.spectra as spectra_module
from grokinterp.circuits import attention_summary, excluded_loss, fourier_gini, restricted_loss, trig_identity_check, weight_norms
from grokinterp.circuits.ablation import FrequencyDecomposition
from grokinterp.circuits.clock_pizza import clock_or_pizza
from grokinterp.fourier import (
    embedding_spectrum, fft2d, fourier_entropy, get_basis, key_frequencies, neuron_frequencies, neuron_input_spectrum,
    neuron_logit_spectrum, observed_pairs,
)
from grokinterp.fourier.basis import basis_for_op, op_sign, sum_direction_table
from grokinterp.fourier.grid import GridAnalysis, as_grid
from grokinterp.metrics import cross_entropy_f64
from grokinterp.models import as_weights, grid_activations
from grokinterp.models.weights import grid_pairs
from grokinterp.report import analyze
from grokinterp.report.report import clean, floats

from _planted import planted_mlp


# ------------------------------------------------------------------------ the old formulation
def direct_ablation(logits, B, sign, freqs, inputs, labels, observed, kind):
    """Restricted / excluded loss as first written: the (m, n²) direction table over the group grid,
    projections on the full grid and one least-squares fit over the observed pairs per direction set
    on part of it, and one cross-entropy per frequency."""
    p, n = B.p, B.n
    coord = B.group_coordinate()
    rows = inputs[:, 0] * p + inputs[:, 1]
    ca, cb = coord[inputs[:, 0]], coord[inputs[:, 1]]
    inside = (ca >= 0) & (cb >= 0)
    pos = torch.where(inside, ca * n + cb, torch.zeros_like(ca))
    L = logits.double()
    L_split, L_obs = L[rows], L[observed.rows]
    D, owner = sum_direction_table(B, freqs, sign)
    D_split = D[:, pos] * inside

    def fit(which):
        if observed.full:
            return L_obs.mean(0), D[which] @ L_obs
        X = torch.cat([torch.ones(observed.count, 1, dtype=torch.float64), D[which][:, observed.positions].T], 1)
        sol = torch.linalg.lstsq(X, L_obs, driver="gelsd").solution  # rank-revealing: sub over a>b never sees s = 0
        return sol[0], sol[1:]

    def ablated(which):
        const, coef = fit(which)
        comp = D_split[which].T @ coef
        if kind == "excluded":
            return L_split - comp
        return torch.where(inside[:, None], const + comp, L_split)

    loss = float(cross_entropy_f64(ablated(torch.ones_like(owner, dtype=torch.bool)), labels))
    per = {k: float(cross_entropy_f64(ablated(owner == k), labels)) for k in sorted(set(owner.tolist()))}
    return loss, per


ABLATION_CASES = [  # (p, op, pairs): full and partial grids, additive and multiplicative, even n (a lone cosine)
    (13, "add", "all"), (12, "add", "all"), (13, "sub", "a>b"), (13, "mul", "all"), (11, "div", "a>=b"), (12, "add", "a>b"),
]


@pytest.mark.parametrize("p, op, pairs", ABLATION_CASES)
@pytest.mark.parametrize("kind", ["restricted", "excluded"])
def test_batched_ablation_equals_the_per_frequency_formulation(p, op, pairs, kind):
    task = gi.ModularArithmetic(p, op, pairs, frac_train=0.5)
    B = basis_for_op(p, op)
    logits = torch.randn(p * p, p, generator=torch.Generator().manual_seed(p), dtype=torch.float64) * 3
    observed = observed_pairs(B, task)
    for freqs in (list(range(1, B.n_freqs + 1)), [1, B.n_freqs]):
        dec = FrequencyDecomposition(logits, B, op_sign(op), freqs, task.train_inputs, observed)
        loss, per = dec.losses(task.train_labels, kind)
        ref_loss, ref_per = direct_ablation(logits, B, op_sign(op), freqs, task.train_inputs, task.train_labels, observed, kind)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        assert list(per) == list(ref_per) == sorted(freqs)
        for k in freqs:
            assert per[k] == pytest.approx(ref_per[k], rel=1e-10), k
        everything = torch.ones_like(dec.owner, dtype=torch.bool)
        assert float(cross_entropy_f64(getattr(dec, kind)(everything), task.train_labels)) == pytest.approx(ref_loss, rel=1e-10)


def test_excluded_loss_of_logits_far_apart():
    """Logits spread over thousands of nats: the product form of the log-sum-exp underflows on some
    rows and those are taken directly; the losses still equal the direct ones."""
    task = gi.ModularArithmetic(13, frac_train=0.5)
    B = get_basis(13)
    logits = torch.randn(13 * 13, 13, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 800
    observed = observed_pairs(B, task)
    dec = FrequencyDecomposition(logits, B, 1, [1, 2, 3, 4, 5, 6], task.train_inputs, observed)
    loss, per = dec.losses(task.train_labels, "excluded")
    ref_loss, ref_per = direct_ablation(logits, B, 1, [1, 2, 3, 4, 5, 6], task.train_inputs, task.train_labels, observed, "excluded")
    assert loss == pytest.approx(ref_loss, rel=1e-10) and per == pytest.approx(ref_per, rel=1e-10)


def test_ablation_blocks_do_not_change_the_losses(monkeypatch):
    """The excluded logits built in blocks of rows and frequencies give the losses of one block."""
    task = gi.ModularArithmetic(23, frac_train=0.5)
    B = get_basis(23)
    logits = torch.randn(23 * 23, 23, generator=torch.Generator().manual_seed(0))
    dec = FrequencyDecomposition(logits, B, 1, list(range(1, 12)), task.train_inputs, observed_pairs(B, task))
    whole = {kind: dec.losses(task.train_labels, kind) for kind in ("restricted", "excluded")}
    monkeypatch.setattr("grokinterp.circuits.ablation.ABLATION_BLOCK_ELEMENTS", 23 * 7)
    for kind, (loss, per) in whole.items():
        loss_b, per_b = dec.losses(task.train_labels, kind)
        assert loss_b == pytest.approx(loss, rel=1e-12) and per_b == pytest.approx(per, rel=1e-12)


def loop_pair_fractions(values, observed):
    """Per-frequency variance fractions on part of the grid as first written: one centred design of
    the frequency's 2D terms and one SVD per frequency."""
    B = observed.basis
    X = values.double()[observed.rows]
    X = X - X.mean(0, keepdim=True)
    total = X.square().sum(0)
    F = B.matrix.double()
    xa, xb = observed.positions // B.n, observed.positions % B.n
    fractions = torch.zeros(X.shape[1], B.n_freqs + 1, dtype=torch.float64)
    for k in range(1, B.n_freqs + 1):
        rows = B.rows_of(k)
        terms = [(i, 0) for i in rows] + [(0, j) for j in rows] + [(i, j) for i in rows for j in rows]
        design = torch.stack([F[i, xa] * F[j, xb] for i, j in terms], dim=1)
        design = design - design.mean(0, keepdim=True)
        U, S, _ = torch.linalg.svd(design, full_matrices=False)
        U = U[:, S > 1e-9 * S.max()]
        fractions[:, k] = (U.T @ X).square().sum(0) / total
    return fractions, total


@pytest.mark.parametrize("p, op, pairs", [(13, "add", "a>b"), (12, "add", "a>=b"), (13, "mul", "a>b")])
def test_batched_pair_fractions_equal_one_fit_per_frequency(p, op, pairs, monkeypatch):
    values = torch.randn(p * p, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    observed = observed_pairs(basis_for_op(p, op), gi.ModularArithmetic(p, op, pairs, frac_train=0.5))
    ref, ref_total = loop_pair_fractions(values, observed)
    for elements in (spectra_module.NEURON_BLOCK_ELEMENTS, 8 * observed.count):  # one block; one frequency per block
        monkeypatch.setattr(spectra_module, "NEURON_BLOCK_ELEMENTS", elements)
        fractions, total = spectra_module.pair_frequency_fractions(values, observed)
        torch.testing.assert_close(fractions, ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(total, ref_total, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------- the grid analysis
def test_grid_analysis_computes_once_and_equals_the_functions(monkeypatch):
    model = gi.make_transformer("nanda", p=17, d_model=32, d_head=8, d_mlp=64, seed=3)
    task = gi.ModularArithmetic(17, frac_train=0.4)
    g = GridAnalysis(model, task)
    calls = {"forward": 0, "neurons": 0}
    forward, decompose = grid_module.grid_activations, grid_module.neuron_frequencies_in

    def counted_forward(*args, **kw):
        calls["forward"] += 1
        return forward(*args, **kw)

    def counted_decompose(*args, **kw):
        calls["neurons"] += 1
        return decompose(*args, **kw)

    monkeypatch.setattr(grid_module, "grid_activations", counted_forward)
    monkeypatch.setattr(grid_module, "neuron_frequencies_in", counted_decompose)
    for method in ("logit", "embed", "neuron"):
        assert g.key_frequencies(method) == key_frequencies(model, task, method=method)
    nf, ref = g.neuron_frequencies(), neuron_frequencies(model, task)
    for name in ("frequency", "fraction", "cluster", "variance", "fractions"):
        assert torch.equal(getattr(nf, name), getattr(ref, name)), name
    assert g.neuron_frequencies() is nf and calls == {"forward": 1, "neurons": 1}
    assert torch.equal(g.logits, grid_activations(model).logits)
    other = as_grid(g, gi.ModularArithmetic(17, "sub", frac_train=0.4))
    assert other is not g and other.activations is g.activations and calls["forward"] == 1
    assert as_grid(g, task) is g and as_grid(g) is g
    with pytest.raises(gi.GrokinterpError, match="p=17"):
        GridAnalysis(model, gi.ModularArithmetic(13))


def test_analyze_runs_the_grid_forward_and_the_neuron_decomposition_once(monkeypatch):
    calls = {"forward": 0, "neurons": 0}
    forward, decompose = grid_module.grid_activations, grid_module.neuron_frequencies_in
    monkeypatch.setattr(grid_module, "grid_activations", lambda *a, **k: calls.__setitem__("forward", calls["forward"] + 1) or forward(*a, **k))
    monkeypatch.setattr(grid_module, "neuron_frequencies_in", lambda *a, **k: calls.__setitem__("neurons", calls["neurons"] + 1) or decompose(*a, **k))
    monkeypatch.setattr(spectra_module, "grid_activations", None)  # any other path to a forward would fail
    analyze(gi.make_transformer("nanda", p=13, d_model=32, d_head=8, d_mlp=64, seed=0), gi.ModularArithmetic(13, frac_train=0.5))
    assert calls == {"forward": 1, "neurons": 1}


def sections_one_by_one(model, task) -> dict:
    """The sections of the report on one model, each computed by its own public function (each
    with its own grid forward and neuron decomposition), laid out as ``analyze`` lays them out."""
    w = as_weights(model)
    B = basis_for_op(task.p, task.op)
    acts = grid_activations(w)
    grid_index = task.all_pairs[:, 0] * task.p + task.all_pairs[:, 1]
    metrics = {}
    for split in ("train", "test"):
        idx = task.train_indices if split == "train" else task.test_indices
        logits = acts.logits[grid_index[idx]]
        labels = task.labels(split)
        metrics[f"{split}_loss"] = float(cross_entropy_f64(logits, labels))
        metrics[f"{split}_acc"] = float((logits.argmax(-1) == labels).double().mean())
    keys = {m: key_frequencies(w, task, method=m) for m in ("logit", "embed", "neuron")}
    nf = neuron_frequencies(w, task)
    out = {
        "metrics": metrics,
        "key_frequencies": keys,
        "embedding": floats(embedding_spectrum(w, task)),
        "logit": floats(neuron_logit_spectrum(w, task).square().sum(1).sqrt()),
        "neuron_input": floats(neuron_input_spectrum(w, task).square().sum(1).sqrt()),
        "neurons": {"frequency": nf.frequency.tolist(), "fraction": floats(nf.fraction, 4), "cluster": nf.cluster.tolist(),
                    "fractions": floats(nf.fractions, 3)},
        "gini": fourier_gini(w, task).__dict__,
        "weight_norms": {"l1": weight_norms(w).l1, "l2": weight_norms(w).l2},
        "fourier_entropy": {"in": fourier_entropy(w, "in", task=task), "out": fourier_entropy(w, "out", task=task)},
    }
    grid = acts.logits.double().reshape(task.p, task.p, task.p)
    out["logit_spectrum_2d"] = floats(fft2d(grid - grid.mean((0, 1), keepdim=True), B).norm(dim=-1), 4)
    freqs = keys["logit"]
    check = trig_identity_check(w, task, freqs=freqs)
    out["trig"] = {"freqs": check.freqs, "residual_fraction": check.residual_fraction, "logit_fraction": check.logit_fraction,
                   "alpha": floats(check.fit.alpha), "verdicts": [v.__dict__ for v in check.verdicts]}
    for name, fn in (("restricted_loss", restricted_loss), ("excluded_loss", excluded_loss)):
        ab = fn(w, task, freqs)
        out[name] = {"loss": ab.loss, "full_loss": ab.full_loss, "per_frequency": {str(k): v for k, v in ab.per_frequency.items()}}
    if w.kind == "transformer":
        summary = attention_summary(w, task)
        out["attention"] = {"mean": floats(summary.mean, 4), "frequency": summary.frequency.tolist(), "fraction": floats(summary.fraction, 4)}
    cp = clock_or_pizza(model, freqs, task)
    out["clock_pizza"] = {"distance_irrelevance": cp.distance_irrelevance, "circularity": cp.circularity,
                          "clock_fve": floats(cp.templates.clock, 4), "pizza_fve": floats(cp.templates.pizza, 4)}
    return clean(out)


def neuron_pictures(model, task, neurons) -> dict:
    """The report's activation grids and 2D spectra of ``neurons`` (full grid), from the whole
    (p², d_mlp) activation table."""
    post = grid_activations(model).post.double()
    B = basis_for_op(task.p, task.op)
    grids, spectra = [], []
    for i in neurons:
        grid = post[:, i].reshape(task.p, task.p)
        grids.append(floats(grid, 4))
        s = fft2d(grid, B).abs()
        s[0, 0] = 0.0
        spectra.append([[float(f"{v:.3g}") for v in row] for row in s.tolist()])
    return {"activations": grids, "spectra": spectra}


def report_sections(report) -> dict:
    r = report.to_dict()
    return clean({
        "metrics": r["metrics"],
        "key_frequencies": r["key_frequencies"],
        "embedding": r["spectra"]["embedding"], "logit": r["spectra"]["logit"], "neuron_input": r["spectra"]["neuron_input"],
        "neurons": {k: r["neurons"][k] for k in ("frequency", "fraction", "cluster", "fractions")},
        "gini": r["gini"], "weight_norms": r["weight_norms"], "fourier_entropy": r["fourier_entropy"],
        "logit_spectrum_2d": r["logit_spectrum_2d"],
        "trig": {"freqs": r["trig"]["freqs"], "residual_fraction": r["trig"]["residual_fraction"],
                 "logit_fraction": r["trig"]["logit_fraction"], "alpha": r["trig"]["fit"]["alpha"], "verdicts": r["trig"]["verdicts"]},
        **{name: {k: r[name][k] for k in ("loss", "full_loss", "per_frequency")} for name in ("restricted_loss", "excluded_loss")},
        **({"attention": {k: r["attention"][k] for k in ("mean", "frequency", "fraction")}} if r["attention"] else {}),
        "clock_pizza": {k: r["clock_pizza"][k] for k in ("distance_irrelevance", "circularity", "clock_fve", "pizza_fve")},
    })


@pytest.mark.parametrize("make", [
    lambda: planted_mlp(19, [2, 5, 7]),
    lambda: gi.make_transformer("nanda", p=19, d_model=32, d_head=8, d_mlp=64, seed=5),
])
def test_analyze_json_equals_the_sections_computed_one_by_one(make):
    model, task = make(), gi.ModularArithmetic(19, frac_train=0.4, seed=1)
    report = analyze(model, task)
    assert json.dumps(report_sections(report), sort_keys=True) == json.dumps(sections_one_by_one(model, task), sort_keys=True)
    chosen = report.neuron_grids["neurons"]
    assert report.views["neuron_spectra_2d"]["neurons"] == chosen
    pictures = neuron_pictures(model, task, chosen)
    assert report.neuron_grids["activations"] == pictures["activations"]
    assert report.views["neuron_spectra_2d"]["spectra"] == pictures["spectra"]
    again = analyze(model, task)  # nothing is kept between calls: the same report again
    assert again.to_json() == report.to_json()


def test_grid_forward_in_blocks_equals_one_pass():
    model = gi.make_transformer("nanda", p=23, d_model=32, d_head=8, d_mlp=64, seed=1)
    whole = grid_activations(model, block=23 * 23)
    blocks = grid_activations(model, block=50)
    for name in ("logits", "post", "resid", "pattern"):
        torch.testing.assert_close(getattr(blocks, name), getattr(whole, name), rtol=0, atol=1e-6)
    assert whole.logits.shape == (23 * 23, 23) and torch.equal(grid_pairs(23)[:, 0], torch.arange(23).repeat_interleave(23))
    with pytest.raises(gi.GrokinterpError, match="block"):
        grid_activations(model, block=0)


def test_progress_section_equals_the_measures_and_spectra_per_checkpoint(tmp_path):
    """The report's progress rows: the progress measures plus each checkpoint's spectra and entropy,
    read from the checkpoint the measures loaded, equal to those computed by loading it again."""
    out = tmp_path / "run"
    cfg = gi.TrainConfig(epochs=150, lr=1e-2, eval_every=50, checkpoint_every=50, progress=False)
    gi.train(gi.HookedMLP(gi.MLPConfig(p=23, d_embed=32, d_hidden=24, seed=2)), gi.ModularArithmetic(23, frac_train=0.5), cfg, out_dir=out)
    report = analyze(out)
    run = gi.load_run(out)
    frame = gi.progress_measures(run, per_frequency=False)
    assert [r["epoch"] for r in report.progress] == run.checkpoint_epochs == frame["epoch"].tolist()
    for row, (_, ref) in zip(report.progress, frame.iterrows()):
        w = run.model_weights(int(ref["epoch"]))
        expected = {**{k: v for k, v in ref.items() if k != "key_freqs"},
                    "fourier_entropy": fourier_entropy(w, "in", task=run.task),
                    "embedding_spectrum": floats(embedding_spectrum(w, run.task), 4),
                    "logit_spectrum": floats(neuron_logit_spectrum(w, run.task).square().sum(1).sqrt(), 4)}
        assert {k: row[k] for k in expected} == clean(expected)
