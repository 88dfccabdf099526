"""Real Fourier bases over Z_p (additive) and Z_p^* (multiplicative), transforms and projections.

Conventions (Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability"):

* The additive basis ``F`` of size ``n x n`` has rows ``0 = const`` (``1/sqrt(n)``),
  ``2k-1 = cos(2πkx/n)``, ``2k = sin(2πkx/n)``, each normalised to unit norm, for
  ``k = 1 .. (n-1)//2``; an even ``n`` gets one more row, ``cos(πx)`` (named ``"cos n/2"``).
  ``F`` is orthonormal, so a transform is ``x @ F.T`` and its inverse ``c @ F``.
* "Frequency ``k``" means the rows ``cos k`` and ``sin k`` together; frequency 0 is the constant.
  ``n_freqs = n//2`` non-constant frequencies.
* 2D transforms act on a grid indexed ``[a, b]``: the row index of the result is the ``a`` component,
  the column index the ``b`` component.
* The multiplicative basis (for ``mul`` / ``div`` on prime p) sets token 0 aside and reindexes the
  tokens ``1 .. p-1`` by their discrete logarithm base ``g`` (the smallest primitive root: 113 → 3,
  23 → 5): group position ``x`` is the token ``g^x mod p``. On those positions it is the additive basis
  of ``Z_{p-1}``. Transforms gather the tokens in that order (token 0 drops out); grids of
  directions are returned in token coordinates with zeros wherever a token is 0.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Union

import torch
from einops import einsum, rearrange
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import GrokinterpError
from ..tasks import is_prime

__all__ = [
    "BasisKind",
    "FourierBasis",
    "OP_SIGNS",
    "basis_for_op",
    "fft1d",
    "fft2d",
    "fourier_2d_basis_term",
    "fourier_basis",
    "frequency_membership",
    "frequency_power",
    "frequency_power_2d",
    "get_basis",
    "group_grid_rows",
    "group_sums",
    "ifft1d",
    "ifft2d",
    "multiplicative_basis",
    "op_sign",
    "primitive_root",
    "project_onto_direction",
    "project_onto_frequency",
    "spectral_entropy",
    "sum_direction_table",
    "sum_direction_values",
    "sum_directions",
]

BasisKind = Literal["additive", "multiplicative"]

# ops whose circuit lives in the multiplicative group, and the sign of the second operand there
_MULTIPLICATIVE_OPS = ("mul", "div")
# op -> sign s such that the answer depends on x_a + s * x_b in the group coordinate
OP_SIGNS = {"add": 1, "sub": -1, "mul": 1, "div": -1}


# ---------------------------------------------------------------------------------------- bases
@lru_cache(maxsize=None)
def _additive_rows(n: int) -> tuple[Tensor, tuple[str, ...]]:
    """float64 basis and names, cached per n (callers must not modify the tensor)."""
    x = torch.arange(n, dtype=torch.float64)
    rows = [torch.ones(n, dtype=torch.float64)]
    names = ["const"]
    for k in range(1, (n - 1) // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / n), torch.sin(2 * math.pi * k * x / n)]
        names += [f"cos {k}", f"sin {k}"]
    if n % 2 == 0:
        rows.append(torch.cos(math.pi * x))
        names.append(f"cos {n // 2}")
    F = torch.stack(rows)
    F = F / F.norm(dim=1, keepdim=True)
    return F, tuple(names)


def _check_size(n: object, what: str = "p") -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise GrokinterpError(f"{what} must be an integer >= 2, got {n!r}")
    return n


def fourier_basis(p: int, dtype: torch.dtype = torch.float32) -> tuple[Float[Tensor, "p p"], list[str]]:
    """The real orthonormal Fourier basis of Z_p as rows, and the row names.

    ``F[0] = 1/sqrt(p)``, ``F[2k-1] ∝ cos(2πkx/p)``, ``F[2k] ∝ sin(2πkx/p)`` (unit norm), plus
    ``F[p-1] ∝ cos(πx)`` for even p; names ``["const", "cos 1", "sin 1", ...]``. Computed in float64
    once per p (cached) and returned as a fresh tensor of ``dtype``.
    """
    F, names = _additive_rows(_check_size(p))
    return F.to(dtype=dtype, copy=True), list(names)


@lru_cache(maxsize=None)
def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group Z_p^* (p prime): 113 → 3, 23 → 5."""
    if not is_prime(_check_size(p)):
        raise GrokinterpError(f"a primitive root needs a prime p, got composite p={p}")
    n = p - 1
    factors = {q for q in range(2, n + 1) if n % q == 0 and is_prime(q)}
    for g in range(1, p):
        if all(pow(g, n // q, p) != 1 for q in factors):
            return g
    raise AssertionError("unreachable: every prime has a primitive root")


@dataclass(frozen=True, eq=False)
class FourierBasis:
    """A Fourier basis acting on token-indexed vectors of length ``p``.

    ``matrix`` (n, n) is the additive basis of the group (``n = p`` additive, ``p - 1``
    multiplicative); ``tokens[x]`` is the token at group position ``x`` (``arange(p)`` additive,
    ``g^x mod p`` multiplicative). Transforms are ``x[..., tokens] @ matrix.T``.
    """

    kind: BasisKind
    p: int
    matrix: Float[Tensor, "n n"]
    names: tuple[str, ...]
    tokens: Int[Tensor, " n"]
    generator: int | None = None

    @property
    def n(self) -> int:
        """Order of the group the basis lives on."""
        return self.matrix.shape[0]

    @property
    def n_freqs(self) -> int:
        """Number of non-constant frequencies, ``n // 2``."""
        return self.n // 2

    @property
    def row_frequency(self) -> Int[Tensor, " n"]:
        """Frequency of each basis row: ``[0, 1, 1, 2, 2, ...]``."""
        return (torch.arange(self.n) + 1) // 2

    def rows_of(self, freq: int) -> list[int]:
        """Row indices of frequency ``freq`` (``[0]`` for the constant; one row for ``n/2``)."""
        k = self.check_freq(freq, allow_zero=True)
        if k == 0:
            return [0]
        return [2 * k - 1] if 2 * k == self.n else [2 * k - 1, 2 * k]

    def group_coordinate(self) -> Int[Tensor, " p"]:
        """For each token its group position (the discrete log for the multiplicative basis);
        -1 for a token outside the group (token 0 in the multiplicative basis)."""
        coord = torch.full((self.p,), -1, dtype=torch.long)
        coord[self.tokens] = torch.arange(self.n)
        return coord

    def check_freq(self, freq: object, allow_zero: bool = False) -> int:
        lo = 0 if allow_zero else 1
        try:
            k = operator.index(freq)
        except TypeError:
            k = None
        if k is None or isinstance(freq, bool) or not lo <= k <= self.n_freqs:
            raise GrokinterpError(
                f"frequency {freq!r} is out of range; expected an integer in [{lo}, {self.n_freqs}] for the "
                f"{self.kind} basis of order {self.n}"
            )
        return k

    def __repr__(self) -> str:
        g = f", generator={self.generator}" if self.generator is not None else ""
        return f"FourierBasis(kind={self.kind!r}, p={self.p}, n={self.n}{g})"


@lru_cache(maxsize=None)
def _basis(p: int, kind: str) -> FourierBasis:
    if kind == "additive":
        F, names = _additive_rows(p)
        return FourierBasis("additive", p, F, names, torch.arange(p))
    g = primitive_root(p)
    F, names = _additive_rows(p - 1)
    tokens = torch.tensor([pow(g, x, p) for x in range(p - 1)], dtype=torch.long)
    return FourierBasis("multiplicative", p, F, names, tokens, g)


def multiplicative_basis(p: int) -> FourierBasis:
    """The basis of Z_p^* (p prime): tokens reindexed by the discrete log base the smallest
    primitive root, then the additive basis of Z_{p-1}. Token 0 is outside the group."""
    if not is_prime(_check_size(p)):
        raise GrokinterpError(f"the multiplicative basis needs a prime p, got composite p={p}")
    return _basis(p, "multiplicative")


def get_basis(p: int, kind: BasisKind | FourierBasis = "additive") -> FourierBasis:
    """A :class:`FourierBasis` (cached per p and kind). ``kind`` may already be a basis, which
    is checked against ``p``."""
    _check_size(p)
    if isinstance(kind, FourierBasis):
        if kind.p != p:
            raise GrokinterpError(f"the basis is for p={kind.p} but the data has p={p}")
        return kind
    if kind == "additive":
        return _basis(p, "additive")
    if kind == "multiplicative":
        return multiplicative_basis(p)
    raise GrokinterpError(f"basis must be 'additive', 'multiplicative' or a FourierBasis, got {kind!r}")


def basis_for_op(p: int, op: str) -> FourierBasis:
    """The basis a task's circuit is read in: multiplicative for ``mul`` / ``div``, additive otherwise."""
    return get_basis(p, "multiplicative" if op in _MULTIPLICATIVE_OPS else "additive")


BasisLike = Union[FourierBasis, BasisKind, None]


def _resolve(basis: BasisLike, p: int) -> FourierBasis:
    return get_basis(p, "additive" if basis is None else basis)


# ------------------------------------------------------------------------------------ transforms
def _as_float(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise GrokinterpError(f"expected a torch tensor, got {type(x).__name__}")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def fft1d(x: Float[Tensor, "... p"], basis: BasisLike = None, dim: int = -1) -> Float[Tensor, "... n"]:
    """Fourier components along ``dim``: ``x[..., tokens] @ F.T`` (length n = p additive, p-1
    multiplicative). With ``basis=None`` the additive basis of size ``x.shape[dim]``."""
    x = _as_float(x)
    if x.ndim == 0:
        raise GrokinterpError("fft1d needs at least one dimension")
    B = _resolve(basis, x.shape[dim])
    x = x.movedim(dim, -1).index_select(-1, B.tokens.to(x.device))
    return (x @ B.matrix.to(x).T).movedim(-1, dim)


def ifft1d(c: Float[Tensor, "... n"], basis: BasisLike = None, dim: int = -1) -> Float[Tensor, "... p"]:
    """Inverse of :func:`fft1d`: values on the p tokens (token 0 is 0 in the multiplicative basis)."""
    c = _as_float(c)
    if basis is None:
        B = get_basis(c.shape[dim])
    elif isinstance(basis, FourierBasis):
        B = basis
    else:
        raise GrokinterpError("ifft1d needs basis=None (additive) or a FourierBasis, not a kind name")
    if c.shape[dim] != B.n:
        raise GrokinterpError(f"ifft1d expects {B.n} components along dim {dim}, got {c.shape[dim]}")
    c = c.movedim(dim, -1)
    values = c @ B.matrix.to(c)
    out = values.new_zeros(*values.shape[:-1], B.p)
    out[..., B.tokens] = values
    return out.movedim(-1, dim)


def fft2d(x: Float[Tensor, "p p *rest"], basis: BasisLike = None) -> Float[Tensor, "n n *rest"]:
    """2D Fourier components of a grid ``x[a, b, ...]``: ``F x F^T`` on the first two axes
    (result row ↔ the ``a`` component, column ↔ the ``b`` component)."""
    x = _as_float(x)
    if x.ndim < 2 or x.shape[0] != x.shape[1]:
        raise GrokinterpError(f"fft2d expects a square grid (p, p, ...), got shape {tuple(x.shape)}")
    B = _resolve(basis, x.shape[0])
    if not (B.kind == "additive" and x.is_contiguous()):  # the additive basis reads every token in order: no copy
        x = x.index_select(0, B.tokens.to(x.device)).index_select(1, B.tokens.to(x.device))
    F = B.matrix.to(x)
    # two contractions in a row: a three-operand einsum may form the (p, p, p, p) outer product first
    return einsum(F, einsum(F, x, "i a, a b ... -> i b ..."), "j b, i b ... -> i j ...")


def ifft2d(c: Float[Tensor, "n n *rest"], basis: BasisLike = None) -> Float[Tensor, "p p *rest"]:
    """Inverse of :func:`fft2d` (grid in token coordinates)."""
    c = _as_float(c)
    if c.ndim < 2 or c.shape[0] != c.shape[1]:
        raise GrokinterpError(f"ifft2d expects square components (n, n, ...), got shape {tuple(c.shape)}")
    if basis is None:
        B = get_basis(c.shape[0])
    elif isinstance(basis, FourierBasis):
        B = basis
    else:
        raise GrokinterpError("ifft2d needs basis=None (additive) or a FourierBasis, not a kind name")
    F = B.matrix.to(c)
    values = einsum(F, einsum(F, c, "i a, i j ... -> a j ..."), "j b, a j ... -> a b ...")
    out = values.new_zeros(B.p, B.p, *values.shape[2:])
    idx = B.tokens
    out[idx[:, None], idx[None, :]] = values
    return out


def fourier_2d_basis_term(i: int, j: int, p: int | FourierBasis) -> Float[Tensor, "p p"]:
    """The 2D basis function ``F[i](a) * F[j](b)`` on the (a, b) grid, in token coordinates
    (unit norm; zero where a token lies outside the group)."""
    B = p if isinstance(p, FourierBasis) else get_basis(_check_size(p))
    for name, v in (("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < B.n:
            raise GrokinterpError(f"basis index {name} must be an integer in [0, {B.n}), got {v!r}")
    row = torch.zeros(B.p, dtype=torch.float64)
    col = torch.zeros(B.p, dtype=torch.float64)
    row[B.tokens] = B.matrix[i]
    col[B.tokens] = B.matrix[j]
    return (row[:, None] * col[None, :]).to(torch.get_default_dtype())


# ------------------------------------------------------------------------------------ directions
def sum_directions(freq: int, p: int | FourierBasis, sign: int = 1) -> Float[Tensor, "2 p p"]:
    """Unit-norm grids ``cos(w(x_a + s x_b))`` and ``sin(w(x_a + s x_b))``, ``w = 2πk/n``, on the
    (a, b) grid in token coordinates (``x`` is the group position: the token itself additive, its
    discrete log multiplicative; zero where a token is outside the group). ``sign=-1`` gives the
    difference directions (``sub`` / ``div``). For even n and ``k = n/2`` the sine grid is zero.

    The cos/sin(w_k(a+b)) components of a grid are what the restricted / excluded losses keep and
    remove (Nanda et al. 2023, Sec. 5.1).
    """
    B = p if isinstance(p, FourierBasis) else get_basis(_check_size(p))
    k = B.check_freq(freq)
    if sign not in (1, -1):
        raise GrokinterpError(f"sign must be +1 (a+b) or -1 (a-b), got {sign!r}")
    coord = B.group_coordinate()
    inside = coord >= 0
    x = coord.clamp(min=0).to(torch.float64)
    angle = 2 * math.pi * k / B.n * (x[:, None] + sign * x[None, :])
    keep = (inside[:, None] & inside[None, :]).to(torch.float64)
    grids = torch.stack([torch.cos(angle), torch.sin(angle)]) * keep
    norms = grids.flatten(1).norm(dim=1)
    grids = torch.where(norms[:, None, None] > 1e-9, grids / norms.clamp(min=1e-300)[:, None, None], 0.0)
    return grids.to(torch.get_default_dtype())


def project_onto_direction(
    x: Float[Tensor, "... n"], direction: Float[Tensor, " n"]
) -> Float[Tensor, "... n"]:
    """The component of each vector along ``direction``: ``(x · v / |v|²) v`` (last axis)."""
    x = _as_float(x)
    direction = _as_float(direction).to(x.dtype)
    if direction.ndim != 1 or x.shape[-1] != direction.shape[0]:
        raise GrokinterpError(
            f"direction must be a vector of length {x.shape[-1]} (the last axis of x), got shape "
            f"{tuple(direction.shape)}"
        )
    sq = direction.dot(direction)
    if sq == 0:
        raise GrokinterpError("cannot project onto a zero direction")
    return (x @ direction / sq)[..., None] * direction


def project_onto_frequency(
    x: Float[Tensor, "p p *rest"], freq: int, basis: BasisLike = None
) -> Float[Tensor, "p p *rest"]:
    """The part of a grid ``x[a, b, ...]`` made of the 2D basis terms of frequency ``k``: terms
    ``F_i(a) F_j(b)`` with ``i, j ∈ {const, cos k, sin k}`` except const·const (the terms a neuron
    of frequency k uses; Nanda et al. 2023, App. D)."""
    x = _as_float(x)
    if x.ndim < 2 or x.shape[0] != x.shape[1]:
        raise GrokinterpError(f"expected a square grid (p, p, ...), got shape {tuple(x.shape)}")
    B = _resolve(basis, x.shape[0])
    k = B.check_freq(freq)
    c = fft2d(x, B)
    keep = torch.zeros(B.n, B.n, dtype=torch.bool)
    rows = torch.tensor([0, *B.rows_of(k)])
    keep[rows[:, None], rows[None, :]] = True
    keep[0, 0] = False
    keep = keep.reshape(B.n, B.n, *([1] * (x.ndim - 2)))
    return ifft2d(c * keep, B)


# ------------------------------------------------------------------------------------- power
def frequency_membership(basis: FourierBasis, dtype: torch.dtype = torch.float32) -> Float[Tensor, "f n"]:
    """One-hot ``M[f, row] = 1`` when basis row ``row`` has frequency ``f`` (f = 0 .. n//2)."""
    return torch.nn.functional.one_hot(basis.row_frequency, basis.n_freqs + 1).T.to(dtype)


def frequency_power(coeffs: Float[Tensor, "... n"], basis: FourierBasis, dim: int = -1) -> Float[Tensor, "... f"]:
    """Squared Fourier components summed per frequency (index 0 = constant, k = cos k + sin k)."""
    coeffs = coeffs.movedim(dim, -1)
    if coeffs.shape[-1] != basis.n:
        raise GrokinterpError(f"expected {basis.n} Fourier components along dim {dim}, got {coeffs.shape[-1]}")
    return _sum_per_frequency(coeffs.square(), basis, -1).movedim(-1, dim)


def frequency_power_2d(coeffs: Float[Tensor, "n n *rest"], basis: FourierBasis) -> Float[Tensor, "f f *rest"]:
    """Squared 2D components summed per (a-frequency, b-frequency) block."""
    if coeffs.ndim < 2 or coeffs.shape[0] != basis.n or coeffs.shape[1] != basis.n:
        raise GrokinterpError(f"expected 2D components of shape ({basis.n}, {basis.n}, ...), got {tuple(coeffs.shape)}")
    return _sum_per_frequency(_sum_per_frequency(coeffs.square(), basis, 0), basis, 1)


def _sum_per_frequency(x: Tensor, basis: FourierBasis, dim: int) -> Tensor:
    """``Σ_{rows r of frequency f} x[..., r, ...]`` along ``dim`` (the product with
    :func:`frequency_membership`, as one scatter-add: O(size) instead of O(size · f))."""
    shape = list(x.shape)
    shape[dim] = basis.n_freqs + 1
    return x.new_zeros(shape).index_add_(dim, basis.row_frequency.to(x.device), x)


def spectral_entropy(power: Float[Tensor, "... f"], dim: int = -1) -> Float[Tensor, "..."]:
    """Shannon entropy ``-Σ q log q`` (nats) of ``q = power / Σ power`` along ``dim``, with
    ``0 log 0 = 0``. A uniform spectrum over n entries gives ``ln n``, a single entry 0.
    Entries whose total power is 0 give NaN (no distribution)."""
    power = _as_float(power)
    if (power < 0).any():
        raise GrokinterpError("spectral_entropy expects non-negative power values")
    total = power.sum(dim, keepdim=True)
    q = power / total
    terms = torch.where(q > 0, -q * torch.log(q), torch.zeros_like(q))
    h = terms.sum(dim)
    return torch.where(total.squeeze(dim) > 0, h, torch.full_like(h, float("nan")))


# ------------------------------------------------------------------- grids in group coordinates
def group_grid_rows(basis: FourierBasis) -> Int[Tensor, " n_sq"]:
    """Rows of the a-major token grid (row ``a*p + b``) in group order: entry ``x_a*n + x_b`` is the
    row of the pair of tokens at group positions ``(x_a, x_b)``. The identity for the additive basis."""
    t = basis.tokens
    return rearrange(t[:, None] * basis.p + t[None, :], "a b -> (a b)")


def sum_direction_table(
    basis: FourierBasis, freqs: list[int], sign: int = 1
) -> tuple[Float[Tensor, "m n_sq"], Int[Tensor, " m"]]:
    """Unit rows ``cos(w_k(x_a + s x_b))``, ``sin(w_k(x_a + s x_b))`` over the group grid (flattened
    a-major in group coordinates) for each k in ``freqs``, float64, and the frequency of each row.
    Zero rows (the sine at k = n/2) are dropped; rows of distinct (k, cos/sin) are orthonormal."""
    if sign not in (1, -1):
        raise GrokinterpError(f"sign must be +1 (a+b) or -1 (a-b), got {sign!r}")
    ks = [basis.check_freq(k) for k in freqs]
    if not ks:
        return torch.zeros(0, basis.n * basis.n, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    x = torch.arange(basis.n, dtype=torch.float64)
    s = rearrange((x[:, None] + sign * x[None, :]) % basis.n, "a b -> (a b)")
    w = 2 * math.pi * torch.tensor(ks, dtype=torch.float64)[:, None] / basis.n
    rows = torch.cat([torch.cos(w * s), torch.sin(w * s)])
    owner = torch.tensor(ks + ks, dtype=torch.long)
    norms = rows.norm(dim=1)
    keep = norms > 1e-9
    return rows[keep] / norms[keep, None], owner[keep]



def sum_direction_values(
    basis: FourierBasis, freqs: list[int], sign: int = 1
) -> tuple[Float[Tensor, "m n"], Int[Tensor, " m"]]:
    """The rows of :func:`sum_direction_table` as functions of the group sum ``s = x_a + sign x_b
    (mod n)``: row r of the table at group position ``(x_a, x_b)`` is ``values[r, s]``. Every s
    occurs n times on the grid, so the unit rows are ``cos(w_k s) / sqrt(n Σ_s cos²(w_k s))`` and
    the same for the sine, with ``w_k = 2πk/n``; zero rows (the sine at k = n/2) are dropped. float64."""
    if sign not in (1, -1):
        raise GrokinterpError(f"sign must be +1 (a+b) or -1 (a-b), got {sign!r}")
    ks = [basis.check_freq(k) for k in freqs]
    if not ks:
        return torch.zeros(0, basis.n, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    x = torch.arange(basis.n, dtype=torch.float64)
    w = 2 * math.pi * torch.tensor(ks, dtype=torch.float64)[:, None] / basis.n
    rows = torch.cat([torch.cos(w * x), torch.sin(w * x)])
    owner = torch.tensor(ks + ks, dtype=torch.long)
    norms = rows.norm(dim=1) * math.sqrt(basis.n)  # the norm over the n² grid positions
    keep = norms > 1e-9
    return rows[keep] / norms[keep, None], owner[keep]


def group_sums(positions: Int[Tensor, " m"], n: int, sign: int = 1) -> Int[Tensor, " m"]:
    """``s = x_a + sign x_b (mod n)`` of group-grid positions ``x_a n + x_b``."""
    if sign not in (1, -1):
        raise GrokinterpError(f"sign must be +1 (a+b) or -1 (a-b), got {sign!r}")
    return (positions // n + sign * (positions % n)) % n

def op_sign(op: str | None) -> int:
    """Sign s of the second operand in the circuit's group coordinate: the answer of ``add`` /
    ``mul`` depends on ``x_a + x_b``, that of ``sub`` / ``div`` on ``x_a - x_b``. Other ops have no
    such circuit and raise."""
    if op is None:
        return 1
    if op not in OP_SIGNS:
        raise GrokinterpError(
            f"the Fourier circuit (cos/sin(w(a ± b)) directions) is defined for ops {sorted(OP_SIGNS)}; "
            f"got op {op!r}"
        )
    return OP_SIGNS[op]
