"""grokinterp: mechanistic interpretability of grokking on modular arithmetic (and, for grokking
tickets, on polynomial regression, sparse parity and images)."""

from . import circuits, fourier, reproduce, sweeps, tickets
from .circuits import (
    attention_summary,
    excluded_loss,
    fourier_gini,
    logit_fit,
    progress_measures,
    restricted_loss,
    trig_identity_check,
    weight_norms,
)
from .errors import CheckpointError, GrokinterpError, MaskError
from .fourier import (
    FourierBasis,
    fft1d,
    fft2d,
    fourier_basis,
    fourier_entropy,
    key_frequencies,
    multiplicative_basis,
    neuron_frequencies,
)
from .metrics import GrokkingTimes, grokking_times
from .models import (
    HookedMLP,
    HookedVectorMLP,
    MLPConfig,
    ModelWeights,
    TransformerConfig,
    VectorMLPConfig,
    as_weights,
    make_transformer,
)
from .report import Comparison, Report, analyze, analyze_runs
from .reproduce import reproduce_tickets_paper
from .runs import Run, load_checkpoint, load_run, save_checkpoint
from .sweeps import RunPlan, run_sweep
from .tasks import ImageClassification, ModularArithmetic, PolynomialRegression, SparseParity, Task
from .tickets import (
    critical_prune_ratio,
    edge_popup,
    grokking_ticket,
    jaccard_distance,
    magnitude_mask,
    mask_frequency_alignment,
    mask_trajectory,
    norm_matched_dense,
    ticket_epoch_sweep,
    ticket_prune_sweep,
)
from .training import TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Comparison",
    "FourierBasis",
    "GrokinterpError",
    "GrokkingTimes",
    "HookedMLP",
    "HookedVectorMLP",
    "ImageClassification",
    "MLPConfig",
    "MaskError",
    "ModelWeights",
    "ModularArithmetic",
    "PolynomialRegression",
    "Report",
    "Run",
    "RunPlan",
    "SparseParity",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TransformerConfig",
    "VectorMLPConfig",
    "analyze",
    "analyze_runs",
    "as_weights",
    "attention_summary",
    "circuits",
    "critical_prune_ratio",
    "edge_popup",
    "excluded_loss",
    "fft1d",
    "fft2d",
    "fourier",
    "fourier_basis",
    "fourier_entropy",
    "fourier_gini",
    "grokking_ticket",
    "grokking_times",
    "jaccard_distance",
    "key_frequencies",
    "load_checkpoint",
    "load_run",
    "logit_fit",
    "magnitude_mask",
    "make_transformer",
    "mask_frequency_alignment",
    "mask_trajectory",
    "multiplicative_basis",
    "neuron_frequencies",
    "norm_matched_dense",
    "progress_measures",
    "reproduce",
    "reproduce_tickets_paper",
    "restricted_loss",
    "run_sweep",
    "save_checkpoint",
    "sweeps",
    "ticket_epoch_sweep",
    "ticket_prune_sweep",
    "tickets",
    "train",
    "trig_identity_check",
    "weight_norms",
]
