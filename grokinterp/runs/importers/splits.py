"""Rebuilding an imported run's task and train/test split from what its file records."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ...tasks import ModularArithmetic

__all__ = ["assumed_task", "python_shuffle_task", "stored_indices_task"]


def stored_indices_task(p: int, op: str, train_indices: Any, test_indices: Any = None) -> ModularArithmetic:
    """The task over all p² pairs (a-major indices) whose train split is the stored ``train_indices``;
    stored ``test_indices`` must be exactly the other pairs (grokinterp tests on every pair outside
    the train split)."""
    n = p * p
    train = torch.as_tensor(train_indices).reshape(-1).long()
    if train.numel() == 0 or int(train.min()) < 0 or int(train.max()) >= n or train.unique().numel() != train.numel():
        raise ValueError(f"train_indices must be distinct indices into the {n} pairs (a-major), got {train.numel()} values")
    if test_indices is not None:
        test = torch.as_tensor(test_indices).reshape(-1).long()
        complement = torch.ones(n, dtype=torch.bool)
        complement[train] = False
        if test.numel() != int(complement.sum()) or not bool(complement[test].all()) or test.unique().numel() != test.numel():
            raise ValueError("test_indices is not exactly the pairs outside train_indices; only such splits are supported")
    return ModularArithmetic(p, op, "all", frac_train=train.numel() / n, train_index=tuple(train.tolist()))


def python_shuffle_task(p: int, op: str, seed: int, frac_train: float) -> ModularArithmetic:
    """Nanda et al.'s split: ``random.seed(seed); random.shuffle(pairs)`` of all p² pairs in a-major
    order, the first ``int(frac_train * p²)`` are train."""
    return ModularArithmetic(p, op, "all", frac_train=float(frac_train), seed=int(seed), split="python_shuffle")


def assumed_task(p: int, op: Optional[str], frac_train: Optional[float]) -> Optional[ModularArithmetic]:
    """A task whose op (and fraction) the file records but not how its split was drawn: grokinterp's
    own seed-0 permutation, to be marked assumed; ``None`` without an op."""
    if op is None:
        return None
    return ModularArithmetic(p, op, "all", frac_train=0.3 if frac_train is None else float(frac_train), seed=0)
