"""Training: the run settings (:mod:`~grokinterp.training.config`), the one loop
(:mod:`~grokinterp.training.loop`) every learner runs in, and its batched form
(:mod:`~grokinterp.training.batched`) that steps several runs of one shape together."""

from .batches import batches_per_epoch, epoch_batches, epoch_order
from .config import Schedule, TrainConfig
from .loop import (
    Callback,
    Cancel,
    DenseLearner,
    Learner,
    LoopState,
    TrainResult,
    adamw,
    check_cancel,
    check_config,
    epoch_bar,
    mask_record,
    run_finished,
    run_record,
    train,
    training_settings,
)
from .batched import MLP_WEIGHTS, TrainJob, stack_key, train_batched

__all__ = [
    "MLP_WEIGHTS",
    "Callback",
    "Cancel",
    "DenseLearner",
    "Learner",
    "LoopState",
    "Schedule",
    "TrainConfig",
    "TrainJob",
    "TrainResult",
    "adamw",
    "check_cancel",
    "batches_per_epoch",
    "check_config",
    "epoch_bar",
    "epoch_batches",
    "epoch_order",
    "mask_record",
    "run_finished",
    "run_record",
    "stack_key",
    "train",
    "train_batched",
    "training_settings",
]
