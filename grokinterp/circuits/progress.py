"""Progress measures over training (Nanda et al. 2023, Sec. 5): one row per checkpoint of a run.

Each checkpoint costs one forward pass over the full (a, b) grid, computed straight from the saved
tensors (no model is built); losses, accuracies, restricted / excluded loss and the logit fit all
reuse its logits, and the Fourier bases and direction tables are built once for the whole run.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor

from .ablation import FrequencyDecomposition, cross_entropy
from ..fourier.basis import OP_SIGNS, BasisKind, FourierBasis, frequency_power, op_sign
from ..fourier.grid import GridAnalysis
from ..fourier.pairs import observed_pairs
from ..errors import GrokinterpError
from .measures import weight_norms, gini
from ..fourier.spectra import KEY_FREQUENCY_THRESHOLD, frequency_scores, resolve_basis, select_frequencies
from ..tasks import ModularArithmetic
from .trig import TrigPlanes, fit_projected, projected_group_logits
from ..models.weights import check_task
from ..runs.run import as_run  # the one import above this layer: a run is what progress is measured over

__all__ = ["progress_measures", "select_epochs"]


def select_epochs(checkpoint_epochs: Iterable[int], every: int | None = None) -> list[int]:
    """Checkpoint epochs that are multiples of ``every`` (all of them when ``None``), always with
    the last checkpoint."""
    epochs = sorted(int(e) for e in checkpoint_epochs)
    if not epochs:
        raise GrokinterpError("the run has no checkpoints to measure")
    if every is None:
        return epochs
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise GrokinterpError(f"every must be a positive integer number of epochs, got {every!r}")
    chosen = [e for e in epochs if e % every == 0]
    if chosen[-1:] != epochs[-1:]:
        chosen.append(epochs[-1])
    return chosen


def progress_measures(
    run,
    every: int | None = None,
    key_freqs: list[int] | None = None,
    recompute: bool = False,
    task: ModularArithmetic | None = None,
    basis: BasisKind | FourierBasis | None = None,
    threshold: float = KEY_FREQUENCY_THRESHOLD,
    per_frequency: bool = True,
    extra: Callable[[GridAnalysis], Mapping[str, Any]] | None = None,
):
    """Evaluate the progress measures on the checkpoints of a run; a pandas DataFrame, one row per
    checkpoint epoch.

    Args:
        run: a :class:`grokinterp.runs.Run` (``load_run(path)``) or a run directory path.
        every: measure the checkpoints whose epoch is a multiple of this (plus the last one);
            ``None``: every checkpoint.
        key_freqs: the frequencies for restricted / excluded loss and the logit fit. Default: the key
            frequencies of the final checkpoint (``key_frequencies(method="logit")``), fixed for the
            whole run; ``recompute=True`` takes each checkpoint's own instead.
        task: overrides the run's task (for legacy runs without one).
        per_frequency: add ``restricted_loss_k`` / ``excluded_loss_k`` columns for each fixed key
            frequency k.
        extra: more columns: called once per checkpoint with its
            :class:`~grokinterp.fourier.grid.GridAnalysis` (the weights loaded once, the grid
            forward and Fourier coefficients the measures above computed), its items added to the row.

    Columns: ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc`` (from the grid
    logits; same values as the trainer's metrics), ``restricted_loss``, ``excluded_loss`` (train
    split), ``logit_fit`` (fraction of the logit variance explained by Σ α_k cos(w_k(a+b-c))),
    ``embed_key_power`` (share of the embedding's non-constant Fourier power in the key frequencies),
    ``gini_embed``, ``gini_logit`` (Gini of the Fourier-component norms of W_E and W_L), ``l1_norm``,
    ``l2_norm``, ``sum_sq_weights``, for transformers ``attn_to_a`` / ``attn_to_b`` (last layer's
    attention from the answer position, mean over heads and pairs), and ``key_freqs`` (tuple).
    Restricted / excluded loss, the logit fit and the attention means are taken over the task's
    pairs (least-squares fits on part of the grid, :mod:`grokinterp.circuits.ablation`).
    ``frame.attrs`` records the key frequencies and the basis. Tasks whose op has no Fourier circuit
    (anything but add, sub, mul, div) get no restricted / excluded / fit columns
    (``attrs["circuit_measures"]`` is False).
    """
    import pandas as pd

    run = as_run(run)
    epochs = select_epochs(run.checkpoint_epochs, every)
    task = task if task is not None else run.task
    if task is None:
        raise GrokinterpError("the run records no task; pass task=ModularArithmetic(...)")
    final = run.model_weights(epochs[-1])
    task = check_task(final, task)
    B = resolve_basis(final, task, basis)
    # ops without a cos/sin(w(a ± b)) circuit (x2+y2 ...) get no restricted / excluded / fit columns
    sign = op_sign(task.op) if task.op in OP_SIGNS else None
    fixed = None
    if not recompute:
        fixed = _check_freqs(B, key_freqs) if key_freqs is not None else select_frequencies(
            frequency_scores(final, B, "logit"), threshold
        )
    splits = {s: (task.inputs(s), task.labels(s)) for s in ("train", "test")}
    observed = observed_pairs(B, task)
    planes = TrigPlanes(B, fixed, sign, observed) if fixed is not None and sign is not None else None
    pair_rows = task.all_pairs[:, 0] * task.p + task.all_pairs[:, 1]

    rows = []
    for epoch in epochs:
        w = final if epoch == epochs[-1] else run.model_weights(epoch)
        freqs = fixed if fixed is not None else select_frequencies(frequency_scores(w, B, "logit"), threshold)
        g = GridAnalysis(w, task, B)
        row = _measure(g, epoch, sign, freqs, planes, splits, per_frequency and fixed is not None, pair_rows)
        if extra is not None:
            row.update(extra(g))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["key_freqs"] = fixed
    frame.attrs["basis"] = B.kind
    frame.attrs["circuit_measures"] = sign is not None
    return frame


def _check_freqs(B: FourierBasis, freqs) -> list[int]:
    return sorted({B.check_freq(k) for k in freqs})


@torch.no_grad()
def _measure(
    g: GridAnalysis, epoch: int, sign: int | None, freqs: list[int], planes: TrigPlanes | None,
    splits: dict[str, tuple[Tensor, Tensor]], per_frequency: bool, pair_rows: Tensor,
) -> dict:
    w, B, observed = g.weights, g.basis, g.observed
    acts = g.activations
    logits = acts.logits
    p = w.p
    row: dict = {"epoch": int(epoch)}
    for split, (inputs, labels) in splits.items():
        split_logits = logits[inputs[:, 0] * p + inputs[:, 1]]
        row[f"{split}_loss"] = cross_entropy(split_logits, labels)
        row[f"{split}_acc"] = float((split_logits.argmax(-1) == labels).double().mean())
    if sign is not None:
        inputs, labels = splits["train"]
        dec = FrequencyDecomposition(logits, B, sign, freqs, inputs, observed)
        restricted, restricted_k = dec.losses(labels, "restricted", per_frequency)
        excluded, excluded_k = dec.losses(labels, "excluded", per_frequency)
        row["restricted_loss"], row["excluded_loss"] = restricted, excluded
        for k in restricted_k:
            row[f"restricted_loss_{k}"] = restricted_k[k]
            row[f"excluded_loss_{k}"] = excluded_k[k]
        planes = planes or TrigPlanes(B, freqs, sign, observed)
        row["logit_fit"] = fit_projected(*projected_group_logits(logits, B, observed, planes), planes)[0].fraction_explained
    embed_coeffs = g.embed_coeffs  # (d, n)
    power = frequency_power(embed_coeffs, B).sum(0)[1:]
    key = torch.tensor([k - 1 for k in freqs], dtype=torch.long)
    row["embed_key_power"] = float(power[key].sum() / power.sum()) if power.sum() > 0 else float("nan")
    row["gini_embed"] = gini(embed_coeffs.square().sum(0).sqrt())
    row["gini_logit"] = gini(g.logit_coeffs.square().sum(0).sqrt())
    norms = weight_norms(w)
    row["l1_norm"], row["l2_norm"], row["sum_sq_weights"] = norms.l1, norms.l2, norms.sum_sq
    if acts.pattern is not None:  # last layer, from the answer position, mean over heads and the task's pairs
        mean = acts.pattern[pair_rows, -1].mean((0, 1))
        row["attn_to_a"], row["attn_to_b"] = float(mean[0]), float(mean[1])
    row["key_freqs"] = tuple(freqs)
    return row
