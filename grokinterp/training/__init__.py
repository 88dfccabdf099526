"""Training: the run settings (:mod:`~grokinterp.training.config`) and the one loop
(:mod:`~grokinterp.training.loop`) every learner runs in."""

from .config import Schedule, TrainConfig
from .loop import Callback, DenseLearner, Learner, TrainResult, train

__all__ = ["Callback", "DenseLearner", "Learner", "Schedule", "TrainConfig", "TrainResult", "train"]
