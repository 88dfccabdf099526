"""Clock-vs-pizza diagnostics on planted embeddings and logits."""

import math

import pytest
import torch

import grokinterp as gi
from grokinterp.circuits.clock_pizza import (
    circularity,
    clock_template,
    distance_irrelevance,
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
