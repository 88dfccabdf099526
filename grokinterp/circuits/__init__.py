"""Circuit analysis of the Fourier multiplication algorithm and progress measures over training
(Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability").

One import point for :mod:`grokinterp.circuits.trig` (trig-identity checks, logit fit, per-frequency
verdicts), :mod:`grokinterp.circuits.ablation` (restricted / excluded loss), :mod:`grokinterp.circuits.measures`
(Fourier Gini, weight norms), :mod:`grokinterp.circuits.attention` (transformer attention from the ``=``
position and its spectrum) and :mod:`grokinterp.circuits.progress` (``progress_measures`` over a run).
"""

from .ablation import FrequencyAblation, excluded_loss, frequency_ablation, restricted_loss
from .attention import AttentionSummary, attention_summary
from .measures import FourierGini, WeightNorms, fourier_gini, gini, weight_norms
from .progress import progress_measures
from .trig import FIT_THRESHOLD, FrequencyVerdict, LogitFit, TrigIdentityCheck, logit_fit, trig_identity_check
from ..models.weights import Activations, ModelWeights, as_weights, grid_activations

__all__ = [
    "FIT_THRESHOLD",
    "Activations",
    "AttentionSummary",
    "FourierGini",
    "FrequencyAblation",
    "FrequencyVerdict",
    "LogitFit",
    "ModelWeights",
    "TrigIdentityCheck",
    "WeightNorms",
    "as_weights",
    "attention_summary",
    "excluded_loss",
    "fourier_gini",
    "frequency_ablation",
    "gini",
    "grid_activations",
    "logit_fit",
    "progress_measures",
    "restricted_loss",
    "trig_identity_check",
    "weight_norms",
]
