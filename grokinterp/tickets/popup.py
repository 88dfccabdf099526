"""Edge-popup: learn which weights to keep (Ramanujan et al. 2020, "What's hidden in a randomly
weighted neural network?"), as used on grokking by Minegishi et al. ("Grokking Tickets", Table 1).

Every pruned tensor ``W`` gets a score tensor ``S`` of the same shape. The forward pass uses
``W ⊙ m(S)`` where ``m(S)`` keeps, per tensor, the ``round((1 - k) · n)`` entries of largest ``|S|``
(ties to the lower index). The top-k selection has no gradient, so the backward pass is
straight-through: ``∂L/∂|S| := ∂L/∂m = (∂L/∂(W ⊙ m)) ⊙ W`` for *every* score, kept or not, and
``∂L/∂S = sign(S) ∂L/∂|S|``.

Modes: ``weights="frozen"`` — only the scores learn (the weights stay bit-identical to the starting
checkpoint); ``weights="joint"`` — the weights learn too, with their own AdamW and weight decay.
Scores and weights have separate optimiser settings (both AdamW, full batch).

Score init: ``"uniform"`` — i.i.d. ``U(-1, 1)`` from ``seed`` (a random starting subnetwork);
``"kaiming_uniform"`` — i.i.d. ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)`` (what
``kaiming_uniform_(a = sqrt(5))`` gives an ``nn.Linear`` score tensor, the init of the original
method's code and of the tickets paper's runs). This package stores weights in ``x @ W``
orientation, so ``fan_in`` is the size of the axis the input contracts over, the second-to-last
(the first of a matrix: ``p`` for ``W_E``, ``d_embed`` for ``W_in``); the record keeps each tensor's
``b`` under ``score_bounds``. ``"magnitude"`` — ``|W| / max |W|`` per tensor, so
the starting subnetwork is the per-layer magnitude mask of the starting weights. The scale of the
scores sets how far one AdamW step moves them relative to their spread.

Run directory (as training writes it): ``config.json`` (``train`` holds the trainer-compatible
fields, ``edge_popup`` the full settings, ``parent`` the source run, epoch, prune ratio and mode),
``metrics.jsonl`` (the trainer's metrics of the masked network, plus ``mask_changed``: the fraction
of mask entries that flipped since the previous evaluation), ``checkpoints/epoch_*.safetensors``
(the underlying weights, unmasked), ``scores/epoch_*.safetensors`` (the scores at each checkpoint;
the mask at that epoch is :func:`edge_popup_mask` of them), ``resume.safetensors`` (the optimiser
states at the last checkpoint, for ``resume=True``) and ``mask.safetensors`` (the final mask, written
at the end).

As a sweep: :func:`edge_popup_plan` gives the run as a :class:`grokinterp.sweeps.RunPlan` (its
learner an :class:`EdgePopupPlan`), so edge-popup runs train next to other runs on any executor; a
plan's run is the very run :func:`edge_popup` makes with the same arguments (same record, same key).

Resume: ``edge_popup(..., out_dir=d, resume=True)`` continues a killed run in ``d`` from its last
checkpoint (weights, scores, both optimisers, the mask of the last evaluation) and gives the same
numbers as an uninterrupted run. Only the schedule (``epochs``, ``eval_every``,
``checkpoint_every``, ``stop_at_test_acc``, ``threads``, ``progress``) may change on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, GrokinterpError
from ..masks import Mask, density
from ..metrics import grokking_times
from ..models import Model, as_weights, build_model, fit_task, is_model, model_config, named_weights
from ..runs import Run, RunWriter, as_run, load_weights
from ..safeio import read_safetensors
from ..runs.layout import RunPaths
from ..tasks import Task
from ..checks import check_betas, check_rate, check_seed, replace_fields
from ..sweeps import RunPlan
from ..training import Schedule, adamw, train
from .nets import Include, as_net, resolve_include
from .select import check_prune_ratio, n_keep, top_k_flat

__all__ = ["EdgePopupConfig", "EdgePopupLearner", "EdgePopupPlan", "EdgePopupResult", "edge_popup", "edge_popup_mask",
           "edge_popup_plan", "load_scores"]

SCORES = "scores"  # the per-checkpoint state folder of an edge-popup run
SCORE_INITS = ("uniform", "kaiming_uniform", "magnitude")


@dataclass(frozen=True)
class EdgePopupConfig(Schedule):
    """Settings of an edge-popup run (defaults are this package's, not the paper's, except the
    AdamW betas and the weight decay of the weights).

    ``weights``: ``"frozen"`` or ``"joint"``. ``score_*``: AdamW on the scores; ``weight_*``: AdamW
    on the weights (joint mode only). ``score_init``: ``"uniform"``, ``"kaiming_uniform"`` or
    ``"magnitude"`` (see the module docstring); ``seed`` seeds the random inits. Schedule fields as in :class:`~grokinterp.training.Schedule`.
    """

    epochs: int = 2000
    weights: Literal["frozen", "joint"] = "frozen"
    score_lr: float = 1e-2
    score_weight_decay: float = 0.0
    score_betas: tuple[float, float] = (0.9, 0.98)
    weight_lr: float = 1e-3
    weight_decay: float = 1.0
    weight_betas: tuple[float, float] = (0.9, 0.98)
    score_init: Literal["uniform", "kaiming_uniform", "magnitude"] = "uniform"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weights not in ("frozen", "joint"):
            raise GrokinterpError(f"weights must be 'frozen' (only scores learn) or 'joint', got {self.weights!r}")
        if self.score_init not in SCORE_INITS:
            raise GrokinterpError(f"score_init must be one of {list(SCORE_INITS)}, got {self.score_init!r}")
        super().__post_init__()
        for name in ("score_lr", "weight_lr"):
            check_rate(name, getattr(self, name), positive=True)
        for name in ("score_weight_decay", "weight_decay"):
            check_rate(name, getattr(self, name), positive=False)
        for name in ("score_betas", "weight_betas"):
            object.__setattr__(self, name, check_betas(name, getattr(self, name)))
        check_seed("seed", self.seed)

    def train_dict(self) -> dict:
        """The fields a :class:`~grokinterp.training.TrainConfig` reads (for readers of the run)."""
        return {
            "epochs": self.epochs,
            "lr": self.weight_lr,
            "weight_decay": self.weight_decay if self.weights == "joint" else 0.0,
            "betas": list(self.weight_betas),
            "warmup_epochs": 0,
            "eval_every": self.eval_every,
            "checkpoint_every": self.checkpoint_every,
            "stop_at_test_acc": self.stop_at_test_acc,
            "threads": self.threads,
            "progress": self.progress,
        }


@dataclass
class EdgePopupResult:
    model: Model
    scores: dict[str, Tensor]
    mask: Mask
    history: list[dict]
    run_dir: Optional[Path]

    @property
    def times(self):
        return grokking_times(self.history)

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


class _TopAbsStraightThrough(torch.autograd.Function):
    """Forward: 0/1 mask of the ``k`` largest entries; backward: the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, abs_scores: Tensor, k: int) -> Tensor:
        keep = top_k_flat(abs_scores.detach().reshape(-1), k).reshape(abs_scores.shape)
        return keep.to(abs_scores.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def edge_popup_mask(scores: Mapping[str, Tensor], prune_ratio: float) -> Mask:
    """Per tensor, keep the ``round((1 - prune_ratio) · n)`` entries of largest ``|score|``."""
    prune_ratio = check_prune_ratio(prune_ratio)
    return {
        n: top_k_flat(s.detach().abs().reshape(-1), n_keep(s.numel(), prune_ratio)).reshape(s.shape)
        for n, s in scores.items()
    }


def load_scores(run_dir: str | Path, epoch: int) -> dict[str, Tensor]:
    """Scores saved at a checkpoint epoch of an edge-popup run."""
    return read_safetensors(RunPaths(Path(run_dir)).state(SCORES, int(epoch)))[0]


class EdgePopupLearner:
    """What an edge-popup run trains, for the training loop: the scores of the tensors ``names``
    (and, in joint mode, the weights), each with its own AdamW. The forward pass uses
    ``W ⊙ m(S)``; evaluations add ``density`` and ``mask_changed`` (the fraction of mask entries
    that flipped since the previous evaluation) to the metrics; checkpoints save the scores
    (``scores/epoch_*.safetensors``) and the last evaluated mask; the end writes the final mask."""

    kind = "edge_popup"
    input_mask = None  # the mask is what it learns, written at the end

    def __init__(self, model: Model, prune_ratio: float, names: list[str], cfg: EdgePopupConfig):
        self.model, self.prune_ratio, self.names, self.cfg = model, prune_ratio, names, cfg
        self.params = named_weights(model)
        self.bounds = score_bounds(self.params, names, cfg)
        self.scores = _init_scores(self.params, names, cfg, self.bounds)
        self.keep = {n: n_keep(self.params[n].numel(), prune_ratio) for n in names}
        self.was_trainable = {n: p.requires_grad for n, p in self.params.items()}
        self.optimisers = [("scores/", adamw(
            self.scores.values(), lr=cfg.score_lr, betas=cfg.score_betas, weight_decay=cfg.score_weight_decay
        ), self.scores)]
        if cfg.weights == "joint":
            trainable = {n: p for n, p in self.params.items() if p.requires_grad}
            self.optimisers.append(("weights/", adamw(
                trainable.values(), lr=cfg.weight_lr, betas=cfg.weight_betas, weight_decay=cfg.weight_decay
            ), trainable))
        self.prev_mask = edge_popup_mask(self.scores, prune_ratio)

    def record(self) -> dict:
        return {
            "train": self.cfg.train_dict(),
            "edge_popup": {**self.cfg.to_dict(), "prune_ratio": self.prune_ratio, "include": self.names,
                           # the fan-in-scaled bounds are part of the run's identity
                           **({"score_bounds": self.bounds} if self.cfg.score_init == "kaiming_uniform" else {})},
            "mask": {"density": None, "file": "mask.safetensors", "note": "final edge-popup mask, written at the end"},
            "epoch_convention": "epoch e = after e full-batch steps; epoch 0 = the starting checkpoint",
            "seeds": {"scores": self.cfg.seed},
        }

    def begin(self, epoch: int) -> None:
        if self.cfg.weights == "frozen":
            for p in self.params.values():
                p.requires_grad_(False)

    def warm_up(self, epoch: int) -> None:
        pass

    def weights(self, train: bool) -> dict[str, Tensor]:
        if train:
            return {n: self.params[n] * _TopAbsStraightThrough.apply(self.scores[n].abs(), self.keep[n]) for n in self.names}
        mask = edge_popup_mask(self.scores, self.prune_ratio)
        return {n: self.params[n].detach() * mask[n] for n in self.names}

    def eval_metrics(self) -> dict:
        mask = edge_popup_mask(self.scores, self.prune_ratio)
        flipped = sum(int((mask[n] != self.prev_mask[n]).sum()) for n in self.names)
        self.prev_mask = mask
        return {"density": density(mask), "mask_changed": flipped / sum(m.numel() for m in mask.values())}

    def state(self) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]:
        prev = {f"prev_mask/{n}": m.to(torch.uint8) for n, m in self.prev_mask.items()}
        return prev, {SCORES: {n: s.detach() for n, s in self.scores.items()}}

    def load_state(self, writer: RunWriter, epoch: int, stored: Mapping[str, Tensor]) -> None:
        saved = writer.read_state(SCORES, epoch)
        with torch.no_grad():
            for n, s in self.scores.items():
                if n not in saved or saved[n].shape != s.shape:
                    raise CheckpointError(f"{writer.path}: scores at epoch {epoch} lack a {tuple(s.shape)} tensor {n!r}")
                if not bool(torch.isfinite(saved[n]).all()):
                    raise CheckpointError(f"{writer.path}: scores of {n!r} at epoch {epoch} hold non-finite values")
                s.copy_(saved[n])
        missing = [n for n, sc in self.scores.items() if stored.get(f"prev_mask/{n}", torch.empty(0)).shape != sc.shape]
        if missing:
            raise CheckpointError(f"{writer.paths.resume}: lacks the last evaluated mask of {missing}")
        self.prev_mask = {n: stored[f"prev_mask/{n}"].bool() for n in self.scores}

    def final_mask(self) -> Mask:
        return edge_popup_mask(self.scores, self.prune_ratio)

    def end(self, writer: Optional[RunWriter]) -> None:
        for n, p in self.params.items():
            p.requires_grad_(self.was_trainable[n])
        if writer is None:
            return
        final = self.final_mask()
        stored = writer.read_mask()
        if stored is None or stored.keys() != final.keys() or any(not torch.equal(stored[n], final[n]) for n in final):
            writer.write_mask(final, {"kind": "edge_popup", "prune_ratio": self.prune_ratio})
        record = writer.read_config()
        if record["mask"]["density"] != density(final):  # each step is done once, however often end() runs
            record["mask"]["density"] = density(final)
            writer.write_config(record)


@dataclass(frozen=True)
class EdgePopupPlan:
    """The learner of an edge-popup run as data (a :class:`grokinterp.sweeps.LearnerPlan`): the
    prune ratio per tensor, the tensors with scores and the settings. It pickles to worker
    processes; :meth:`build` makes the :class:`EdgePopupLearner` for the run's model."""

    prune_ratio: float
    names: tuple[str, ...]
    config: EdgePopupConfig

    kind = "edge_popup"

    def build(self, model: Model) -> EdgePopupLearner:
        return EdgePopupLearner(model, self.prune_ratio, list(self.names), self.config)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "prune_ratio": self.prune_ratio, "include": list(self.names), **self.config.to_dict()}


def fan_in(w: Tensor) -> int:
    """The number of inputs each output of ``x @ W`` sums over: the second-to-last axis (the only
    axis of a vector)."""
    return int(w.shape[-2] if w.ndim > 1 else w.shape[0])


def score_bounds(weights: Mapping[str, Tensor], names, cfg: EdgePopupConfig) -> Optional[dict[str, float]]:
    """The half-width ``b`` of each tensor's uniform score init (``None`` for ``"magnitude"``)."""
    if cfg.score_init == "magnitude":
        return None
    return {n: (1 / math.sqrt(fan_in(weights[n])) if cfg.score_init == "kaiming_uniform" else 1.0) for n in names}


def _init_scores(weights: Mapping[str, Tensor], names, cfg: EdgePopupConfig,
                 bounds: Optional[Mapping[str, float]]) -> dict[str, nn.Parameter]:
    g = torch.Generator().manual_seed(int(cfg.seed))
    out = {}
    for n in names:
        w = weights[n].detach()
        if bounds is not None:  # U(-b, b); b = 1 leaves the U(-1, 1) draws exact
            s = (torch.rand(w.shape, generator=g, dtype=w.dtype) * 2 - 1) * bounds[n]
        else:
            s = w.abs() / w.abs().max().clamp_min(torch.finfo(w.dtype).tiny)
        out[n] = nn.Parameter(s)
    return out


def _source(source, epoch, task) -> tuple[Model, Task, dict, Optional[str]]:
    """A fresh copy of the starting model, the task, the parent record and the parent's key."""
    if isinstance(source, (str, Path, Run)):
        run = as_run(source)
        if not run.checkpoint_epochs:
            raise GrokinterpError(f"{run.path}: the run has no checkpoints to start from")
        model = run.model_at(epoch)
        e = run.checkpoint_epochs[-1] if epoch is None else epoch
        task = task if task is not None else run.task
        info, key = {"run": str(run.path) if run.path is not None else None, "epoch": int(e)}, run.key
    elif is_model(source):
        if epoch is not None:
            raise GrokinterpError("epoch= selects a checkpoint of a run; pass a run (path or Run), not a model")
        model = load_weights(build_model(model_config(source)), as_weights(source).tensors, "model")
        info, key = {"run": None, "epoch": None}, None
    else:
        raise GrokinterpError(
            f"edge_popup starts from a run (path or Run) or a grokinterp model, got {type(source).__name__}"
        )
    if task is None:
        raise GrokinterpError("edge_popup needs a task: pass task= or a run that records one")
    fit_task(model, task)
    return model, task, info, key


def _settings(config: EdgePopupConfig | None, overrides: Mapping) -> EdgePopupConfig:
    cfg = config if config is not None else EdgePopupConfig()
    if not isinstance(cfg, EdgePopupConfig):
        raise GrokinterpError(f"config must be an EdgePopupConfig, got {type(cfg).__name__}")
    return replace_fields(cfg, overrides, "edge-popup setting(s)")


def edge_popup_plan(
    source,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    epoch: int | None = None,
    task: Task | None = None,
    include: Include = None,
    config: EdgePopupConfig | None = None,
    reuse: bool = True,
    labels: Mapping | None = None,
    **overrides,
) -> RunPlan:
    """The run of :func:`edge_popup` (same arguments) as a :class:`~grokinterp.sweeps.RunPlan`,
    without training it: its initial weights are the source checkpoint's, its learner an
    :class:`EdgePopupPlan`. ``reuse``: a folder already holding this run is read back if finished
    and resumed if not. Hand it to :func:`grokinterp.sweeps.execute` with other plans."""
    prune_ratio = check_prune_ratio(prune_ratio)
    cfg = _settings(config, overrides)
    model, task, info, key = _source(source, epoch, task)
    names = tuple(resolve_include(as_net(model), include))
    parent = {**info, "kind": "edge_popup", "prune_ratio": prune_ratio, "weights": cfg.weights}
    return RunPlan.of(task, model, cfg, out_dir, learner=EdgePopupPlan(prune_ratio, names, cfg), parent=parent,
                      parent_key=key, reuse=reuse, init_source={"run": info["run"], "epoch": info["epoch"]},
                      labels=dict(labels or {}))


def edge_popup(
    source,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    epoch: int | None = None,
    task: Task | None = None,
    include: Include = None,
    config: EdgePopupConfig | None = None,
    resume: bool = False,
    **overrides,
) -> EdgePopupResult:
    """Train edge-popup scores (and, in joint mode, the weights) from a starting point, in the
    training loop (:func:`grokinterp.train` with an :class:`EdgePopupLearner`).

    Args:
        source: a run (directory path or :class:`~grokinterp.runs.Run`) — start from its checkpoint
            at ``epoch`` (default: the last; the paper starts from a memorised one) — or a grokinterp
            model (with ``task``). The source is never modified; a run's own mask is not applied.
        prune_ratio: fraction removed in every pruned tensor (density ``1 - prune_ratio`` per layer).
        out_dir: run directory to write (``None``: in memory only).
        include: tensors that get scores (default: every weight matrix, embedding and unembedding
            included).
        config / overrides: :class:`EdgePopupConfig`, or single fields (``weights="joint"``,
            ``epochs=600``, ``score_lr=...``).
        resume: continue a killed run in ``out_dir`` from its last checkpoint (or start it, if
            ``out_dir`` holds no run yet). Pass the same source, prune ratio and settings.

    Returns an :class:`EdgePopupResult` (model with the final weights, scores, final mask, history,
    run_dir; ``times`` gives t_mem / t_gen of the masked network).
    """
    prune_ratio = check_prune_ratio(prune_ratio)
    cfg = _settings(config, overrides)
    if resume and out_dir is None:
        raise GrokinterpError("resume=True needs the out_dir of the edge-popup run to continue")
    model, task, info, key = _source(source, epoch, task)
    learner = EdgePopupLearner(model, prune_ratio, resolve_include(as_net(model), include), cfg)
    parent = {**info, "kind": "edge_popup", "prune_ratio": prune_ratio, "weights": cfg.weights}
    result = train(model, task, cfg, out_dir, resume=resume, parent=parent, parent_key=key, learner=learner)
    scores = {n: s.detach() for n, s in learner.scores.items()}
    return EdgePopupResult(model, scores, learner.final_mask(), result.history, result.run_dir)
