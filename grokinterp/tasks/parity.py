"""Sparse parity: ``n_bits`` random bits, the label is the parity of a hidden, seeded subset of
``k`` of them (the (n, k) = (40, 3) problem of the grokking literature: Barak et al. 2022,
"Hidden progress in deep learning"; Merrill et al. 2023).

With bits ``b ∈ {0, 1}^n`` and the hidden subset ``S`` (``|S| = k``):

    label = (Σ_{i ∈ S} b_i) mod 2.

The model reads either encoding: ``"pm1"`` (default) gives inputs ``x_i = (-1)^{b_i}`` (bit 0 → +1,
bit 1 → -1), so that ``Π_{i ∈ S} x_i = (-1)^label``; ``"01"`` gives the bits themselves. Two classes,
cross-entropy, accuracy = argmax.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import ClassVar, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_count
from ..errors import GrokinterpError
from .protocol import Split, check_split
from .vector import check_seeds, check_sizes, check_task_fields, derived_seed, seeded_order, split_part

__all__ = ["ENCODINGS", "SparseParity"]

Encoding = Literal["pm1", "01"]
ENCODINGS = ("pm1", "01")
MAX_BITS = 62  # bit strings are drawn as int64 codes
_PERMUTE_UP_TO = 2**20  # up to this many strings a permutation of all of them is drawn


@dataclass(frozen=True)
class SparseParity:
    """Parity of a hidden ``k``-subset of ``n_bits`` uniform random bits.

    Args:
        n_bits: input bits (default 40; at most 62).
        k: size of the hidden subset (default 3).
        n_train / n_test: examples per split. The ``n_train + n_test`` bit strings are distinct:
            for ``2^n_bits <= 2^20`` they are the first strings of a seeded permutation of all
            ``2^n_bits``; above, strings are drawn uniformly and repeats skipped.
        seed: seed of the bit strings (the data split; train = the first ``n_train``).
        subset_seed: seed of the hidden subset ``S``: the first ``k`` entries of a seeded
            permutation of the ``n_bits`` positions, sorted.
        encoding: ``"pm1"`` (inputs ±1) or ``"01"`` (inputs 0/1); see the module docstring.

    Inputs are float32 ``(n, n_bits)``, labels int64 ``(n,)`` in {0, 1}. A model for this task has
    ``d_in = n_bits`` and ``d_out = 2``.
    """

    kind: ClassVar[str] = "sparse_parity"
    loss: ClassVar[str] = "cross_entropy"
    accuracy_rule: ClassVar[str] = "argmax"

    n_bits: int = 40
    k: int = 3
    n_train: int = 1000
    n_test: int = 1000
    seed: int = 0
    subset_seed: int = 0
    encoding: Encoding = "pm1"

    def __post_init__(self) -> None:
        name = "SparseParity"
        check_count(f"{name}.n_bits", self.n_bits, minimum=1)
        if self.n_bits > MAX_BITS:
            raise GrokinterpError(f"{name}.n_bits must be at most {MAX_BITS}, got {self.n_bits}")
        check_count(f"{name}.k", self.k, minimum=1)
        if self.k > self.n_bits:
            raise GrokinterpError(f"{name}.k must lie in [1, n_bits={self.n_bits}], got k={self.k}")
        check_sizes(name, self.n_train, self.n_test, available=2**self.n_bits)
        check_seeds(name, seed=self.seed, subset_seed=self.subset_seed)
        if not isinstance(self.encoding, str) or self.encoding not in ENCODINGS:
            raise GrokinterpError(f"{name}.encoding must be one of {list(ENCODINGS)}, got {self.encoding!r}")

    @property
    def d_in(self) -> int:
        return self.n_bits

    @property
    def d_out(self) -> int:
        return 2

    @cached_property
    def subset(self) -> tuple[int, ...]:
        """The hidden positions ``S`` (sorted)."""
        order = seeded_order(self.n_bits, derived_seed(self.subset_seed, "subset"))
        return tuple(sorted(int(i) for i in order[: self.k]))

    @cached_property
    def codes(self) -> Int[Tensor, " n"]:
        """The bit strings as integers (bit ``i`` of a code is input position ``i``): train first."""
        m, space = self.n_train + self.n_test, 2**self.n_bits
        seed = derived_seed(self.seed, "strings")
        if space <= _PERMUTE_UP_TO:
            return seeded_order(space, seed)[:m]
        g = torch.Generator().manual_seed(seed)
        seen: dict[int, None] = {}
        while len(seen) < m:
            for c in torch.randint(0, space, (m - len(seen),), generator=g).tolist():
                seen.setdefault(c, None)
        return torch.tensor(list(seen)[:m], dtype=torch.long)

    @cached_property
    def bits(self) -> Int[Tensor, "n n_bits"]:
        """The bits ``b`` (0/1, int64) of every example, train first."""
        return (self.codes[:, None] >> torch.arange(self.n_bits)) & 1

    def label(self, bits: Int[Tensor, "n n_bits"]) -> Int[Tensor, " n"]:
        """``(Σ_{i ∈ S} b_i) mod 2`` per row of 0/1 bits."""
        bits = torch.as_tensor(bits)
        if bits.ndim != 2 or bits.shape[1] != self.n_bits:
            raise GrokinterpError(f"bits must have shape (n, {self.n_bits}), got {tuple(bits.shape)}")
        return bits[:, list(self.subset)].long().sum(dim=1) % 2

    def encode(self, bits: Int[Tensor, "n n_bits"]) -> Float[Tensor, "n n_bits"]:
        """The model's inputs for 0/1 bits: ``(-1)^b`` under ``"pm1"``, ``b`` under ``"01"``."""
        bits = torch.as_tensor(bits).to(torch.float32)
        return 1.0 - 2.0 * bits if self.encoding == "pm1" else bits

    @cached_property
    def _inputs(self) -> Float[Tensor, "n n_bits"]:
        return self.encode(self.bits)

    @cached_property
    def _labels(self) -> Int[Tensor, " n"]:
        return self.label(self.bits)

    def inputs(self, split: Split = "train") -> Float[Tensor, "n n_bits"]:
        return split_part(self._inputs, self.n_train, check_split(split))

    def labels(self, split: Split = "train") -> Int[Tensor, " n"]:
        return split_part(self._labels, self.n_train, check_split(split))

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "SparseParity":
        check_task_fields(cls.__name__, d, {"n_bits", "k", "n_train", "n_test", "seed", "subset_seed", "encoding"})
        return cls(**d)

