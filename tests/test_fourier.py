"""Fourier bases, transforms, spectra, key frequencies and entropy: closed forms and planted answers."""

import math

import pytest
import torch

import grokinterp as gi
from grokinterp.errors import GrokinterpError
from grokinterp.fourier import (
    CLUSTER_THRESHOLD,
    basis_for_op,
    embedding_spectrum,
    fft1d,
    fft2d,
    fourier_2d_basis_term,
    fourier_basis,
    fourier_entropy,
    frequency_power,
    get_basis,
    ifft1d,
    ifft2d,
    key_frequencies,
    multiplicative_basis,
    neuron_activation_spectrum,
    neuron_frequencies,
    neuron_input_spectrum,
    neuron_input_weights,
    neuron_logit_spectrum,
    primitive_root,
    project_onto_direction,
    project_onto_frequency,
    select_frequencies,
    spectral_entropy,
    sum_directions,
)
from grokinterp.models import as_weights, grid_activations

from _planted import analytic_mlp, hooked_logits_and_post, planted_mlp

ADD_P, ADD_S = 31, [1, 2, 4, 8, 15]  # closed under doubling mod 31 (16 -> 15, 30 -> 1)


def wave(fn, k, n, x=None):
    x = torch.arange(n, dtype=torch.float64) if x is None else x
    return fn(2 * math.pi * k * x / n)


# ------------------------------------------------------------------------------------------ basis
@pytest.mark.parametrize("p", [2, 3, 7, 8, 10, 23, 113])
def test_basis_is_orthonormal_with_documented_rows(p):
    F, names = fourier_basis(p, dtype=torch.float64)
    assert F.shape == (p, p) and len(names) == p
    torch.testing.assert_close(F @ F.T, torch.eye(p, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(F[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    assert names[0] == "const"
    for k in range(1, (p - 1) // 2 + 1):
        assert names[2 * k - 1] == f"cos {k}" and names[2 * k] == f"sin {k}"
        torch.testing.assert_close(F[2 * k - 1], wave(torch.cos, k, p) * math.sqrt(2 / p))
        torch.testing.assert_close(F[2 * k], wave(torch.sin, k, p) * math.sqrt(2 / p))
    if p % 2 == 0:
        assert names[-1] == f"cos {p // 2}"
        torch.testing.assert_close(F[-1], torch.cos(math.pi * torch.arange(p, dtype=torch.float64)) / math.sqrt(p))


def test_basis_is_cached_and_returned_as_a_copy():
    from grokinterp.fourier.basis import _additive_rows

    fourier_basis(37)
    hits = _additive_rows.cache_info().hits
    F, _ = fourier_basis(37)
    assert _additive_rows.cache_info().hits == hits + 1
    F.zero_()  # the caller's copy; the cache is untouched
    assert fourier_basis(37)[0].abs().sum() > 0
    assert fourier_basis(37)[0].dtype == torch.float32
    assert get_basis(37) is get_basis(37)


@pytest.mark.parametrize("p", [13, 12])
def test_fft1d_of_a_pure_wave_is_one_component(p):
    for k in range(1, (p - 1) // 2 + 1):
        for fn, row in ((torch.cos, 2 * k - 1), (torch.sin, 2 * k)):
            c = fft1d(wave(fn, k, p))
            expected = torch.zeros(p, dtype=torch.float64)
            expected[row] = math.sqrt(p / 2)
            torch.testing.assert_close(c, expected, atol=1e-12, rtol=0)
    if p % 2 == 0:
        c = fft1d(torch.cos(math.pi * torch.arange(p, dtype=torch.float64)))
        expected = torch.zeros(p, dtype=torch.float64)
        expected[-1] = math.sqrt(p)
        torch.testing.assert_close(c, expected, atol=1e-12, rtol=0)


def test_fft1d_dim_batch_and_inverse():
    x = torch.randn(4, 11, 3, dtype=torch.float64)
    c = fft1d(x, dim=1)
    assert c.shape == (4, 11, 3)
    F, _ = fourier_basis(11, dtype=torch.float64)
    torch.testing.assert_close(c, torch.einsum("fx,bxd->bfd", F, x))
    torch.testing.assert_close(ifft1d(c, dim=1), x)
    assert torch.allclose(c.square().sum(1), x.square().sum(1))  # Parseval


def test_fft2d_rows_are_a_and_columns_are_b():
    p, i, j = 11, 3, 5
    a = torch.arange(p, dtype=torch.float64)
    grid = torch.cos(2 * math.pi * i * a / p)[:, None] * torch.sin(2 * math.pi * j * a / p)[None, :]
    c = fft2d(grid)
    assert c.abs().argmax().item() == (2 * i - 1) * p + 2 * j  # row = a's cos i, column = b's sin j
    assert c.abs().max().item() == pytest.approx(p / 2)
    assert torch.count_nonzero(c.abs() > 1e-9) == 1
    torch.testing.assert_close(ifft2d(c), grid)
    stacked = fft2d(torch.stack([grid, 2 * grid], dim=-1))
    torch.testing.assert_close(stacked[..., 1], 2 * c)


def test_fourier_2d_basis_terms_are_orthonormal_and_transform_to_one_hot():
    p = 7
    terms = torch.stack([fourier_2d_basis_term(i, j, p).double().flatten() for i in range(p) for j in range(p)])
    torch.testing.assert_close(terms @ terms.T, torch.eye(p * p, dtype=torch.float64), atol=1e-6, rtol=0)
    c = fft2d(fourier_2d_basis_term(2, 5, p).double())
    expected = torch.zeros(p, p, dtype=torch.float64)
    expected[2, 5] = 1
    torch.testing.assert_close(c, expected, atol=1e-6, rtol=0)
    with pytest.raises(GrokinterpError, match="basis index"):
        fourier_2d_basis_term(7, 0, p)


def test_project_onto_direction_closed_form():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    d = torch.tensor([2.0, 0.0])
    torch.testing.assert_close(project_onto_direction(x, d), torch.tensor([[3.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(GrokinterpError, match="zero direction"):
        project_onto_direction(x, torch.zeros(2))
    with pytest.raises(GrokinterpError, match="length 2"):
        project_onto_direction(x, torch.ones(3))


def test_project_onto_frequency_keeps_exactly_that_frequency():
    p, k, j = 13, 3, 5
    a = torch.arange(p, dtype=torch.float64)
    part_k = torch.cos(2 * math.pi * k * (a[:, None] + a[None, :]) / p) + torch.sin(2 * math.pi * k * a / p)[:, None]
    part_j = torch.cos(2 * math.pi * j * a / p)[None, :] * torch.cos(2 * math.pi * j * a / p)[:, None]
    grid = part_k + part_j + 7.0  # the constant is never kept
    torch.testing.assert_close(project_onto_frequency(grid, k), part_k, atol=1e-10, rtol=0)
    torch.testing.assert_close(project_onto_frequency(grid, j), part_j, atol=1e-10, rtol=0)
    both = project_onto_frequency(torch.stack([grid, part_j], -1), j)
    torch.testing.assert_close(both[..., 1], part_j, atol=1e-10, rtol=0)
    with pytest.raises(GrokinterpError, match="out of range"):
        project_onto_frequency(grid, 7)


@pytest.mark.parametrize("p", [11, 12])
def test_sum_directions_are_unit_orthogonal_and_closed_form(p):
    a = torch.arange(p, dtype=torch.float64)
    dirs = []
    for k in range(1, p // 2 + 1):
        d = sum_directions(k, p).double()
        s = a[:, None] + a[None, :]
        cos = torch.cos(2 * math.pi * k * s / p)
        torch.testing.assert_close(d[0], cos / cos.norm(), atol=1e-6, rtol=0)
        if 2 * k == p:
            assert d[1].abs().max() == 0  # sin(π(a+b)) vanishes on the grid
        else:
            assert d[1].norm().item() == pytest.approx(1.0, abs=1e-6)
            dirs.append(d[1].flatten())
        dirs.append(d[0].flatten())
    D = torch.stack(dirs)
    torch.testing.assert_close(D @ D.T, torch.eye(len(dirs), dtype=torch.float64), atol=1e-5, rtol=0)
    diff = sum_directions(2, p, sign=-1).double()
    cos = torch.cos(2 * math.pi * 2 * (a[:, None] - a[None, :]) / p)
    torch.testing.assert_close(diff[0], cos / cos.norm(), atol=1e-6, rtol=0)


def test_frequency_power_and_spectral_entropy_closed_forms():
    B = get_basis(9)
    c = torch.arange(9, dtype=torch.float64)
    power = frequency_power(c, B)
    torch.testing.assert_close(power, torch.tensor([0.0, 1 + 4, 9 + 16, 25 + 36, 49 + 64], dtype=torch.float64))
    assert spectral_entropy(torch.ones(6)).item() == pytest.approx(math.log(6))
    assert spectral_entropy(torch.tensor([0.0, 3.0, 0.0])).item() == 0.0
    assert torch.isnan(spectral_entropy(torch.zeros(4)))
    with pytest.raises(GrokinterpError):
        spectral_entropy(torch.tensor([1.0, -1.0]))


def test_bad_sizes_and_frequencies_raise():
    for bad in (1, 0, 2.5, True):
        with pytest.raises(GrokinterpError, match="integer >= 2"):
            fourier_basis(bad)
    with pytest.raises(GrokinterpError, match="square grid"):
        fft2d(torch.zeros(3, 4))
    with pytest.raises(GrokinterpError, match="out of range"):
        sum_directions(0, 11)
    with pytest.raises(GrokinterpError, match="sign"):
        sum_directions(1, 11, sign=2)
    with pytest.raises(GrokinterpError, match="basis must be"):
        get_basis(11, "fourier")


# ---------------------------------------------------------------------------- multiplicative basis
def test_primitive_roots_and_multiplicative_basis():
    assert primitive_root(113) == 3 and primitive_root(23) == 5 and primitive_root(2) == 1
    B = multiplicative_basis(23)
    assert B.kind == "multiplicative" and B.n == 22 and B.generator == 5
    assert B.tokens.tolist() == [pow(5, x, 23) for x in range(22)]
    assert sorted(B.tokens.tolist()) == list(range(1, 23))
    assert B.group_coordinate()[0] == -1
    with pytest.raises(GrokinterpError, match="prime"):
        multiplicative_basis(15)
    assert basis_for_op(23, "mul").kind == "multiplicative" and basis_for_op(23, "div").kind == "multiplicative"
    assert basis_for_op(23, "add").kind == "additive" and basis_for_op(23, "x2+y2").kind == "additive"


def test_fft_in_the_multiplicative_basis_reads_discrete_logs():
    p, k = 23, 4
    B = multiplicative_basis(p)
    logs = B.group_coordinate().double()
    v = torch.cos(2 * math.pi * k * logs / (p - 1))
    v[0] = 123.0  # token 0 lies outside the group and is ignored
    c = fft1d(v, B)
    assert c.shape == (22,)
    expected = torch.zeros(22, dtype=torch.float64)
    expected[2 * k - 1] = math.sqrt(22 / 2)
    torch.testing.assert_close(c, expected, atol=1e-10, rtol=0)
    back = ifft1d(c, B)
    assert back[0] == 0 and torch.allclose(back[1:], v[1:])
    # the same vector is spread over many additive frequencies
    additive = frequency_power(fft1d(v[1:].clone()), get_basis(22))
    assert (additive[1:] > 1e-3 * additive.max()).sum() > 3


# ------------------------------------------------------------------------------ planted networks
def test_analytic_network_is_exact_and_fully_accurate():
    model = analytic_mlp(ADD_P, ADD_S)
    task = gi.ModularArithmetic(ADD_P)
    g = task.grid_inputs.double()
    c = torch.arange(ADD_P, dtype=torch.float64)
    target = sum(torch.cos(2 * math.pi * k / ADD_P * (g[:, :1] + g[:, 1:] - c)) for k in ADD_S)
    logits = model(task.grid_inputs).double()
    torch.testing.assert_close(logits, target, atol=1e-4, rtol=0)
    assert (logits.argmax(-1) == task.label(task.grid_inputs)).all()


@pytest.mark.parametrize("p,S", [(ADD_P, ADD_S), (17, [1, 2, 4, 8]), (17, [3, 5, 6, 7])])
def test_analytic_network_key_frequencies_by_every_method(p, S):
    model = analytic_mlp(p, S)
    task = gi.ModularArithmetic(p)
    for method in ("logit", "embed", "neuron"):
        assert key_frequencies(model, task, method=method) == S, method
    assert key_frequencies(model) == S  # default: logit method, additive basis


def test_planted_relu_network_key_frequencies_by_every_method():
    S = [2, 5, 9]
    model = planted_mlp(23, S)
    for method in ("logit", "embed", "neuron"):
        assert key_frequencies(model, method=method) == S, method
    nf = neuron_frequencies(model)
    assert set(nf.frequency.tolist()) == set(S)
    # each neuron reads one frequency: its planted one dominates
    assert nf.frequency.tolist() == [k for k in S for _ in range(6)]


def test_spectra_vanish_outside_the_planted_frequencies():
    model = analytic_mlp(ADD_P, ADD_S)
    outside = [k for k in range(1, ADD_P // 2 + 1) if k not in ADD_S]
    emb = embedding_spectrum(model)
    assert emb.shape == (ADD_P // 2 + 1,)
    assert emb[outside].abs().max() < 1e-5 and (emb[ADD_S] > 1).all()
    assert emb[0] == pytest.approx(math.sqrt(ADD_P), rel=1e-5)  # the constant embedding dimension
    logit = neuron_logit_spectrum(model)
    assert logit.shape == (ADD_P // 2 + 1, 8 * len(ADD_S))
    assert logit[outside].abs().max() < 1e-5 and logit[0].abs().max() < 1e-5
    ins = neuron_input_spectrum(model)
    assert ins[outside].abs().max() < 1e-5
    # every neuron reads one frequency of S (plus, for some, the constant)
    assert ((ins[1:] > 1e-5).sum(0) == 1).all()


def test_neuron_activation_spectrum_is_centred_and_parseval():
    model = planted_mlp(13, [2, 5])
    coeffs = neuron_activation_spectrum(model)
    assert coeffs.shape == (13, 13, 12)
    assert coeffs[0, 0].abs().max() == 0
    post = grid_activations(model).post.double()
    centred = post - post.mean(0)
    torch.testing.assert_close(coeffs.square().sum((0, 1)), centred.square().sum(0), rtol=1e-6, atol=1e-9)


def test_neuron_frequencies_of_the_analytic_network():
    model = analytic_mlp(ADD_P, ADD_S)
    nf = neuron_frequencies(model)
    assert nf.threshold == CLUSTER_THRESHOLD
    assert set(nf.frequency.tolist()) == set(ADD_S)
    # (cos wa + cos wb)² puts 1 of its 1.25 variance in frequency k, 0.25 in 2k: fraction 0.8
    single = torch.tensor([i % 8 < 4 for i in range(len(nf.fraction))])
    torch.testing.assert_close(nf.fraction[single], torch.full((int(single.sum()),), 0.8), atol=1e-4, rtol=0)
    assert (nf.cluster[single] == -1).all() and (nf.cluster[~single] >= 1).all()
    assert set(nf.clusters()) == set(ADD_S)
    assert nf.explained_share == pytest.approx(0.5)
    assert neuron_frequencies(model, threshold=0.75).explained_share == 1.0
    assert ((nf.fractions >= 0) & (nf.fractions <= 1 + 1e-6)).all()
    with pytest.raises(GrokinterpError, match="threshold"):
        neuron_frequencies(model, threshold=0)


def test_select_frequencies_uses_a_relative_threshold_and_no_count():
    scores = torch.tensor([100.0, 1.0, 0.05, 0.5, 0.2, 0.09])  # index 0 (constant) is ignored
    assert select_frequencies(scores) == [1, 3, 4]
    assert select_frequencies(scores, threshold=0.5) == [1, 3]
    many = torch.cat([torch.zeros(1), torch.ones(40)])
    assert select_frequencies(many) == list(range(1, 41))  # never capped
    assert select_frequencies(torch.zeros(5)) == []
    with pytest.raises(GrokinterpError, match="threshold"):
        select_frequencies(scores, threshold=1.5)
    with pytest.raises(GrokinterpError, match="method"):
        key_frequencies(planted_mlp(13, [2]), method="argmax")


# --------------------------------------------------------------------- multiplication, discrete log
def test_discrete_log_network_is_sparse_in_the_multiplicative_basis_only():
    p, S = 23, [1, 3, 7]
    model = planted_mlp(p, S, multiplicative=True)
    mul = gi.ModularArithmetic(p, op="mul")
    add = gi.ModularArithmetic(p, op="add")
    for method in ("logit", "embed", "neuron"):
        assert key_frequencies(model, mul, method=method) == S, method  # chosen from task.op
        assert len(key_frequencies(model, add, method=method)) >= 6, method
    assert key_frequencies(model, basis="multiplicative") == S
    mult_emb = embedding_spectrum(model, mul)
    assert mult_emb.shape == (12,)
    assert mult_emb[[k for k in range(1, 12) if k not in S]].max() < 1e-5
    add_emb = embedding_spectrum(model, add)
    assert (add_emb[1:] > 0.05 * add_emb[1:].max()).sum() >= 8
    assert fourier_entropy(model, task=mul) < 1e-6
    assert fourier_entropy(model, task=add) > 1.0


def test_analytic_discrete_log_network():
    p, S = 23, [2, 4, 6, 8, 10]  # closed under doubling mod 22
    model = analytic_mlp(p, S, multiplicative=True)
    mul = gi.ModularArithmetic(p, op="mul")
    for method in ("logit", "embed", "neuron"):
        assert key_frequencies(model, mul, method=method) == S, method


# ---------------------------------------------------------------------------------------- entropy
def _mlp_with(p, W_in, d_embed=None):
    d_embed = d_embed or p
    model = gi.HookedMLP(gi.MLPConfig(p, d_embed=d_embed, d_hidden=W_in.shape[1]))
    with torch.no_grad():
        model.W_E.copy_(torch.eye(p, d_embed))
        model.W_in.copy_(W_in)
    return model


def test_fourier_entropy_uniform_one_hot_sign_and_scale():
    p = 13
    n_freqs = (p - 1) // 2
    delta = torch.zeros(p, 3)  # a delta over tokens has the same power in every frequency
    delta[0, 0] = delta[4, 1] = delta[9, 2] = 1.0
    assert fourier_entropy(_mlp_with(p, delta)) == pytest.approx(math.log(n_freqs), abs=1e-6)
    x = torch.arange(p, dtype=torch.float64)
    pure = torch.stack([torch.cos(2 * math.pi * 3 * x / p), torch.sin(2 * math.pi * 5 * x / p + 1)], 1).float()
    assert fourier_entropy(_mlp_with(p, pure)) == pytest.approx(0.0, abs=1e-6)
    W = torch.randn(p, 6, generator=torch.Generator().manual_seed(0))
    h = fourier_entropy(_mlp_with(p, W), reduce="none")
    assert h.shape == (6,) and ((h > 0) & (h < math.log(n_freqs))).all()
    scaled = W * torch.tensor([-1.0, 3.0, -0.01, 1e3, 1.0, -7.0])
    torch.testing.assert_close(fourier_entropy(_mlp_with(p, scaled), reduce="none"), h, atol=1e-5, rtol=0)
    assert fourier_entropy(_mlp_with(p, -5 * W)) == pytest.approx(float(h.mean()), abs=1e-5)
    with_const = fourier_entropy(_mlp_with(p, delta), include_constant=True)
    assert with_const > math.log(n_freqs)  # the constant is one more (lighter) entry


def test_fourier_entropy_output_side_and_masks():
    p = 11
    model = planted_mlp(p, [2, 3])
    assert 0 < fourier_entropy(model, side="out") <= math.log(2) + 1e-6  # rows of W_L mix two frequencies
    assert fourier_entropy(planted_mlp(p, [4]), side="out") == pytest.approx(0.0, abs=1e-6)
    W = torch.randn(p, 4, generator=torch.Generator().manual_seed(1))
    model = _mlp_with(p, W)
    mask = {"W_in": torch.ones(p, 4, dtype=torch.bool)}
    mask["W_in"][1:, 0] = False  # neuron 0 keeps one token: a delta, uniform spectrum
    mask["W_in"][:, 3] = False  # neuron 3 fully pruned: left out of the mean
    h = fourier_entropy(model, mask=mask, reduce="none")
    assert h[0].item() == pytest.approx(math.log(5), abs=1e-6)
    assert torch.isnan(h[3])
    expected = fourier_entropy(_mlp_with(p, W * mask["W_in"]), reduce="none")
    torch.testing.assert_close(h[:3], expected[:3])
    assert fourier_entropy(model, mask=mask) == pytest.approx(float(h[:3].mean()), abs=1e-6)
    with pytest.raises(GrokinterpError, match="all zero|zero"):
        fourier_entropy(model, mask={"W_in": torch.zeros(p, 4, dtype=torch.bool)})
    with pytest.raises(GrokinterpError, match="side"):
        fourier_entropy(model, side="both")
    with pytest.raises(gi.MaskError, match="W_bogus"):
        fourier_entropy(model, mask={"W_bogus": torch.ones(2, dtype=torch.bool)})


# ------------------------------------------------------------------------------------ transformer
def _small_transformer(**kw):
    cfg = dict(p=13, n_heads=2, d_model=16, d_head=8, d_mlp=24, seed=3)
    cfg.update(kw)
    return gi.make_transformer(gi.TransformerConfig(**cfg))


def test_transformer_effective_input_weights():
    model = _small_transformer()
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    ov = torch.einsum("hde,hef->df", attn.W_V, attn.W_O)
    expected = model.W_E[:13] @ ov @ mlp.W_in
    torch.testing.assert_close(neuron_input_weights(model), expected.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(neuron_input_weights(model, "embed"), (model.W_E[:13] @ mlp.W_in).detach())
    assert neuron_input_spectrum(model).shape == (7, 24)
    assert neuron_input_spectrum(model, path="embed").shape == (7, 24)
    with pytest.raises(GrokinterpError, match="path"):
        neuron_input_weights(model, "qk")
    with pytest.raises(GrokinterpError, match="one-layer"):
        neuron_input_weights(_small_transformer(n_layers=2))


def test_transformer_with_planted_embedding_and_unembedding():
    p, S = 13, [2, 5]
    model = _small_transformer(p=p)
    x = torch.arange(p, dtype=torch.float64)
    rows = torch.stack([f(2 * math.pi * k * x / p) for k in S for f in (torch.cos, torch.sin)])  # (4, p)
    with torch.no_grad():
        model.W_E[:p] = 0
        model.W_E[:p, :4] = rows.T.float()
        sd = dict(model.state_dict(keep_vars=True))
        sd["unembed.weight"].zero_()
        sd["unembed.weight"][:, :4] = rows.T.float()
    assert key_frequencies(model, method="embed") == S
    assert key_frequencies(model, method="logit") == S
    assert (embedding_spectrum(model)[[k for k in range(1, 7) if k not in S]] < 1e-5).all()


def test_grid_activations_match_the_models():
    model = _small_transformer()
    grid = gi.ModularArithmetic(13).grid_inputs
    acts = grid_activations(model)
    logits, post = hooked_logits_and_post(model, grid)
    torch.testing.assert_close(acts.logits, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(acts.post, post, atol=1e-5, rtol=1e-4)
    _, cache = model.run_with_cache(torch.cat([grid, torch.full((169, 1), 13)], 1))
    torch.testing.assert_close(acts.pattern[:, 0], cache["pattern", 0][:, :, -1], atol=1e-6, rtol=1e-5)
    mlp = planted_mlp(13, [1])
    torch.testing.assert_close(grid_activations(mlp).logits, mlp(grid))
    w = as_weights(mlp)
    torch.testing.assert_close(grid_activations(w, grid[:5]).logits, mlp(grid[:5]))
    with pytest.raises(GrokinterpError, match="pairs"):
        grid_activations(mlp, torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(GrokinterpError, match="grokinterp model"):
        as_weights(torch.nn.Linear(2, 2))
    with pytest.raises(GrokinterpError, match="p=13"):
        key_frequencies(mlp, gi.ModularArithmetic(11))
