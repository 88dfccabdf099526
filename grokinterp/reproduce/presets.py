"""The tickets paper's settings as data (Minegishi et al., "Grokking Tickets: Lottery Tickets
Accelerate Grokking").

Two layers:

* :data:`PAPER_SETTINGS` — each setting as the paper's text states it, as its official code runs it,
  and which of the two the presets use (the code's wherever they differ, because the paper's
  figures were made by the code). The how-to page and the report print this table.
* :class:`TicketsPaperPreset` — every number the reproduction trains with, per experiment:
  :func:`preset` ``("full")`` is the paper's scale, ``("quick")`` a small setting (p = 23, short
  runs) that runs every experiment end to end in a few minutes; it checks the machinery, not the
  science, and its reports say so.

``prune_ratio`` is always the fraction of weights removed (density = 1 - prune_ratio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ..checks import replace_fields
from ..errors import GrokinterpError
from ..tasks import PAPER_PRESETS
from ..tickets import EdgePopupConfig
from ..training import TrainConfig

__all__ = [
    "PAPER_SETTINGS",
    "PRESETS",
    "PaIVariant",
    "PaperSetting",
    "Table1Preset",
    "TicketsPaperPreset",
    "TransformerPreset",
    "VectorTaskPreset",
    "preset",
]


@dataclass(frozen=True)
class PaperSetting:
    """One setting: what the paper's text says, what the official code does, and what is used."""

    name: str
    text: str
    code: str
    used: str


PAPER_SETTINGS: tuple[PaperSetting, ...] = (
    PaperSetting("pairs (p = 67)", "a > b (2211 pairs)", "a <= b (2278 pairs)",
                 "a <= b (2278 pairs), the code's"),
    PaperSetting("train fraction", "40 %", "40 % (911 of 2278 pairs)", "40 %"),
    PaperSetting("model", "MLP: W_E (67x500) shared by a and b, ReLU((E_a + E_b) W_in) W_out W_U, 500-48-500, no biases",
                 "the same", "HookedMLP(p=67, d_embed=500, d_hidden=48)"),
    PaperSetting("optimiser", "AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), full batch", "the same", "the same"),
    PaperSetting("prune ratio (fraction removed)", "0.6", "0.6", "0.6"),
    PaperSetting("pruning-at-init scores", "taken at the initial weights",
                 "taken at the final checkpoint, then rewound", "both, named score_at = init / final"),
    PaperSetting("SynFlow", "the SynFlow paper's: all-ones input, 100 rounds", "the training batch, 1 round",
                 "both, named synflow_original / synflow_official"),
    PaperSetting("critical ratio", "0.81 (weight decay 0, accuracy threshold not stated)", "weight decay 0",
                 "weight decay 0, grid of tickets, threshold a parameter (default 0.95)"),
    PaperSetting("Table 1 memorised solution", "a memorised checkpoint",
                 "epoch 1000 of a dense run, train fraction 0.5, lr 1e-3, weight decay 1, embedding drawn "
                 "Kaiming-normal (sqrt 2 x the default std)", "the code's"),
    PaperSetting("Table 1 WD row", "dense training with weight decay",
                 "the memorised weights trained on at lr 1e-2 with a fresh AdamW (the checkpoint's optimiser state "
                 "is not loaded)", "the code's: a fresh AdamW, lr 1e-2, weight decay 1"),
    PaperSetting("Table 1 edge-popup (frozen weights)", "scores trained, weights frozen",
                 "AdamW lr 1e-2, weight decay 1 on the scores, Kaiming-uniform scores U(+-1/sqrt(fan_in)), keep 40 % per "
                 "layer", "the code's"),
    PaperSetting("Table 1 edge-popup + WD", "scores and weights trained", "scores and weights lr 1e-2, weight decay 1",
                 "the code's"),
    PaperSetting("Table 1 seeds", "3 seeds", "one memorised checkpoint reused for seeds 0/1/2, split rebuilt per seed",
                 "both protocols: faithful (the code's) and corrected (each seed its own memorised run)"),
    PaperSetting("transformer", "1 layer", "1 layer, 1 head, d_model = d_head = d_mlp = 128, no positional embedding, "
                 "inputs (a, b), read-out at the last position", "make_transformer('tickets')"),
)


@dataclass(frozen=True)
class PaIVariant:
    """A pruning-at-initialisation baseline by name: the pruner, where its scores are taken
    (``"init"``: the epoch-0 weights; ``"final"``: the base run's last checkpoint, then rewound)
    and the pruner's keyword arguments."""

    name: str
    method: str
    score_at: str = "init"
    kwargs: Mapping = field(default_factory=dict)


def _pai_variants(methods: tuple[str, ...] = ("snip", "grasp", "synflow_original", "synflow_official"),
                  score_at: tuple[str, ...] = ("init", "final")) -> tuple[PaIVariant, ...]:
    pruner = {"snip": ("snip", {}), "grasp": ("grasp", {}), "synflow_original": ("synflow", {"rounds": 100}),
              "synflow_official": ("synflow_batch", {"rounds": 1})}
    out = [PaIVariant("random", "random")]
    for name in methods:
        method, kwargs = pruner[name]
        out += [PaIVariant(f"{name}@{at}", method, at, kwargs) for at in score_at]
    return tuple(out)


@dataclass(frozen=True)
class Table1Preset:
    """Table 1: edge-popup from a memorised solution. The memorised run trains dense with
    ``memorise`` on a split with ``frac_train``; its checkpoint at ``memorised_epoch`` is the start
    of three rows: ``wd`` (dense, continued), ``ep_frozen`` (edge-popup, weights frozen) and
    ``ep_wd`` (edge-popup, weights trained with weight decay). Test accuracy is read at
    ``read_epochs`` after the start. ``init_scales``: per-matrix init scales of the memorised run
    (as :class:`~grokinterp.models.MLPConfig` takes them); the official code's network draws its
    embedding with a Kaiming-normal init, ``sqrt(2)`` times the default's standard deviation."""

    frac_train: float
    memorise: TrainConfig
    memorised_epoch: int
    wd: TrainConfig
    ep_frozen: EdgePopupConfig
    ep_wd: EdgePopupConfig
    read_epochs: tuple[int, ...]
    prune_ratio: float = 0.6
    init_scales: Optional[tuple[tuple[str, float], ...]] = (("W_E", math.sqrt(2)),)


@dataclass(frozen=True)
class TransformerPreset:
    """The tickets paper's transformer (``make_transformer(preset)``) on addition: base run,
    ticket, norm-matched controls and pruning-at-init baselines."""

    preset: str
    pairs: str
    frac_train: float
    base: TrainConfig
    retrain: TrainConfig
    pai: tuple[PaIVariant, ...]


@dataclass(frozen=True)
class VectorTaskPreset:
    """One of the paper's tasks on vectors, base run and ticket: the ``task`` and ``model`` dicts
    (their ``seed`` set to the run's seed), the base run's training and the ticket's."""

    task: Mapping
    model: Mapping
    base: TrainConfig
    retrain: TrainConfig


def _vector_tasks_full() -> dict[str, VectorTaskPreset]:
    """The papers' set-ups (:data:`grokinterp.tasks.PAPER_PRESETS`: the official code's values, the
    digits standing in for MNIST); the ticket retrains as its base run did."""
    out = {}
    for name, key in (("regression", "tickets_polynomial_regression"), ("images", "tickets_digits"),
                      ("parity", "sparse_parity")):
        p = PAPER_PRESETS[key]
        train = TrainConfig(**{**p.train, "progress": False})
        out[name] = VectorTaskPreset(dict(p.task), dict(p.model), train, train)
    return out


def _vector_tasks_quick() -> dict[str, VectorTaskPreset]:
    """Small settings known to grok within a few hundred epochs (large init or weight decay)."""
    def cfg(epochs, lr, stop=None):
        return TrainConfig(epochs=epochs, lr=lr, weight_decay=1.0, eval_every=10, checkpoint_every=100,
                           stop_at_test_acc=stop, progress=False, threads=1)

    return {
        "regression": VectorTaskPreset(
            {"kind": "polynomial_regression", "d": 40, "n_train": 300, "n_test": 300},
            {"kind": "vector_mlp", "d_in": 40, "widths": [48], "d_out": 1, "act": "quadratic", "init_scale": 2.0},
            cfg(600, 1e-2), cfg(600, 1e-2)),
        "images": VectorTaskPreset(
            {"kind": "image_classification", "source": "digits", "n_train": 500},
            {"kind": "vector_mlp", "d_in": 64, "widths": [128, 128], "d_out": 10, "init_scale": 3.0},
            cfg(700, 1e-3, 0.97), cfg(700, 1e-3, 0.97)),
        "parity": VectorTaskPreset(
            {"kind": "sparse_parity", "n_bits": 12, "k": 3, "n_train": 300, "n_test": 500},
            {"kind": "vector_mlp", "d_in": 12, "widths": [64], "d_out": 2},
            cfg(2000, 1e-2, 0.99), cfg(2000, 1e-2, 0.99)),
    }


@dataclass(frozen=True)
class TicketsPaperPreset:
    """Every setting of a reproduction run (see the module docstring).

    ``base``: the dense run every MLP experiment starts from (all its checkpoints are kept, no early
    stop); ``retrain``: tickets, controls and baselines; ``ticket_epoch``: ``None`` takes the base
    run's last checkpoint. ``full_ticket_epoch``: Fig. 4's claim concerns tickets taken at or after
    it. ``critical_*``: the critical-ratio grid (retrained without weight decay)."""

    name: str
    quick: bool
    p: int
    pairs: str
    frac_train: float
    d_embed: int
    d_hidden: int
    base: TrainConfig
    retrain: TrainConfig
    prune_ratio: float
    ticket_epoch: Optional[int]
    prune_ratios: tuple[float, ...]
    ticket_epochs: tuple[int, ...]
    full_ticket_epoch: int
    ops: tuple[str, ...]
    norms: tuple[str, ...]
    pai: tuple[PaIVariant, ...]
    critical_ratios: tuple[float, ...]
    critical: TrainConfig
    critical_threshold: float
    jaccard_every: int
    table1: Table1Preset
    transformer: TransformerPreset
    vector_tasks: Mapping[str, VectorTaskPreset]
    seeds: int = 3

    def replace(self, **changes) -> "TicketsPaperPreset":
        """A copy with fields replaced (e.g. ``critical_threshold=0.9``)."""
        return replace_fields(self, changes, "preset field(s)")


def _full() -> TicketsPaperPreset:
    base = TrainConfig(epochs=30_000, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=1000, progress=False)
    retrain = TrainConfig(epochs=30_000, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=2000,
                          stop_at_test_acc=0.99, progress=False)
    ep = dict(epochs=2000, eval_every=20, checkpoint_every=500, score_lr=1e-2, score_weight_decay=1.0,
              score_init="kaiming_uniform", progress=False)
    table1 = Table1Preset(
        frac_train=0.5,
        memorise=TrainConfig(epochs=1000, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=200, progress=False),
        memorised_epoch=1000,
        wd=TrainConfig(epochs=2000, lr=1e-2, weight_decay=1.0, eval_every=20, checkpoint_every=500, progress=False),
        ep_frozen=EdgePopupConfig(weights="frozen", **ep),
        ep_wd=EdgePopupConfig(weights="joint", weight_lr=1e-2, weight_decay=1.0, **ep),
        read_epochs=(600, 1000, 1400, 2000),
    )
    transformer = TransformerPreset(
        preset="tickets", pairs="a<=b", frac_train=0.4,
        base=TrainConfig(epochs=20_000, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=1000, progress=False),
        retrain=TrainConfig(epochs=20_000, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=2000,
                            stop_at_test_acc=0.99, progress=False),
        pai=_pai_variants(("snip", "grasp", "synflow_original"), ("init",)),
    )
    return TicketsPaperPreset(
        name="full", quick=False, p=67, pairs="a<=b", frac_train=0.4, d_embed=500, d_hidden=48,
        base=base, retrain=retrain, prune_ratio=0.6, ticket_epoch=None,
        prune_ratios=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        ticket_epochs=(1000, 5000, 10_000, 15_000, 20_000, 25_000, 30_000), full_ticket_epoch=25_000,
        ops=("sub", "mul", "div", "x2+y2", "x2+xy+y2", "x3+xy"), norms=("l1", "l2"), pai=_pai_variants(),
        critical_ratios=tuple(round(0.60 + 0.01 * i, 2) for i in range(36)),
        critical=TrainConfig(epochs=10_000, lr=1e-3, weight_decay=0.0, eval_every=20, checkpoint_every=2000, progress=False),
        critical_threshold=0.95, jaccard_every=2000, table1=table1, transformer=transformer,
        vector_tasks=_vector_tasks_full(), seeds=3,
    )


def _quick() -> TicketsPaperPreset:
    base = TrainConfig(epochs=1000, lr=1e-2, weight_decay=1.0, eval_every=20, checkpoint_every=100, progress=False, threads=1)
    retrain = TrainConfig(epochs=1000, lr=1e-2, weight_decay=1.0, eval_every=20, checkpoint_every=100,
                          stop_at_test_acc=0.99, progress=False, threads=1)
    ep = dict(epochs=200, eval_every=20, checkpoint_every=100, score_lr=1e-2, score_weight_decay=1.0,
              score_init="kaiming_uniform", progress=False, threads=1)
    table1 = Table1Preset(
        frac_train=0.5,
        memorise=TrainConfig(epochs=100, lr=1e-3, weight_decay=1.0, eval_every=20, checkpoint_every=100, progress=False, threads=1),
        memorised_epoch=100,
        wd=TrainConfig(epochs=200, lr=1e-2, weight_decay=1.0, eval_every=20, checkpoint_every=100, progress=False, threads=1),
        ep_frozen=EdgePopupConfig(weights="frozen", **ep),
        ep_wd=EdgePopupConfig(weights="joint", weight_lr=1e-2, weight_decay=1.0, **ep),
        read_epochs=(60, 100, 140, 200),
    )
    transformer = TransformerPreset(
        preset="tickets", pairs="all", frac_train=0.5,
        base=TrainConfig(epochs=300, lr=3e-3, weight_decay=1.0, eval_every=20, checkpoint_every=100, progress=False, threads=1),
        retrain=TrainConfig(epochs=300, lr=3e-3, weight_decay=1.0, eval_every=20, checkpoint_every=100,
                            stop_at_test_acc=0.99, progress=False, threads=1),
        pai=_pai_variants(("snip",), ("init",)),
    )
    return TicketsPaperPreset(
        name="quick", quick=True, p=23, pairs="all", frac_train=0.5, d_embed=500, d_hidden=48,
        base=base, retrain=retrain, prune_ratio=0.6, ticket_epoch=None,
        prune_ratios=(0.3, 0.6, 0.7, 0.9), ticket_epochs=(100, 500, 1000), full_ticket_epoch=500,
        ops=("sub", "mul", "div", "x2+y2", "x2+xy+y2", "x3+xy"), norms=("l1", "l2"),
        pai=_pai_variants(("snip", "grasp", "synflow_original", "synflow_official"), ("init", "final")),
        critical_ratios=(0.6, 0.8, 0.9),
        critical=TrainConfig(epochs=500, lr=1e-2, weight_decay=0.0, eval_every=20, checkpoint_every=500, progress=False, threads=1),
        critical_threshold=0.95, jaccard_every=100, table1=table1, transformer=transformer,
        vector_tasks=_vector_tasks_quick(), seeds=1,
    )


PRESETS = {"full": _full, "quick": _quick}


def preset(name: str = "full") -> TicketsPaperPreset:
    """The named preset: ``"full"`` (the paper's scale) or ``"quick"`` (a machinery check)."""
    if name not in PRESETS:
        raise GrokinterpError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()
