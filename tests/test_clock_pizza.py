"""Clock-vs-pizza diagnostics on planted embeddings and logits."""

import dataclasses
import math
from pathlib import Path

import pytest
import torch

import grokinterp as gi
from grokinterp.circuits.clock_pizza import (
    circularity,
    clock_or_pizza,
    clock_template,
    distance_irrelevance,
    gradient_symmetricity,
    pizza_template,
    template_fve,
)

P = 17


def _mlp_with_embedding(E):
    model = gi.HookedMLP(gi.MLPConfig(P, d_embed=E.shape[1], d_hidden=8))
    with torch.no_grad():
        model.W_E.copy_(E)
    return model


def test_an_embedding_on_single_frequency_circles_has_circularity_one():
    x = torch.arange(P, dtype=torch.float64)
    w3, w5 = 2 * math.pi * 3 / P, 2 * math.pi * 5 / P
    circle = torch.stack([3 * torch.cos(w3 * x), 3 * torch.sin(w3 * x), torch.cos(w5 * x), torch.sin(w5 * x)], 1).float()
    assert circularity(_mlp_with_embedding(circle)) == pytest.approx(1.0, abs=1e-5)
    # two frequencies of equal weight on every axis: each component's power is split between them
    mixed = torch.stack([torch.cos(w3 * x) + torch.cos(w5 * x), torch.sin(w3 * x) - torch.sin(w5 * x)], 1).float()
    assert circularity(_mlp_with_embedding(mixed), n_components=2) == pytest.approx(0.5, abs=1e-5)
    noise = torch.randn(P, 6, generator=torch.Generator().manual_seed(0))
    assert circularity(_mlp_with_embedding(noise)) < 0.8


def test_logits_built_from_a_template_are_fully_explained_by_it():
    shift = torch.randn(P, P, 1, generator=torch.Generator().manual_seed(1))  # softmax ignores a per-pair shift
    for k in (1, 4):
        pizza = template_fve(3 * pizza_template(P, k) + shift, [k, 2])
        clock = template_fve(-2 * clock_template(P, k) + shift, [k, 2])
        assert pizza.pizza[0] == pytest.approx(1.0, abs=1e-9) and pizza.clock[0] < 0.9
        assert clock.clock[0] == pytest.approx(1.0, abs=1e-9) and clock.pizza[0] < 0.9
        assert clock.clock[1] == pytest.approx(0.0, abs=1e-9)  # another frequency is orthogonal


def test_distance_irrelevance_is_zero_when_the_correct_logit_follows_the_distance_and_one_when_it_does_not():
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    L = torch.zeros(P, P, P, dtype=torch.float64)
    c = (a + b) % P
    L[a, b, c] = torch.cos(2 * math.pi * ((a - b) % P) / P).double()  # a function of a - b alone
    assert distance_irrelevance(L) == pytest.approx(0.0, abs=1e-9)
    L[a, b, c] = torch.cos(2 * math.pi * 3 * c / P).double()  # a function of a + b alone
    assert distance_irrelevance(L) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(gi.GrokinterpError, match="full grid"):
        distance_irrelevance(_mlp_with_embedding(torch.randn(P, 4)), gi.ModularArithmetic(P, pairs="a>b"))


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pizza"


def test_an_mlp_reads_e_a_plus_e_b_so_its_gradients_are_symmetric():
    model = gi.HookedMLP(gi.MLPConfig(P, d_embed=16, d_hidden=8, seed=2))
    assert gradient_symmetricity(model, n_samples=200) == pytest.approx(1.0, abs=1e-6)
    tr = gi.make_transformer(gi.TransformerConfig(p=P, n_heads=2, d_model=16, d_head=8, d_mlp=32, eq_token=False))
    assert gradient_symmetricity(tr, all_triples=True) < 0.99  # causal attention at b's position: a and b differ


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the clock-vs-pizza fixtures live in ../shared/fixtures/pizza")
def test_the_papers_model_a_is_a_pizza_and_model_b_a_clock():
    verdicts = {}
    for run_id in ("p99zdpze5l", "l8k1hzciux"):
        model, info = gi.load_checkpoint(FIXTURES / f"model_{run_id}.pt")
        result = clock_or_pizza(model, gi.key_frequencies(model, info["task"]), info["task"])
        verdicts[run_id] = result
    a, b = verdicts["p99zdpze5l"], verdicts["l8k1hzciux"]
    assert a.verdict == "pizza" and b.verdict == "clock"
    assert a.gradient_symmetricity >= 0.98 and b.gradient_symmetricity < 0.5
    assert a.distance_irrelevance < 0.3 and b.distance_irrelevance > 0.8
    assert a.circularity > 0.99 and b.circularity > 0.99


def test_presets_build_the_papers_models():
    pizza, clock = gi.make_transformer("pizza"), gi.make_transformer("clock")
    assert pizza.grokinterp_config.attn_rate == 0.0 and clock.grokinterp_config.attn_rate == 1.0
    fixture = gi.load_checkpoint(FIXTURES / "model_p99zdpze5l.pt")[0].grokinterp_config if FIXTURES.is_dir() else None
    if fixture is not None:
        assert dataclasses.replace(fixture, seed=0) == pizza.grokinterp_config


def test_the_closed_form_template_fit_equals_the_direct_one():
    from grokinterp.circuits.clock_pizza import _fve

    L = torch.randn(P, P, P, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    L = L + 2 * pizza_template(P, 3) - clock_template(P, 5)
    fit = template_fve(L, [1, 3, 5])
    for i, k in enumerate(fit.freqs):
        assert fit.clock[i] == pytest.approx(_fve(L, clock_template(P, k)), rel=1e-9, abs=1e-12)
        assert fit.pizza[i] == pytest.approx(_fve(L, pizza_template(P, k)), rel=1e-9, abs=1e-12)
