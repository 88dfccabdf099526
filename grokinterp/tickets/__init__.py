"""Pruners, grokking tickets, their controls, sweeps and the critical ratio, edge-popup, and
structure metrics (Minegishi et al., "Grokking Tickets"). ``prune_ratio`` is always the fraction of
weights removed; density = 1 - prune_ratio. Masks themselves are :mod:`grokinterp.masks`."""

from ..masks import (
    Mask,
    apply_mask_,
    check_mask,
    compare_masks,
    density,
    layer_density,
    load_mask,
    masked_weights,
    save_mask,
)
from .select import check_prune_ratio, mask_from_scores, n_keep
from .pruners import (
    PRUNERS,
    grasp_mask,
    grasp_scores,
    magnitude_mask,
    magnitude_scores,
    prune,
    random_mask,
    snip_mask,
    snip_scores,
    synflow_batch_mask,
    synflow_mask,
    synflow_scores,
)
from .ticket import PlannedTicket, TicketRun, grokking_ticket, rewind, run_planned, ticket_mask, ticket_plan
from .controls import (
    norm_matched_dense,
    norm_matched_init,
    norm_matched_plan,
    pruned_at_init,
    pruned_at_init_plan,
    ticket_controls,
)
from .search import CriticalPruneRatio, critical_prune_ratio, ticket_epoch_sweep, ticket_prune_sweep
from .structure import jaccard_distance, layer_jaccard_distance, mask_trajectory
from .alignment import FrequencyAlignment, mask_frequency_alignment, mask_frequency_share
from .popup import EdgePopupConfig, EdgePopupLearner, EdgePopupResult, edge_popup, edge_popup_mask, load_scores

__all__ = [
    "PRUNERS",
    "CriticalPruneRatio",
    "EdgePopupConfig",
    "EdgePopupLearner",
    "EdgePopupResult",
    "FrequencyAlignment",
    "Mask",
    "PlannedTicket",
    "TicketRun",
    "apply_mask_",
    "check_mask",
    "check_prune_ratio",
    "compare_masks",
    "critical_prune_ratio",
    "density",
    "edge_popup",
    "edge_popup_mask",
    "grasp_mask",
    "grasp_scores",
    "grokking_ticket",
    "jaccard_distance",
    "layer_density",
    "layer_jaccard_distance",
    "load_mask",
    "load_scores",
    "magnitude_mask",
    "magnitude_scores",
    "mask_frequency_alignment",
    "mask_frequency_share",
    "mask_from_scores",
    "mask_trajectory",
    "masked_weights",
    "n_keep",
    "norm_matched_dense",
    "norm_matched_init",
    "norm_matched_plan",
    "prune",
    "pruned_at_init",
    "pruned_at_init_plan",
    "random_mask",
    "rewind",
    "run_planned",
    "save_mask",
    "snip_mask",
    "snip_scores",
    "synflow_batch_mask",
    "synflow_mask",
    "synflow_scores",
    "ticket_controls",
    "ticket_epoch_sweep",
    "ticket_mask",
    "ticket_plan",
    "ticket_prune_sweep",
]
