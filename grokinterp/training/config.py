"""Settings of a run: the schedule (may change on resume) and the optimiser (part of the run's
identity, :mod:`grokinterp.runs.spec`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Mapping, Optional

from ..errors import GrokinterpError

__all__ = ["Schedule", "TrainConfig", "check_betas", "check_count", "check_rate"]


def check_rate(name: str, value, *, positive: bool) -> None:
    """A finite number, > 0 (``positive``) or >= 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise GrokinterpError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def check_count(name: str, value, *, minimum: int = 0) -> None:
    """A whole number (not a bool, not a float) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GrokinterpError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def check_betas(name: str, betas) -> tuple[float, float]:
    """AdamW's ``(beta1, beta2)``: two numbers in [0, 1)."""
    try:
        ok = len(betas) == 2 and all(not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    except TypeError:
        ok = False
    if not ok:
        raise GrokinterpError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    return tuple(float(b) for b in betas)


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
        if not isinstance(self.progress, bool):
            raise GrokinterpError(f"progress must be True or False, got {self.progress!r}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping):
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known})


@dataclass(frozen=True)
class TrainConfig(Schedule):
    """Full-batch AdamW (``lr``, ``weight_decay``, ``betas``) with a linear learning-rate warm-up
    ``lr * min(1, step / warmup_epochs)``, plus the :class:`Schedule` fields."""

    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rate("lr", self.lr, positive=True)
        check_rate("weight_decay", self.weight_decay, positive=False)
        object.__setattr__(self, "betas", check_betas("betas", self.betas))
        check_count("warmup_epochs", self.warmup_epochs)
