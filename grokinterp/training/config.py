"""Settings of a run: the schedule (may change on resume) and the optimiser (part of the run's
identity, :mod:`grokinterp.runs.spec`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping, Optional

from ..checks import check_betas, check_count, check_flag, check_rate, check_seed
from ..errors import GrokinterpError

__all__ = ["Schedule", "TrainConfig"]


@dataclass(frozen=True)
class Schedule:
    """How long and how often: ``epochs``; evaluation every ``eval_every`` epochs and at the last;
    a checkpoint every ``checkpoint_every`` epochs, at the last and at an early stop;
    ``stop_at_test_acc``: stop after the first evaluation whose test accuracy exceeds it (``None``:
    run all epochs); ``threads``: torch intra-op threads while training (``None``: leave as is; use
    1 per worker when running several processes); ``progress``: a progress bar on a terminal.

    These fields (:data:`grokinterp.runs.SCHEDULE_FIELDS`) are not part of a run's identity: a
    resumed run may change them."""

    epochs: int = 10_000
    eval_every: int = 10
    checkpoint_every: int = 100
    stop_at_test_acc: Optional[float] = None
    threads: Optional[int] = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_count("epochs", self.epochs)
        check_count("eval_every", self.eval_every, minimum=1)
        check_count("checkpoint_every", self.checkpoint_every, minimum=1)
        if self.threads is not None:
            check_count("threads", self.threads, minimum=1)
        stop = self.stop_at_test_acc
        if stop is not None and (isinstance(stop, bool) or not isinstance(stop, (int, float)) or not 0 <= stop <= 1):
            raise GrokinterpError(f"stop_at_test_acc must be None or an accuracy in [0, 1], got {stop!r}")
        check_flag("progress", self.progress)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping):
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known})


@dataclass(frozen=True)
class TrainConfig(Schedule):
    """AdamW (``lr``, ``weight_decay``, ``betas``) with a linear learning-rate warm-up
    ``lr * min(1, epoch / warmup_epochs)``, plus the :class:`Schedule` fields.

    ``batch_size``: ``None`` (default) takes one full-batch step per epoch; an integer ``B`` takes
    ``ceil(n_train / B)`` steps per epoch, over the train split in the order of a permutation drawn
    afresh each epoch from ``(batch_seed, epoch)`` (:func:`grokinterp.training.batches.epoch_order`),
    the last batch holding the remainder. So a resumed run, which restarts at a checkpointed epoch,
    sees exactly the batches of an uninterrupted one. When one batch holds the whole split
    (``B >= n_train``) the split keeps its own order: the run equals the full-batch run bit for bit.
    ``batch_size`` and ``batch_seed`` are part of the run's identity, recorded only when mini-batches
    are used (full-batch configs keep their old records and keys)."""

    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_epochs: int = 0
    batch_size: Optional[int] = None
    batch_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rate("lr", self.lr, positive=True)
        check_rate("weight_decay", self.weight_decay, positive=False)
        object.__setattr__(self, "betas", check_betas("betas", self.betas))
        check_count("warmup_epochs", self.warmup_epochs)
        if self.batch_size is not None:
            check_count("batch_size", self.batch_size, minimum=1)
        check_seed("batch_seed", self.batch_seed)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.batch_size is None:
            del d["batch_size"], d["batch_seed"]  # full batch: the record of every earlier run
        return d
