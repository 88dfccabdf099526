"""Analyses honour the task's pair set: on a task with pairs="a>b" nothing the model does on the
other pairs changes restricted / excluded loss, the logit fit, the trig checks or the neuron clusters,
and a quantity that needs the full grid refuses such a task."""

import dataclasses

import pytest
import torch

import grokinterp as gi
from grokinterp.circuits import excluded_loss, logit_fit, restricted_loss, trig_identity_check
from grokinterp.circuits.ablation import FrequencyDecomposition
from grokinterp.circuits.trig import TrigPlanes, fit_logits, group_logits
from grokinterp.fourier import neuron_activation_spectrum, neuron_frequencies, observed_pairs
from grokinterp.fourier.spectra import frequency_fractions, pair_frequency_fractions, _activation_components
from grokinterp.models import ModelWeights, as_weights, grid_activations
from grokinterp.models.weights import Activations

from _planted import analytic_mlp, planted_mlp

P, FREQS = 31, [1, 2, 4, 8, 15]  # closed under doubling mod 31, as the analytic network needs


class ScrambledOutside(ModelWeights):
    """The model's forward, with logits, neurons and residual overwritten by noise on the pairs
    outside ``keep`` (a-major grid rows)."""

    def __init__(self, weights: ModelWeights, keep: torch.Tensor, seed: int):
        super().__init__(weights.config, weights.tensors)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "seed", seed)

    def forward(self, inputs):
        acts = super().forward(inputs)
        rows = inputs[:, 0] * self.p + inputs[:, 1]
        outside = ~torch.isin(rows, self.keep)
        g = torch.Generator().manual_seed(self.seed)

        def scramble(t):
            noise = torch.randn(t.shape, generator=g, dtype=t.dtype) * 50
            return torch.where(outside[:, None], noise, t)

        return Activations(scramble(acts.logits), scramble(acts.post), scramble(acts.resid), acts.pattern)


def _models(task):
    w = as_weights(planted_mlp(P, FREQS))
    keep = task.all_pairs[:, 0] * P + task.all_pairs[:, 1]
    return w, [ScrambledOutside(w, keep, s) for s in (0, 1)]


@pytest.mark.parametrize("op,pairs", [("add", "a>b"), ("sub", "a>=b")])
def test_outputs_outside_the_task_do_not_matter(op, pairs):
    task = gi.ModularArithmetic(P, op, pairs, frac_train=0.5, seed=1)
    w, scrambled = _models(task)
    assert not torch.allclose(grid_activations(scrambled[0]).logits, grid_activations(w).logits)
    results = []
    for m in [w, *scrambled]:
        check = trig_identity_check(m, task, freqs=FREQS)
        nf = neuron_frequencies(m, task)
        results.append((
            restricted_loss(m, task, FREQS).loss, restricted_loss(m, task, FREQS).per_frequency,
            excluded_loss(m, task, FREQS).loss, excluded_loss(m, task, FREQS, split="test").loss,
            logit_fit(m, task, FREQS).fraction_explained, logit_fit(m, task, FREQS).alpha.tolist(),
            [dataclasses.astuple(v) for v in check.verdicts], check.residual_fraction, check.logit_fraction,
            nf.cluster.tolist(), nf.fraction.tolist(),
        ))
    for other in results[1:]:
        assert _flat(other) == pytest.approx(_flat(results[0]), rel=1e-7, abs=1e-9)


def _flat(x) -> list:
    """Every number in nested tuples / lists / dicts (verdict reasons included as their lengths)."""
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flat(item)]
    if isinstance(x, str):
        return [float(len(x))]
    return [float(x)]


@pytest.mark.parametrize("pairs", ["a>b", "a>=b"])
def test_an_exact_circuit_is_still_exact_on_part_of_the_grid(pairs):
    """The analytic network's logits are exactly Σ α_k cos(w_k(a+b-c)): the fit on half the grid
    recovers the same α and explains everything; restricted loss stays at the full loss."""
    model = analytic_mlp(P, FREQS)
    full = logit_fit(model, gi.ModularArithmetic(P), FREQS)
    task = gi.ModularArithmetic(P, "add", pairs, frac_train=0.5, seed=1)
    part = logit_fit(model, task, FREQS)
    assert part.fraction_explained == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(part.alpha, full.alpha, atol=1e-4, rtol=1e-4)
    restricted = restricted_loss(model, task, FREQS)
    assert restricted.loss == pytest.approx(restricted.full_loss, rel=1e-6)
    assert excluded_loss(model, task, FREQS).loss > restricted.loss + 1.0
    check = trig_identity_check(model, task, freqs=FREQS)
    assert check.supported and check.logit_fraction == pytest.approx(1.0, abs=1e-6)


def test_full_grid_quantities_refuse_part_of_the_grid():
    task = gi.ModularArithmetic(P, "add", "a>b", frac_train=0.5)
    w = as_weights(planted_mlp(P, FREQS))
    with pytest.raises(gi.GrokinterpError, match=r"needs the model on every pair.*pairs='a>b'.*465 of 961"):
        neuron_activation_spectrum(w, task)
    assert neuron_activation_spectrum(w, gi.ModularArithmetic(P)).shape[:2] == (P, P)
    report = gi.analyze(planted_mlp(P, FREQS), task, progress=False)
    assert report.logit_spectrum_2d == [] and "not computed" in report.summary()
    grid = report.neuron_grids["activations"][0]
    assert grid[0][5] is None and grid[5][0] is not None  # (a=0, b=5) is outside a>b: left blank


def test_fits_on_the_full_grid_equal_the_projections():
    """The least-squares path, forced on the full grid, gives the orthogonal projections."""
    task = gi.ModularArithmetic(P, "add", frac_train=0.5)
    w = as_weights(planted_mlp(P, FREQS))
    B = gi.fourier.get_basis(P)
    full = observed_pairs(B, task)
    forced = dataclasses.replace(full, full=False)
    acts = grid_activations(w)
    coeffs = _activation_components(w, B, acts.post)
    f_full, t_full = frequency_fractions(coeffs, B)
    f_fit, t_fit = pair_frequency_fractions(acts.post, forced)
    torch.testing.assert_close(f_fit[:, 1:], f_full[:, 1:].double(), atol=1e-9, rtol=1e-7)
    everything = torch.ones(2 * len(FREQS), dtype=torch.bool)
    for kind in ("restricted", "excluded"):
        a = getattr(FrequencyDecomposition(acts.logits, B, 1, FREQS, task.train_inputs, full), kind)(everything)
        b = getattr(FrequencyDecomposition(acts.logits, B, 1, FREQS, task.train_inputs, forced), kind)(everything)
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    planes_full, planes_fit = TrigPlanes(B, FREQS, 1, full), TrigPlanes(B, FREQS, 1, forced)
    L = group_logits(acts.logits, B, full)
    fit_a, plane_a = fit_logits(L, planes_full)
    fit_b, plane_b = fit_logits(L, planes_fit)
    torch.testing.assert_close(plane_a, plane_b, atol=1e-8, rtol=1e-9)
    torch.testing.assert_close(fit_a.alpha, fit_b.alpha)
