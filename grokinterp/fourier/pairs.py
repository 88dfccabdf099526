"""The pairs an analysis uses: the task's pair set, in a Fourier basis's group coordinates.

"The grid" of an analysis is the set of pairs the task has: all p² pairs for ``pairs="all"``, the
p(p-1)/2 pairs with a > b for ``pairs="a>b"`` ..., less any pair with an operand outside the basis's
group (token 0 in the multiplicative basis). On the full group grid the Fourier terms are orthogonal
and the analyses project onto them; on a part of it they are not, and the analyses fit them by least
squares on the observed pairs instead (a quantity that needs every pair, such as a 2D Fourier
spectrum, refuses such a task: :func:`require_full_grid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..errors import GrokinterpError
from .basis import FourierBasis, group_grid_rows

__all__ = ["ObservedPairs", "observed_pairs", "require_full_grid"]


@dataclass(frozen=True)
class ObservedPairs:
    """The pairs an analysis uses, ordered by group position.

    ``rows``: their rows in the a-major token grid (``a * p + b``); ``positions``: their group-grid
    positions ``x_a * n + x_b``; ``full``: they are the whole group grid (``rows`` is then
    :func:`~grokinterp.fourier.basis.group_grid_rows` and ``positions`` is ``0 .. n²-1``);
    ``pairs``: the task's pair-set name (``"all"`` without a task).
    """

    basis: FourierBasis
    rows: Int[Tensor, " m"]
    positions: Int[Tensor, " m"]
    full: bool
    pairs: str = "all"

    @property
    def count(self) -> int:
        return int(self.rows.numel())


def observed_pairs(basis: FourierBasis, task=None) -> ObservedPairs:
    """The pairs of ``task`` (all p² pairs without a task) that lie in ``basis``'s group grid."""
    n = basis.n
    if task is None:
        return ObservedPairs(basis, group_grid_rows(basis), torch.arange(n * n), True)
    coord = basis.group_coordinate()
    pairs = task.all_pairs
    ca, cb = coord[pairs[:, 0]], coord[pairs[:, 1]]
    inside = (ca >= 0) & (cb >= 0)
    positions = (ca * n + cb)[inside]
    order = positions.argsort()
    positions = positions[order]
    rows = (pairs[:, 0] * basis.p + pairs[:, 1])[inside][order]
    full = int(positions.numel()) == n * n
    if full:
        return ObservedPairs(basis, group_grid_rows(basis), torch.arange(n * n), True, task.pairs)
    return ObservedPairs(basis, rows, positions, False, task.pairs)


def require_full_grid(observed: Optional[ObservedPairs], what: str) -> None:
    """Refuse a quantity that needs every pair of the group grid when the task has fewer."""
    if observed is not None and not observed.full:
        n = observed.basis.n
        raise GrokinterpError(
            f"{what} needs the model on every pair of the {n}x{n} grid, but the task has pairs={observed.pairs!r} "
            f"({observed.count} of {n * n} pairs in the {observed.basis.kind} group); values on the other pairs would "
            "describe inputs outside the task. Use the analyses that fit the task's pairs (neuron_frequencies, "
            "logit_fit, restricted_loss, trig_identity_check) instead"
        )
