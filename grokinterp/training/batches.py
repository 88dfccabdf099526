"""The batches of an epoch: full batch, or seeded mini-batches that a resumed run replays exactly.

With ``batch_size = B`` and ``n`` training examples an epoch takes ``ceil(n / B)`` steps. Epoch
``e``'s order is ``torch.randperm(n)`` from a CPU generator seeded with
``derived_seed(batch_seed, "batches", e)`` (SHA-256 of the three, 63 bits): it depends on nothing but
the run's batch seed and the epoch, so the loop can start at any checkpointed epoch and draw the
same batches an uninterrupted run draws. Batch ``j`` is the examples ``order[j B : (j + 1) B]``;
the last one holds the remainder. Without a batch size, or when ``B >= n``, the epoch is one step
on the whole split in its own order (identical to full-batch training).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from jaxtyping import Int
from torch import Tensor

from ..tasks import derived_seed

__all__ = ["batches_per_epoch", "epoch_batches", "epoch_convention", "epoch_order"]


def batches_per_epoch(config, n: int) -> int:
    """Optimiser steps per epoch for ``n`` training examples (1 without a ``batch_size``)."""
    size = getattr(config, "batch_size", None)
    return 1 if size is None or size >= n else math.ceil(n / size)


def epoch_order(batch_seed: int, epoch: int, n: int) -> Int[Tensor, " n"]:
    """The seeded order of the ``n`` examples in epoch ``epoch`` (see the module docstring)."""
    g = torch.Generator().manual_seed(derived_seed(int(batch_seed), "batches", int(epoch)))
    return torch.randperm(n, generator=g)


def epoch_batches(config, epoch: int, x: Tensor, y: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """``(inputs, labels)`` of each step of epoch ``epoch``, on the tensors' device."""
    n = x.shape[0]
    if batches_per_epoch(config, n) == 1:
        yield x, y
        return
    order = epoch_order(config.batch_seed, epoch, n).to(x.device)
    for start in range(0, n, config.batch_size):
        idx = order[start: start + config.batch_size]
        yield x[idx], y[idx]


def epoch_convention(config) -> str:
    """What an epoch is, in words, for a run's record."""
    size = getattr(config, "batch_size", None)
    if size is None:
        return "epoch e = after e full-batch steps; epoch 0 = initial weights"
    return f"epoch e = after e passes over the train split in seeded mini-batches of {size}; epoch 0 = initial weights"
