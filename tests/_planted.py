"""Networks with planted Fourier structure, built by hand, for the analysis tests.

``analytic_mlp``: a quadratic-activation HookedMLP whose logits are *exactly*
``Σ_{k∈S} cos(w_k(x_a + x_b - x_c))`` (x = the token, or its discrete log for the multiplicative
group). With a shared embedding the neuron input is ``f(a) + f(b)`` and
``(f(a) + f(b))² = f(a)² + f(b)² + 2 f(a) f(b)``, so the logits are ``2B(a,b) + B(a,a) + B(b,b)``
for the bilinear form ``B = Σ_n u_n(c) f_n ⊗ f_n``. Choosing ``B(a,b) = T(a,b)/2 - T(a,a)/8 - T(b,b)/8``
with ``T = Σ_k cos(w_k(a+b-c))`` gives exactly T. The ``T(a,a) = Σ_k cos(w_k(2a - c))`` terms need
frequency 2k in the embedding, so S must be closed under doubling (mod n, up to sign), e.g.
{1, 2, 4, 8, 15} for p = 31. Neurons (8 per frequency):
``cos``, ``sin``, ``sin ± cos`` realise T(a,b)/2; ``cos 2k ± 1``, ``sin 2k ± 1`` realise the rest
(``x⊗1 + 1⊗x = ((x+1)⊗(x+1) - (x-1)⊗(x-1))/2``).

``planted_mlp``: a ReLU HookedMLP whose embedding and unembedding are cos/sin of the frequencies in S
with random phases and whose neurons each read one frequency; not a solution, just a network whose
only frequencies are S.
"""

from __future__ import annotations

import math

import torch

import grokinterp as gi
from grokinterp.fourier import primitive_root


def _fold(k: int, n: int) -> tuple[int, int]:
    """(frequency in 1..n//2 of the residue k mod n, sign of its sine)."""
    k %= n
    return (k, 1) if k <= n // 2 else (n - k, -1)


def group_positions(p: int, multiplicative: bool) -> tuple[torch.Tensor, int]:
    """Group position of each token (-1 outside the group) and the group order."""
    if not multiplicative:
        return torch.arange(p), p
    g = primitive_root(p)
    pos = torch.full((p,), -1, dtype=torch.long)
    for x in range(p - 1):
        pos[pow(g, x, p)] = x
    return pos, p - 1


def _trig_rows(freqs, pos, n, phase=None):
    """(2|S|, p): cos / sin(w_k x + φ_k) of each token's group position, 0 outside the group."""
    x = pos.clamp(min=0).double()
    rows = []
    for i, k in enumerate(freqs):
        ph = 0.0 if phase is None else float(phase[i])
        w = 2 * math.pi * k / n
        rows += [torch.cos(w * x + ph), torch.sin(w * x + ph)]
    out = torch.stack(rows) * (pos >= 0).double()
    return out


def analytic_mlp(p: int, freqs: list[int], multiplicative: bool = False) -> gi.HookedMLP:
    pos, n = group_positions(p, multiplicative)
    freqs = list(freqs)
    index = {k: i for i, k in enumerate(freqs)}
    for k in freqs:
        k2, _ = _fold(2 * k, n)
        if k2 not in index:
            raise ValueError(f"S must be closed under doubling mod {n}: 2*{k} -> {k2} is missing")
    d = 2 * len(freqs) + 1
    one = d - 1
    W_E = torch.zeros(p, d, dtype=torch.float64)
    W_E[:, : 2 * len(freqs)] = _trig_rows(freqs, pos, n).T
    W_E[:, one] = (pos >= 0).double()
    W_U = torch.zeros(d, p, dtype=torch.float64)
    W_U[: 2 * len(freqs)] = _trig_rows(freqs, pos, n)

    def e(i):
        v = torch.zeros(d, dtype=torch.float64)
        v[i] = 1.0
        return v

    ins, outs = [], []
    for k in freqs:
        c, s = e(2 * index[k]), e(2 * index[k] + 1)  # cos k, sin k (embedding and answer side)
        k2, sgn = _fold(2 * k, n)
        c2, s2 = e(2 * index[k2]), sgn * e(2 * index[k2] + 1)  # cos 2k, sin 2k in the embedding
        neurons = [
            (c, 0.5 * c),
            (s, -0.5 * c),
            (s + c, 0.25 * s),
            (s - c, -0.25 * s),
            (c2 + e(one), -c / 16),
            (c2 - e(one), c / 16),
            (s2 + e(one), -s / 16),
            (s2 - e(one), s / 16),
        ]
        for v, u in neurons:
            ins.append(v)
            outs.append(u)
    W_in = torch.stack(ins, dim=1)
    W_out = torch.stack(outs)
    model = gi.HookedMLP(gi.MLPConfig(p, d_embed=d, d_hidden=W_in.shape[1], act="quadratic"))
    with torch.no_grad():
        for name, value in (("W_E", W_E), ("W_in", W_in), ("W_out", W_out), ("W_U", W_U)):
            getattr(model, name).copy_(value.float())
    return model


def planted_mlp(p: int, freqs: list[int], multiplicative: bool = False, neurons_per_freq: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pos, n = group_positions(p, multiplicative)
    phase = torch.rand(len(freqs), generator=gen, dtype=torch.float64) * 2 * math.pi
    W_E = _trig_rows(freqs, pos, n, phase).T  # (p, 2|S|)
    d = W_E.shape[1]
    h = neurons_per_freq * len(freqs)
    W_in = torch.zeros(d, h, dtype=torch.float64)
    for i in range(len(freqs)):
        cols = slice(i * neurons_per_freq, (i + 1) * neurons_per_freq)
        W_in[2 * i : 2 * i + 2, cols] = torch.randn(2, neurons_per_freq, generator=gen, dtype=torch.float64)
    W_out = torch.randn(h, d, generator=gen, dtype=torch.float64)
    W_U = _trig_rows(freqs, pos, n, -phase)
    model = gi.HookedMLP(gi.MLPConfig(p, d_embed=d, d_hidden=h, act="relu"))
    with torch.no_grad():
        for name, value in (("W_E", W_E), ("W_in", W_in), ("W_out", W_out), ("W_U", W_U)):
            getattr(model, name).copy_(value.float())
    return model


@torch.no_grad()
def hooked_logits_and_post(model, inputs):
    """Logits at the answer position and the last MLP layer's neurons, read from the model's own
    hooked forward (TransformerLens's ``run_with_cache``): an independent reference for the
    hook-free forward of :class:`grokinterp.models.ModelWeights`."""
    if isinstance(model, gi.HookedMLP):
        logits, cache = model.run_with_cache(inputs, names_filter="blocks.0.mlp.hook_post")
        return logits, cache["post", 0]
    name = f"blocks.{model.grokinterp_config.n_layers - 1}.mlp.hook_post"
    logits, cache = model.run_with_cache(gi.models.to_tokens(model, inputs), names_filter=name)
    return logits[:, -1], cache[name][:, -1]
