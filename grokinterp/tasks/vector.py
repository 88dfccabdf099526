"""What the tasks on vectors share: their validation and the seeded choice of examples.

A vector task (polynomial regression, sparse parity, images) gives inputs of shape ``(n, d_in)``
(float32) and labels of shape ``(n,)``: class indices (int64) for classification, values (float32)
for regression. It says how wide a model's output must be (``d_out``: the number of classes, or 1
for a regression), the name of its loss (``"cross_entropy"`` or ``"mse"``, :data:`grokinterp.metrics.LOSSES`)
and what accuracy means (``accuracy_rule``, :data:`grokinterp.metrics.ACCURACIES`).
"""

from __future__ import annotations

import hashlib
import math

import torch
from jaxtyping import Int
from torch import Tensor

from ..checks import check_count, check_seed
from ..errors import GrokinterpError

__all__ = ["check_seeds", "check_sizes", "check_task_fields", "check_tolerance", "derived_seed", "seeded_order", "split_part"]


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed derived from ``parts`` (SHA-256 of their text): independent streams from one
    declared seed, e.g. ``derived_seed(seed, "inputs")`` and ``derived_seed(seed, epoch)``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seeded_order(n: int, seed: int) -> Int[Tensor, " n"]:
    """``torch.randperm(n)`` from a CPU generator seeded with ``seed`` (the same order everywhere)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))


def check_task_fields(cls_name: str, given: dict, known: set[str]) -> None:
    """Refuse fields a task does not have, naming them and the fields it has."""
    unknown = set(given) - known
    if unknown:
        raise GrokinterpError(f"unknown {cls_name} fields {sorted(unknown)}; expected some of {sorted(known)}")


def check_sizes(task: str, n_train, n_test, *, available: int | None = None) -> None:
    """``n_train >= 1`` and ``n_test >= 1`` whole numbers, together at most ``available``."""
    check_count(f"{task}.n_train", n_train, minimum=1)
    check_count(f"{task}.n_test", n_test, minimum=1)
    if available is not None and n_train + n_test > available:
        raise GrokinterpError(
            f"{task}: n_train + n_test = {n_train + n_test} examples requested, but only {available} exist; "
            f"expected n_train + n_test <= {available}"
        )


def check_tolerance(name: str, value) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise GrokinterpError(f"{name} must be a finite number > 0, got {value!r}")


def check_seeds(task: str, **seeds) -> None:
    for name, value in seeds.items():
        check_seed(f"{task}.{name}", value)


def split_part(t: Tensor, n_train: int, split: str) -> Tensor:
    """Rows of a train-first tensor: the first ``n_train`` (train), the rest (test), or all."""
    if split == "train":
        return t[:n_train]
    if split == "test":
        return t[n_train:]
    return t
