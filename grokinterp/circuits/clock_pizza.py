"""Clock or pizza: the algorithm diagnostics of Zhong et al. 2023 ("The clock and the pizza: two
stories in mechanistic explanation of neural networks"), for modular addition.

A network that adds mod p with key frequencies ``w_k = 2πk/p`` can run the *clock*: its logits go
as ``cos(w(a + b - c))`` (Nanda et al. 2023), or the *pizza*: it adds the embeddings ``E_a + E_b``
first, so its logits depend on ``|cos(w(a - b)/2)|`` and on ``a + b``. The diagnostics here tell
the two apart from a model's logits, gradients and embeddings; every one needs the full ``p x p``
grid of an addition task.

* **Distance irrelevance** ``q``: the correct-answer logit ``L(a, b) = logit_{(a+b) mod p}(a, b)``
  arranged by ``s = a + b`` and ``d = a - b`` (mod p); ``q = mean_d std_s L / std L`` (population
  standard deviations). The clock's correct logit does not depend on the distance ``d`` (``q ≈ 1``);
  the pizza's does (``q`` small). The clock-vs-pizza authors' sweep table stored this statistic of
  the largest *wrong* logit by a slip in their script; this is the correct-logit one of their paper.
* **Circularity**: the embedding rows ``W_E[x]`` (centred over tokens) in their first principal
  components; for each component, the share of its power over tokens in its strongest frequency
  (a p-vector ``v``: ``max_k P_k(v) / Σ_k P_k(v)`` with ``P_k`` the power in cos k and sin k);
  averaged over the components. An embedding that lies on circles of single frequencies scores 1.
* **Logit fraction of variance explained** by each template at each key frequency ``w``: the clock
  ``T_clock = cos(w(a + b - c))`` and the pizza
  ``T_pizza = 2 |cos(w(a - b)/2)| (|cos(w(a + b - c)/2)| - |sin(w(a + b - c)/2)|)``. Logits and
  template are centred over ``c`` for each pair (softmax does not see a shift); the FVE is
  ``<L, T>² / (‖L‖² ‖T‖²)``, the share of the logits' variance the best multiple of the template
  explains.
* **Gradient symmetricity** (:func:`gradient_symmetricity`): the cosine between the gradients of a
  logit with respect to the embedding vectors of ``a`` and of ``b``; the pizza, which reads
  ``E_a + E_b``, gives 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from ..errors import GrokinterpError
from ..fourier.basis import fft1d, frequency_power, get_basis
from ..fourier.grid import GridAnalysis
from ..models import Model, is_model, to_tokens
from ..models.weights import ModelLike, ModelWeights, as_weights, grid_activations
from ..tasks import require_modular

__all__ = [
    "CLOCK_DISTANCE_IRRELEVANCE",
    "ClockPizza",
    "PIZZA_DISTANCE_IRRELEVANCE",
    "PIZZA_SYMMETRICITY",
    "TemplateFit",
    "circularity",
    "clock_or_pizza",
    "gradient_symmetricity",
    "distance_irrelevance",
    "pizza_template",
    "clock_template",
    "correct_logit_by_distance",
    "template_fve",
]


def _full_grid_task(w: ModelWeights, task, what: str):
    if task is None:
        return None
    task = require_modular(task, what)
    if task.p != w.p:
        raise GrokinterpError(f"the model is built for p={w.p} but the task has p={task.p}")
    if task.op != "add" or task.pairs != "all":
        raise GrokinterpError(
            f"{what} is defined for addition over the full grid of p² pairs; this task is {task.op} over pairs "
            f"{task.pairs!r}"
        )
    return task


Source = ModelLike | Float[Tensor, "p p c"]


def _grid_logits(source: Source, task, what: str) -> Float[Tensor, "p p c"]:
    """Grid logits ``[a, b, c]`` of a model (its task checked), or given as such a tensor, in their
    own dtype: every use below takes its values in float64 (a block at a time for the p³ sums)."""
    if isinstance(source, Tensor):
        if source.ndim != 3 or not source.shape[0] == source.shape[1] == source.shape[2]:
            raise GrokinterpError(f"grid logits must have shape (p, p, p) indexed [a, b, c], got {tuple(source.shape)}")
        return source.detach().cpu()
    w = as_weights(source)
    _full_grid_task(w, task, what)
    return rearrange(grid_activations(w).logits.cpu(), "(a b) c -> a b c", a=w.p)


def correct_logit_by_distance(source: Source, task=None) -> Float[Tensor, "p p"]:
    """The correct-answer logit ``logit_{(a+b) mod p}(a, b)`` arranged ``[d, s]`` by the distance
    ``d = (a - b) mod p`` (rows) and the sum ``s = (a + b) mod p`` (columns), of a model or of its
    grid logits ``[a, b, c]`` (for odd p each (d, s) is one pair)."""
    L = _grid_logits(source, task, "the correct logit by sum and distance")
    p = L.shape[0]
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    out = torch.empty(p, p, dtype=torch.float64)
    out[(a - b) % p, (a + b) % p] = L[a, b, (a + b) % p].double()
    return out


def distance_irrelevance(source: Source, task=None) -> float:
    """``q = mean_d std_s L(s, d) / std L`` of the correct-answer logit (see the module docstring),
    of a model or of its grid logits ``[a, b, c]``."""
    by_ds = correct_logit_by_distance(source, task)
    total = by_ds.std(unbiased=False)
    if float(total) == 0.0:
        raise GrokinterpError("the correct-answer logit is constant over the grid: distance irrelevance is 0/0")
    return float(by_ds.std(dim=1, unbiased=False).mean() / total)


def circularity(model: ModelLike, n_components: int = 4) -> float:
    """Mean over the first ``n_components`` principal components of the centred embedding of the
    share of each component's power over tokens in its strongest frequency (1 for circles)."""
    w = as_weights(model)
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise GrokinterpError(f"n_components must be a whole number >= 1, got {n_components!r}")
    E = w.W_E.double()
    E = E - E.mean(0, keepdim=True)
    _, _, V = torch.linalg.svd(E, full_matrices=False)
    k = min(n_components, V.shape[0])
    components = (E @ V[:k].T).T  # (k, p): each row a component over tokens
    B = get_basis(w.p, "additive")
    power = frequency_power(fft1d(components, B), B)[:, 1:]  # (k, f), the constant left out
    shares = power.max(1).values / power.sum(1).clamp_min(torch.finfo(torch.float64).tiny)
    return float(shares.mean())


def clock_template(p: int, freq: int) -> Float[Tensor, "p p c"]:
    """``cos(w(a + b - c))`` with ``w = 2π freq / p``, indexed ``[a, b, c]``."""
    a, b, c = _axes(p)
    return torch.cos(2 * math.pi * freq / p * (a + b - c))


def pizza_template(p: int, freq: int) -> Float[Tensor, "p p c"]:
    """``2 |cos(w(a - b)/2)| (|cos(w(a + b - c)/2)| - |sin(w(a + b - c)/2)|)``, indexed ``[a, b, c]``."""
    a, b, c = _axes(p)
    w = 2 * math.pi * freq / p
    return 2 * torch.cos(w * (a - b) / 2).abs() * (torch.cos(w * (a + b - c) / 2).abs() - torch.sin(w * (a + b - c) / 2).abs())


def _axes(p: int) -> tuple[Tensor, Tensor, Tensor]:
    x = torch.arange(p, dtype=torch.float64)
    return x[:, None, None], x[None, :, None], x[None, None, :]


@dataclass(frozen=True)
class TemplateFit:
    """Per key frequency, the FVE of the logits by the clock and by the pizza template."""

    freqs: list[int]
    clock: list[float]
    pizza: list[float]


def _fve(L: Tensor, T: Tensor) -> float:
    """FVE of grid logits ``L`` by one template ``T`` (both centred over ``c``), directly."""
    L = L - L.mean(-1, keepdim=True)
    T = T - T.mean(-1, keepdim=True)
    denom = float(L.square().sum() * T.square().sum())
    return float((L * T).sum() ** 2) / denom if denom > 0 else float("nan")


#: Values of the (a, b, c) logit grid :func:`_binned` centres and bins at once (a block of rows a).
BIN_BLOCK_ELEMENTS = 2**22


def _binned(L: Tensor) -> tuple[Tensor, Tensor]:
    """(M, energy): ``M[d, r] = Σ L(a, b, c)`` over the triples with ``a - b ≡ d`` and ``a + b - c ≡ r`` (mod p),
    of the logits centred over ``c``: both templates depend on ``(d, r)`` only, so every inner
    product with them is one sum over this p x p table; ``energy = Σ L²`` of the centred logits.
    Summed over blocks of rows ``a`` (at most :data:`BIN_BLOCK_ELEMENTS` values at once)."""
    p = L.shape[0]
    b, c = torch.arange(p)[:, None], torch.arange(p)[None, :]
    out = torch.zeros(p * p, dtype=torch.float64)
    energy = torch.zeros((), dtype=torch.float64)
    step = max(1, BIN_BLOCK_ELEMENTS // (p * p))
    for a0 in range(0, p, step):
        block = L[a0 : a0 + step].double()
        block = block - block.mean(-1, keepdim=True)
        a = torch.arange(a0, a0 + block.shape[0])[:, None, None]
        bins = ((a - b[None]) % p) * p + (a + b[None] - c[None]) % p
        out += torch.bincount(bins.reshape(-1), weights=block.reshape(-1), minlength=p * p)
        energy += block.square().sum()
    return out.reshape(p, p), energy


def template_fve(source: Source, freqs: list[int], task=None) -> TemplateFit:
    """FVE of the grid logits (of a model, or given ``[a, b, c]``) by ``clock_template`` and
    ``pizza_template`` at each frequency.

    Computed in closed form from the (distance, residue) table of :func:`_binned`: with the
    logits centred over ``c``, ``<L, T> = Σ_{d,r} M[d, r] T(d, r)``; the clock template has zero
    mean over ``c``, so ``‖T‖² = p³/2``; the pizza template ``2 u(d) v(r)`` centred over ``c`` has
    ``‖T‖² = 4 p Σ_d u(d)² (Σ_r v(r)² - p v̄²)`` (p pairs per distance). Equal to :func:`_fve` of the
    templates, at p² cost per frequency instead of p³."""
    L = _grid_logits(source, task, "the clock / pizza template fit")
    p = L.shape[0]
    freqs = [int(k) for k in freqs]
    bad = [k for k in freqs if not 1 <= k <= (p - 1) // 2]
    if bad:
        raise GrokinterpError(f"frequencies {bad} are not in 1 .. {(p - 1) // 2} for p={p}")
    M, energy = _binned(L)
    energy = float(energy)
    x = torch.arange(p, dtype=torch.float64)
    clock, pizza = [], []
    for k in freqs:
        w = 2 * math.pi * k / p
        cos_r = torch.cos(w * x)
        clock.append(float((M * cos_r[None, :]).sum()) ** 2 / (energy * p**3 / 2) if energy > 0 else float("nan"))
        u = 2 * torch.cos(w * x / 2).abs()
        v = torch.cos(w * x / 2).abs() - torch.sin(w * x / 2).abs()
        norm = p * float(u.square().sum()) * float(v.square().sum() - p * v.mean() ** 2)
        pizza.append(float((M * u[:, None] * v[None, :]).sum()) ** 2 / (energy * norm) if energy > 0 and norm > 0 else float("nan"))
    return TemplateFit(freqs, clock, pizza)


def gradient_symmetricity(
    model: Model, task=None, *, n_samples: int = 1000, seed: int = 0, all_triples: bool = False, batch: int = 4096
) -> float:
    """Mean over triples ``(a, b, c)`` of the cosine between ``∂ logit_c(a, b) / ∂e_a`` and
    ``∂ logit_c(a, b) / ∂e_b``, the gradients with respect to the token embedding vectors of the
    two operands as the model reads them (its ``hook_embed``, before any positional embedding).
    ``c`` is any class, not only the answer. The triples are ``n_samples`` drawn uniformly from a
    generator seeded with ``seed``, or all ``p³`` with ``all_triples``.

    A model that reads ``E_a + E_b`` (the pizza, and every MLP of this package) gives exactly 1; the
    clock's attention mixes the operands unequally and gives less (Zhong et al. 2023)."""
    if not is_model(model):
        raise GrokinterpError(f"gradient symmetricity needs a hooked grokinterp model, got {type(model).__name__}")
    w = as_weights(model)
    _full_grid_task(w, task, "gradient symmetricity")
    p = w.p
    if all_triples:
        g = torch.arange(p)
        triples = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise GrokinterpError(f"n_samples must be a whole number >= 1, got {n_samples!r}")
        triples = torch.randint(0, p, (n_samples, 3), generator=torch.Generator().manual_seed(int(seed)))
    cosines = [_embedding_gradient_cosines(model, chunk) for chunk in triples.split(batch)]
    return float(torch.cat(cosines).mean())


def _embedding_gradient_cosines(model: Model, triples: Tensor) -> Tensor:
    saved: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> Tensor:
        saved["embed"] = act.detach().requires_grad_(True)
        return saved["embed"]

    with torch.enable_grad():
        logits = model.run_with_hooks(to_tokens(model, triples[:, :2]), fwd_hooks=[("hook_embed", keep)])
        answer = logits[:, -1] if logits.ndim == 3 else logits
        picked = answer[torch.arange(len(triples)), triples[:, 2]].sum()
        (grad,) = torch.autograd.grad(picked, saved["embed"])
    return torch.nn.functional.cosine_similarity(grad[:, 0].double(), grad[:, 1].double(), dim=-1)


# declared thresholds of the verdict (see :func:`clock_or_pizza`)
PIZZA_SYMMETRICITY = 0.95
PIZZA_DISTANCE_IRRELEVANCE = 0.5
CLOCK_DISTANCE_IRRELEVANCE = 0.8


@dataclass(frozen=True)
class ClockPizza:
    """The diagnostics of one model and the verdict they give."""

    gradient_symmetricity: float
    distance_irrelevance: float
    circularity: float
    templates: TemplateFit
    verdict: str
    reason: str


def clock_or_pizza(
    model: Model, freqs: list[int], task=None, *, n_samples: int = 1000, seed: int = 0, grid: GridAnalysis | None = None
) -> ClockPizza:
    """All diagnostics of a model at its key frequencies ``freqs`` and a verdict:

    * ``"pizza"`` when gradient symmetricity >= :data:`PIZZA_SYMMETRICITY` and distance
      irrelevance <= :data:`PIZZA_DISTANCE_IRRELEVANCE` (the correct logit follows ``a - b``);
    * ``"clock"`` when gradient symmetricity < :data:`PIZZA_SYMMETRICITY` and distance irrelevance
      >= :data:`CLOCK_DISTANCE_IRRELEVANCE`;
    * ``"mixed"`` otherwise. ``reason`` says which numbers decided it.

    ``grid``: the model's :class:`~grokinterp.fourier.grid.GridAnalysis` when one is at hand (its
    grid forward is reused).
    """
    sym = gradient_symmetricity(model, task, n_samples=n_samples, seed=seed)  # checks the task
    if grid is not None and grid.p != as_weights(model).p:
        raise GrokinterpError(f"the grid analysis is of a model with p={grid.p}, this model has p={as_weights(model).p}")
    # one grid forward for both logit diagnostics
    source = model if grid is None else rearrange(grid.logits, "(a b) c -> a b c", a=grid.p)
    logits = _grid_logits(source, task, "clock or pizza")
    q = distance_irrelevance(logits)
    circ = circularity(model)
    fit = template_fve(logits, freqs)
    pizza_sym, clock_q, pizza_q = sym >= PIZZA_SYMMETRICITY, q >= CLOCK_DISTANCE_IRRELEVANCE, q <= PIZZA_DISTANCE_IRRELEVANCE
    numbers = f"gradient symmetricity {sym:.3f}, distance irrelevance {q:.3f}"
    if pizza_sym and pizza_q:
        verdict, reason = "pizza", f"{numbers}: the gradients treat a and b alike and the correct logit follows a - b"
    elif not pizza_sym and clock_q:
        verdict, reason = "clock", f"{numbers}: the operands enter unequally and the correct logit ignores a - b"
    else:
        verdict, reason = "mixed", f"{numbers}: the two diagnostics disagree"
    return ClockPizza(sym, q, circ, fit, verdict, reason)
