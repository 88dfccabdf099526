"""How the magnitude mask moves during training: Jaccard distance between masks and its trajectory
over a run's checkpoints (Minegishi et al., "Grokking Tickets", Fig. 7: the distance between masks
of consecutive checkpoints peaks while test accuracy climbs).

Jaccard distance of two masks with kept sets A and B: ``d(A, B) = 1 - |A ∩ B| / |A ∪ B|``
(0 for equal masks, 1 for disjoint ones; 0 when both keep nothing). "Overall" pools the counts of
every tensor (it is not the mean of the per-layer distances).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from torch import Tensor

from ..errors import GrokinterpError
from ..runs import as_run
from ..masks import compare_masks
from .nets import Include
from .pruners import magnitude_mask
from .select import Scope, check_prune_ratio

__all__ = ["jaccard_distance", "layer_jaccard_distance", "mask_trajectory"]


def jaccard_distance(mask_a: Mapping[str, Tensor], mask_b: Mapping[str, Tensor]) -> float:
    """``1 - |A ∩ B| / |A ∪ B|`` over the kept weights of all tensors together.

    Both masks must cover the same names with the same shapes (:class:`~grokinterp.errors.MaskError`
    otherwise).
    """
    return float(compare_masks(mask_a, mask_b).loc["overall", "jaccard_distance"])


def layer_jaccard_distance(mask_a: Mapping[str, Tensor], mask_b: Mapping[str, Tensor]) -> dict[str, float]:
    """Jaccard distance per tensor (name -> distance)."""
    table = compare_masks(mask_a, mask_b).drop(index="overall")
    return {str(k): float(v) for k, v in table["jaccard_distance"].items()}


def mask_trajectory(
    run,
    prune_ratio: float = 0.6,
    every: int | None = None,
    *,
    epochs: Sequence[int] | None = None,
    scope: Scope = "global",
    include: Include = None,
):
    """Jaccard distance between the magnitude masks of consecutive checkpoints, per layer, next to
    the change in test accuracy.

    Args:
        run: a run directory (path) or a :class:`~grokinterp.runs.Run`.
        prune_ratio: fraction removed by each checkpoint's magnitude mask (paper: 0.6).
        every: use the checkpoints whose epoch is a multiple of ``every`` (paper: 2000); ``None``
            uses every checkpoint.
        epochs: exactly these checkpoint epochs instead (in this order).
        scope, include: as in :func:`~grokinterp.tickets.magnitude_mask`.

    Returns a DataFrame with one row per consecutive pair ``(prev_epoch, epoch)``: ``jaccard``
    (overall), ``jaccard:<name>`` per pruned tensor, ``test_acc`` and ``prev_test_acc`` (the last
    evaluated row at or before each epoch) and ``delta_test_acc = test_acc - prev_test_acc``.
    """
    import pandas as pd

    run = as_run(run)
    check_prune_ratio(prune_ratio)
    if every is not None and (not isinstance(every, int) or every < 1):
        raise GrokinterpError(f"every must be a positive integer number of epochs, got {every!r}")
    if epochs is None:
        epochs = [e for e in run.checkpoint_epochs if every is None or e % every == 0]
    else:
        epochs = [run.checkpoint_epoch(e) for e in epochs]
    if len(epochs) < 2:
        raise GrokinterpError(
            f"{run.path}: need at least two checkpoints{'' if every is None else f' at multiples of {every}'}; "
            f"the run has checkpoints at {run.checkpoint_epochs}"
        )
    base = run.model_at(epochs[0])  # one model: each checkpoint's tensors stand in for its weights by name

    def mask_at(epoch: int):
        return magnitude_mask(base, prune_ratio, scope, include, weights=run.weights_at(epoch))

    rows = []
    prev_epoch, prev_mask = epochs[0], mask_at(epochs[0])
    for epoch in epochs[1:]:
        mask = mask_at(epoch)
        table = compare_masks(prev_mask, mask)
        row = {"prev_epoch": prev_epoch, "epoch": epoch, "jaccard": float(table.loc["overall", "jaccard_distance"])}
        row.update({f"jaccard:{n}": float(v) for n, v in table["jaccard_distance"].drop(index="overall").items()})
        acc, prev_acc = _test_acc_at(run.history, epoch), _test_acc_at(run.history, prev_epoch)
        row.update(test_acc=acc, prev_test_acc=prev_acc, delta_test_acc=acc - prev_acc)
        rows.append(row)
        prev_epoch, prev_mask = epoch, mask
    return pd.DataFrame(rows)


def _test_acc_at(history, epoch: int) -> float:
    rows = [r for r in history if r["epoch"] <= epoch]
    return float(rows[-1]["test_acc"]) if rows else float("nan")

