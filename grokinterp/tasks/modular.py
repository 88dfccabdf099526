"""Modular-arithmetic data sets: every (a, b) pair of a chosen set, its label ``op(a, b) mod p``,
and a seeded train/test split.

Inputs are pairs ``(a, b)`` of integers in ``[0, p)``. Models turn pairs into tokens themselves
(the transformer appends the ``=`` token, id ``p``, when its config asks for it); ``tokens()``
gives both token layouts for code that wants them directly.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable, ClassVar, Literal, Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..checks import check_seed
from ..errors import GrokinterpError
from .protocol import Split, check_split

__all__ = ["ModularArithmetic", "OPS", "PAIR_SETS", "is_prime"]


def is_prime(n: int) -> bool:
    """Trial division; fine for the p of this field (p < 10^6)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def _modular_inverse(b: Tensor, p: int) -> Tensor:
    # Fermat: b^(p-2) = b^-1 mod p for prime p and b != 0.
    return torch.tensor([pow(int(x), p - 2, p) for x in range(p)], dtype=torch.long)[b]


# op name -> (label function of (a, b, p), needs prime p, excludes b = 0)
OPS: dict[str, tuple[Callable[[Tensor, Tensor, int], Tensor], bool, bool]] = {
    "add": (lambda a, b, p: (a + b) % p, False, False),
    "sub": (lambda a, b, p: (a - b) % p, False, False),
    "mul": (lambda a, b, p: (a * b) % p, True, False),
    "div": (lambda a, b, p: (a * _modular_inverse(b, p)) % p, True, True),
    "x2+y2": (lambda a, b, p: (a * a + b * b) % p, False, False),
    "x2+xy+y2": (lambda a, b, p: (a * a + a * b + b * b) % p, False, False),
    "x3+xy": (lambda a, b, p: (a * a * a + a * b) % p, False, False),
}

PairSet = Literal["all", "a>b", "a>=b", "a<=b"]
PAIR_SETS = ("all", "a>b", "a>=b", "a<=b")
MAX_P = 2048  # 4.2 million pairs; a model's logits over the grid are p³ numbers (8.6e9 at this p)
SplitRule = Literal["permutation", "python_shuffle", "torch_randperm"]
#: The seeded split conventions by name (see :class:`ModularArithmetic`).
SPLIT_RULES = ("permutation", "python_shuffle", "torch_randperm")


@dataclass(frozen=True)
class ModularArithmetic:
    """``op(a, b) mod p`` over a set of pairs, split into train and test by a seeded rule.

    Args:
        p: modulus (``mul`` and ``div`` need a prime p).
        op: one of ``OPS``: add, sub, mul, div (a * b^-1, pairs with b = 0 left out), x2+y2,
            x2+xy+y2, x3+xy.
        pairs: ``"all"`` (p² pairs), ``"a>b"`` (p(p-1)/2, the tickets paper's text), ``"a<=b"``
            (p(p+1)/2, the tickets paper's code) or its mirror ``"a>=b"`` (the same data for
            symmetric ops, a different set for sub, div and x3+xy).
        frac_train: fraction of the pairs in the train split; ``n_train = floor(frac_train * n)``
            (p=113, all pairs, 0.3 → 3830; p=67, a>=b, 0.4 → 911).
        seed: seed of the split permutation (independent of any model seed).
        train_index: optional explicit train split, indices into ``all_pairs`` (for runs imported
            from elsewhere); then ``frac_train`` and ``seed`` do not choose the split.
        split: the rule that turns ``seed`` and ``frac_train`` into the split; the pairs are numbered
            a-major (index ``i`` is ``all_pairs[i]``), ordered by the rule, and the first
            ``n_train = floor(frac_train * n)`` are the train split:

            * ``"permutation"`` (default, grokinterp's own): ``torch.randperm(n)`` drawn from a
              ``torch.Generator`` seeded with ``seed``;
            * ``"python_shuffle"``: Python's ``random.seed(seed); random.shuffle(pairs)`` (the
              progress-measures authors' runs, Nanda et al. 2023), computed with a private
              ``random.Random(seed)`` so the global random state is left alone;
            * ``"torch_randperm"``: ``torch.manual_seed(seed); torch.randperm(n)`` (TransformerLens's
              grokking demo). On the CPU this is the same permutation as ``"permutation"``; the name
              records where an imported split came from.

            Recorded in ``to_dict`` only when not the default, so existing task dicts (and run keys)
            do not change.

    Pairs are ordered a-major (``a`` then ``b`` ascending) before the permutation, so
    ``grid_inputs`` row ``a * p + b`` is the pair ``(a, b)``.
    """

    kind: ClassVar[str] = "modular_arithmetic"
    loss: ClassVar[str] = "cross_entropy"
    accuracy_rule: ClassVar[str] = "argmax"

    p: int
    op: str = "add"
    pairs: PairSet = "all"
    frac_train: float = 0.3
    seed: int = 0
    train_index: Optional[tuple[int, ...]] = field(default=None, repr=False)
    split: SplitRule = "permutation"

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or isinstance(self.p, bool) or self.p < 2:
            raise GrokinterpError(f"p must be an integer >= 2, got {self.p!r}")
        if self.p > MAX_P:
            gb = 24 * self.p**2 / 1e9  # the pairs (2 int64 each) and a label per pair, before any model
            raise GrokinterpError(
                f"p={self.p} is too large: its {self.p**2:,} pairs alone would need {gb:,.1f} GB (and a "
                f"p x p x p grid of logits far more); grokinterp takes p <= {MAX_P}"
            )
        check_seed("seed", self.seed)
        if isinstance(self.frac_train, bool) or not isinstance(self.frac_train, (int, float)):
            raise GrokinterpError(f"frac_train must be a number in (0, 1), got {self.frac_train!r}")
        for name in ("op", "pairs", "split"):
            if not isinstance(getattr(self, name), str):
                raise GrokinterpError(f"{name} must be a name, got {getattr(self, name)!r}")
        if self.op not in OPS:
            raise GrokinterpError(f"unknown op {self.op!r}; expected one of {sorted(OPS)}")
        if OPS[self.op][1] and not is_prime(self.p):
            raise GrokinterpError(
                f"op {self.op!r} needs a prime p (so that Z_p^* is a group), got composite p={self.p}"
            )
        if self.pairs not in PAIR_SETS:
            raise GrokinterpError(f"pairs must be one of {', '.join(repr(s) for s in PAIR_SETS)}, got {self.pairs!r}")
        if self.split not in SPLIT_RULES:
            raise GrokinterpError(f"split must be one of {list(SPLIT_RULES)}, got {self.split!r}")
        if not 0.0 < float(self.frac_train) < 1.0:
            raise GrokinterpError(f"frac_train must lie in (0, 1), got {self.frac_train!r}")
        if self.train_index is not None:
            idx = tuple(int(i) for i in self.train_index)
            if len(set(idx)) != len(idx) or not all(0 <= i < self.n_pairs for i in idx):
                raise GrokinterpError(
                    f"train_index must hold distinct indices in [0, {self.n_pairs}), one per train pair"
                )
            object.__setattr__(self, "train_index", tuple(sorted(idx)))
        if not 1 <= self.n_train < self.n_pairs:
            raise GrokinterpError(
                f"frac_train={self.frac_train} leaves an empty train or test split for {self.n_pairs} pairs"
            )

    # ------------------------------------------------------------------ pairs and labels
    @cached_property
    def all_pairs(self) -> Int[Tensor, "n 2"]:
        """Every pair of the chosen set, a-major order (before the split)."""
        a, b = torch.meshgrid(torch.arange(self.p), torch.arange(self.p), indexing="ij")
        a, b = a.reshape(-1), b.reshape(-1)
        keep = torch.ones_like(a, dtype=torch.bool)
        if self.pairs == "a>b":
            keep &= a > b
        elif self.pairs == "a>=b":
            keep &= a >= b
        elif self.pairs == "a<=b":
            keep &= a <= b
        if OPS[self.op][2]:
            keep &= b != 0
        return torch.stack([a[keep], b[keep]], dim=1)

    @property
    def n_pairs(self) -> int:
        return int(self.all_pairs.shape[0])

    @property
    def n_train(self) -> int:
        if self.train_index is not None:
            return len(self.train_index)
        return int(self.frac_train * self.n_pairs)

    def label(self, inputs: Int[Tensor, "n 2"]) -> Int[Tensor, " n"]:
        """``op(a, b) mod p`` for each row ``(a, b)``."""
        inputs = torch.as_tensor(inputs, dtype=torch.long)
        if inputs.ndim != 2 or inputs.shape[1] != 2:
            raise GrokinterpError(f"inputs must have shape (n, 2), got {tuple(inputs.shape)}")
        if inputs.numel() and (inputs.min() < 0 or inputs.max() >= self.p):
            raise GrokinterpError(f"inputs must lie in [0, {self.p}), got values outside")
        return OPS[self.op][0](inputs[:, 0], inputs[:, 1], self.p)

    @cached_property
    def _split(self) -> tuple[Tensor, Tensor]:
        if self.train_index is not None:
            is_train = torch.zeros(self.n_pairs, dtype=torch.bool)
            is_train[list(self.train_index)] = True
            return is_train.nonzero()[:, 0], (~is_train).nonzero()[:, 0]
        perm = self.split_order()
        return perm[: self.n_train].sort().values, perm[self.n_train :].sort().values

    def split_order(self) -> Int[Tensor, " n"]:
        """The pair indices in the order the ``split`` rule puts them (train = the first ``n_train``)."""
        n = self.n_pairs
        if self.split == "python_shuffle":
            order = list(range(n))
            random.Random(int(self.seed)).shuffle(order)  # = random.seed(seed); random.shuffle(order)
            return torch.tensor(order, dtype=torch.long)
        # "permutation" and "torch_randperm": a CPU generator seeded like torch.manual_seed(seed)
        return torch.randperm(n, generator=torch.Generator().manual_seed(int(self.seed)))

    @cached_property
    def train_indices(self) -> Int[Tensor, " n_train"]:
        """Indices into ``all_pairs`` of the train split (sorted)."""
        return self._split[0]

    @cached_property
    def test_indices(self) -> Int[Tensor, " n_test"]:
        return self._split[1]

    @cached_property
    def train_inputs(self) -> Int[Tensor, "n_train 2"]:
        return self.all_pairs[self.train_indices]

    @cached_property
    def test_inputs(self) -> Int[Tensor, "n_test 2"]:
        return self.all_pairs[self.test_indices]

    @cached_property
    def train_labels(self) -> Int[Tensor, " n_train"]:
        return self.label(self.train_inputs)

    @cached_property
    def test_labels(self) -> Int[Tensor, " n_test"]:
        return self.label(self.test_inputs)

    @cached_property
    def grid_inputs(self) -> Int[Tensor, "p_sq 2"]:
        """All p² pairs, a-major (row ``a*p + b`` is ``(a, b)``), whatever ``pairs`` is; for analyses
        over the full (a, b) grid."""
        a, b = torch.meshgrid(torch.arange(self.p), torch.arange(self.p), indexing="ij")
        return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)

    def inputs(self, split: Split = "train") -> Int[Tensor, "n 2"]:
        return {"train": self.train_inputs, "test": self.test_inputs, "all": self.all_pairs}[
            check_split(split)
        ]

    def labels(self, split: Split = "train") -> Int[Tensor, " n"]:
        if check_split(split) == "all":
            return self.label(self.all_pairs)
        return self.train_labels if split == "train" else self.test_labels

    def tokens(self, split: Split = "train", eq_token: bool = True) -> Int[Tensor, "n seq"]:
        """Token sequences ``[a, b, =]`` (``=`` is token id ``p``) or, with ``eq_token=False``,
        ``[a, b]``."""
        x = self.inputs(split)
        if not eq_token:
            return x
        return torch.cat([x, torch.full((x.shape[0], 1), self.p, dtype=x.dtype)], dim=1)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = asdict(self)
        if self.train_index is None:
            del d["train_index"]
        else:
            d["train_index"] = list(self.train_index)
        if self.split == "permutation":
            del d["split"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModularArithmetic":
        known = {"p", "op", "pairs", "frac_train", "seed", "train_index", "split"}
        unknown = set(d) - known
        if unknown:
            raise GrokinterpError(f"unknown task fields {sorted(unknown)}; expected {sorted(known)}")
        d = dict(d)
        if d.get("train_index") is not None:
            d["train_index"] = tuple(d["train_index"])
        return cls(**d)
