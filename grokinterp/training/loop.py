"""The one training loop. It trains whatever a :class:`Learner` says is trained (a dense or masked
network, edge-popup scores with or without the weights), on any task, full batch or in seeded
mini-batches (``TrainConfig.batch_size``, :mod:`~grokinterp.training.batches`).

Epoch convention: epoch ``e`` is the state after ``e`` full-batch steps (with mini-batches: ``e``
passes over the train split); epoch 0 is the starting
weights, evaluated and (with a run directory) saved before the first step. Evaluation happens every
``eval_every`` epochs and at the last epoch; ``t_mem`` / ``t_gen`` are read off those rows.

With a run directory the loop writes the run's record (``config.json``: its spec and schedule), one
metrics row per evaluation and a checkpoint (weights, optimiser and learner state) every
``checkpoint_every`` epochs. ``resume=True`` continues a killed run from its last checkpoint,
bit-identically, after checking that the requested run has the stored run's spec
(:func:`grokinterp.runs.check_same_spec`); a run that had already finished is returned as it is.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Protocol, Sequence

import torch
from torch import Tensor
from tqdm import TqdmWarning

with warnings.catch_warnings():  # without ipywidgets in Jupyter, tqdm.auto falls back to the text bar: quietly
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from ..errors import CheckpointError, GrokinterpError, TrainingCancelled
from ..masks import Mask, apply_mask_, check_mask, density, mask_digest
from ..metrics import GrokkingTimes, evaluate, grokking_times, train_loss
from ..models import Model, ModelConfig, ModelWeights, answer_logits, config_to_dict, fit_task, model_config, named_weights
from ..runs import (
    RunWriter,
    check_same_spec,
    library_versions,
    load_optimiser_state,
    load_weights,
    optimiser_state,
    read_resume_state,
)
from ..tasks import Task
from .batches import batches_per_epoch, epoch_batches, epoch_convention
from .config import Schedule, TrainConfig

__all__ = ["Callback", "Cancel", "DenseLearner", "adamw", "check_cancel", "Learner", "LoopState", "TrainResult", "check_config", "epoch_bar", "mask_record", "run_finished", "run_record", "train", "training_settings"]

Callback = Callable[[int, dict, Model], Optional[bool]]


class Cancel(Protocol):
    """What :func:`train` checks before each step (a ``threading.Event`` is one)."""

    def is_set(self) -> bool: ...


Optimisers = list[tuple[str, torch.optim.Optimizer, dict[str, Tensor]]]


class Learner(Protocol):
    """What the loop trains. ``kind`` names it in the run's spec; ``optimisers`` are
    ``(state prefix, optimiser, its parameters by name)``; ``input_mask`` is the mask the run
    trains with (saved with the run; ``None`` if there is none); ``weights(train)`` replaces model
    parameters in the forward pass (``None``: the model's own), differentiably when ``train``;
    ``record()`` adds the learner's sections to the run's record; ``state()`` is the extra state
    saved at each checkpoint (tensors for the resume file, named tensor files per checkpoint) and
    ``load_state`` restores it; ``begin`` / ``end`` bracket the training."""

    kind: str
    optimisers: Optimisers
    input_mask: Optional[Mask]

    def record(self) -> dict: ...
    def begin(self, epoch: int) -> None: ...
    def warm_up(self, epoch: int) -> None: ...
    def weights(self, train: bool) -> Optional[Mapping[str, Tensor]]: ...
    def eval_metrics(self) -> dict: ...
    def state(self) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]: ...
    def load_state(self, writer: RunWriter, epoch: int, stored: Mapping[str, Tensor]) -> None: ...
    def end(self, writer: Optional[RunWriter]) -> None: ...


def adamw(params: Sequence[Tensor], *, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """The optimiser of every learner: AdamW with torch's fused kernel (one pass over each tensor
    instead of the multi-tensor path's dozen: a quarter of the optimiser's time on a small MLP).
    The update is elementwise, so a tensor's new values do not depend on the other tensors in its
    group, their number or the thread count: runs stepped together get their solo updates."""
    return torch.optim.AdamW(list(params), lr=lr, betas=betas, weight_decay=weight_decay, fused=True)


class DenseLearner:
    """Plain training of the model's trainable parameters with AdamW, optionally through a mask
    (pruned weights are zeroed once and the forward pass uses ``W * mask``: they never act and get
    zero gradient).

    ``optimiser``: an AdamW shared by several runs trained in lockstep (the batched loop). The run's
    parameters join the group with its exact settings (or a new group), so one fused step updates
    every run; AdamW is elementwise per tensor, so each run gets exactly the update its own
    optimiser would give it."""

    kind = "dense"

    def __init__(self, model: Model, config: TrainConfig, mask: Mask | None = None,
                 optimiser: torch.optim.AdamW | None = None):
        self.model, self.config, self.input_mask = model, config, mask
        self.params = named_weights(model)  # every parameter by name, read once
        trainable = {n: p for n, p in self.params.items() if p.requires_grad}
        settings = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
        if optimiser is None:
            optimiser = adamw(trainable.values(), **settings)
            self._group = optimiser.param_groups[0]
            self._group["warmup"] = config.warmup_epochs  # read by _join_group only
        else:
            self._group = _join_group(optimiser, list(trainable.values()), {**settings, "warmup": config.warmup_epochs})
        self.optimisers: Optimisers = [("", optimiser, trainable)]
        # the mask as factors of the weights' dtype and device, made once (W * m, as masked_weights)
        self._factors = {n: m.to(self.params[n].device, self.params[n].dtype) for n, m in (mask or {}).items()}

    def record(self) -> dict:
        return mask_record(self.input_mask)

    def begin(self, epoch: int) -> None:
        if epoch == 0 and self.input_mask is not None:
            apply_mask_(self.model, self.input_mask)

    def warm_up(self, epoch: int) -> None:
        if self.config.warmup_epochs:
            self._group["lr"] = self.config.lr * min(1.0, epoch / self.config.warmup_epochs)

    def weights(self, train: bool) -> Optional[dict[str, Tensor]]:
        if self.input_mask is None:
            return None
        return {n: self.params[n] * m for n, m in self._factors.items()}

    def mask_factors(self) -> dict[str, Tensor]:
        """The mask of each masked weight as a factor of its dtype (``weights`` is ``W * m``)."""
        return dict(self._factors)

    def eval_metrics(self) -> dict:
        return {}

    def state(self) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]:
        return {}, {}

    def load_state(self, writer: RunWriter, epoch: int, stored: Mapping[str, Tensor]) -> None:
        pass

    def end(self, writer: Optional[RunWriter]) -> None:
        pass


def mask_record(mask: Mask | None) -> dict:
    """The record section of a run that trains with ``mask`` (``{}`` without one)."""
    if mask is None:
        return {}
    return {"mask": {"density": density(mask), "file": "mask.safetensors", "sha256": mask_digest(mask)}}


def run_finished(config: Schedule, epoch: int, history: Sequence[Mapping]) -> bool:
    """Whether a run restored at checkpoint ``epoch`` with this history has nothing left to train
    (its last epoch reached, or its early stop met)."""
    return epoch >= config.epochs or _stops(config, history[-1] if history else None)


def _join_group(optimiser: torch.optim.AdamW, params: list[Tensor], settings: Mapping) -> dict:
    """Add ``params`` to the optimiser's group with exactly these settings (a warm-up sets a
    group's learning rate, so the warm-up length is part of the match), or to a new group."""
    for group in optimiser.param_groups:
        if all(group.get(k) == v for k, v in settings.items()):
            group["params"].extend(params)
            return group
    optimiser.add_param_group({"params": params, **settings})
    return optimiser.param_groups[-1]


@dataclass
class TrainResult:
    model: Model
    history: list[dict]
    run_dir: Optional[Path]
    times: GrokkingTimes = field(init=False)

    def __post_init__(self) -> None:
        self.times = grokking_times(self.history)

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


def train(
    model: Model,
    task: Task,
    config: Schedule | None = None,
    out_dir: str | Path | None = None,
    mask: Mapping[str, Tensor] | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    parent: Mapping | None = None,
    parent_key: str | None = None,
    learner: Learner | None = None,
    cancel: Cancel | None = None,
) -> TrainResult:
    """Train ``model`` in place, full batch, on ``task``'s train split.

    Args:
        config: a :class:`TrainConfig` (for a custom ``learner``, its schedule).
        mask: bool tensors named like the parameters, for the default :class:`DenseLearner`.
        out_dir: run directory (config.json, metrics.jsonl, checkpoints/); ``None`` keeps
            everything in memory.
        resume: continue a killed run in ``out_dir`` from its last checkpoint (or start it, if
            ``out_dir`` holds no run yet); with the same seeds the continuation is bit-identical
            to an uninterrupted run. A masked run resumes with its own mask.
        callbacks: ``f(epoch, metrics, model)`` after each evaluation; returning True stops.
        parent / parent_key: recorded in config.json (derived runs name their source run and its
            spec key here).
        learner: what is trained (default: :class:`DenseLearner` of ``model`` with ``mask``).
        cancel: an event (``threading.Event``) checked before every step; once it is set the
            run stops with :class:`~grokinterp.errors.TrainingCancelled`, keeping its last
            checkpoint (what a sweep's worker threads are given).

    Returns a :class:`TrainResult` with the history (one dict per evaluated epoch) and times.
    """
    config = check_config(config, learner)
    fit_task(model, task)
    if resume and out_dir is None:
        raise GrokinterpError("resume=True needs the out_dir of the run to continue")
    writer = RunWriter(out_dir) if out_dir is not None else None
    with training_settings(config.threads), (writer.locked() if writer is not None else contextlib.nullcontext()):
        state = LoopState.start(model, task, config, writer, mask, resume=resume, parent=parent, parent_key=parent_key,
                                learner=learner, callbacks=callbacks)
        return _loop(state, cancel)


def check_config(config: Schedule | None, learner: Learner | None) -> Schedule:
    """The run's settings (default :class:`TrainConfig`); a custom learner takes any :class:`Schedule`."""
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig if learner is None else Schedule):
        raise GrokinterpError(f"config must be a TrainConfig, got {type(config).__name__}")
    return config


class LoopState:
    """One run inside the loop: its model, task, settings, learner, record and writer, the history
    so far and where it stands. The single-run loop (:func:`train`) drives one; the batched loop
    (:mod:`grokinterp.training.batched`) drives several in lockstep with one shared step. Both use
    the same :meth:`open`, :meth:`log`, :meth:`save` and :meth:`after_step`, so a run's files do not
    depend on which loop trained it."""

    def __init__(self, model, task, config, learner, record, writer, callbacks=()):
        self.model, self.task, self.config, self.learner = model, task, config, learner
        self.record, self.writer, self.callbacks = record, writer, tuple(callbacks)
        self.params = named_weights(model)  # the parameters by name, read once (training updates them in place)
        self.start_epoch, self.history, self.restored = 0, [], False
        self.finished = self.stopped = False

    @classmethod
    def start(cls, model, task, config, writer, mask=None, *, resume=False, parent=None, parent_key=None,
              learner=None, callbacks=(), optimiser=None) -> "LoopState":
        """Build the learner (default: :class:`DenseLearner` with ``mask``, a resumed masked run
        with its own mask; ``optimiser`` shares one AdamW among several runs), the record, and open
        the run (the writer's lock must be held)."""
        resuming = writer is not None and resume and writer.holds_run()
        if learner is None:
            if mask is None and resuming:
                mask = writer.read_mask()  # a masked run resumes with its own mask
            learner = DenseLearner(model, config, check_mask(model, mask) if mask is not None else None, optimiser)
        record = run_record(task, config_to_dict(model_config(model)), config, learner.kind, learner.record(), parent, parent_key)
        state = cls(model, task, config, learner, record, writer, callbacks)
        state.open(resuming)
        return state

    def open(self, resuming: bool) -> None:
        """Start the run, or continue the one in the folder (see :func:`_open`); a run that had
        finished is marked ``finished`` and nothing is rewritten."""
        writer = self.writer
        steps = batches_per_epoch(self.config, len(self.task.labels("train")))
        self.start_epoch, self.history, self.restored = _open(writer, self.model, self.learner, self.record, resuming, steps)
        if self.restored and run_finished(self.config, self.start_epoch, self.history):
            self.finished = True
            return
        if self.restored:
            self.history = writer.truncate_metrics(self.start_epoch)
            writer.write_config({**writer.read_config(), "train": self.record["train"], **_schedule_sections(self.record)})

    def begin(self) -> None:
        """Before the first step: the learner's set-up, and epoch 0 logged and saved for a new run."""
        self.learner.begin(self.start_epoch)
        if not self.restored:
            self.stopped = self.log(0)
            self.save(0)
        self.finished = self.stopped or self.start_epoch >= self.config.epochs

    def log(self, epoch: int, outputs: Mapping[str, Tensor] | None = None) -> bool:
        """Evaluate (``outputs``: each split's outputs, if computed already), append the metrics
        row, run the callbacks; True if the run stops here."""
        model, learner = self.model, self.learner
        with torch.no_grad():
            weights = learner.weights(train=False)
            params = {**self.params, **(weights or {})}
            forward = lambda x: answer_logits(model, x, weights)  # noqa: E731
            row = {"epoch": epoch, **evaluate(forward, self.task, params, outputs=outputs)}
        row.update(learner.eval_metrics())
        self.history.append(row)
        if self.writer is not None:
            self.writer.append_metrics(row)
        stop = _stops(self.config, row)
        for cb in self.callbacks:
            stop = bool(cb(epoch, row, model)) or stop
        return stop

    def save(self, epoch: int) -> None:
        """A checkpoint: weights, optimiser and learner state (nothing without a run folder)."""
        if self.writer is not None:
            resume_state, extra = self.learner.state()
            for prefix, opt, params in self.learner.optimisers:
                resume_state.update(optimiser_state(opt, params, prefix))
            self.writer.save_checkpoint(self.model, self.task, epoch, resume_state, extra)

    def evaluates_at(self, epoch: int) -> bool:
        """Whether the run is evaluated after the step to ``epoch``."""
        return epoch % self.config.eval_every == 0 or epoch == self.config.epochs

    def after_step(self, epoch: int, outputs: Mapping[str, Tensor] | None = None) -> None:
        """After the step to ``epoch``: evaluate (``outputs`` as for :meth:`log`) and checkpoint on
        the run's cadence; marks the run ``finished`` at its last epoch or an early stop."""
        last = epoch == self.config.epochs
        if self.evaluates_at(epoch):
            self.stopped = self.log(epoch, outputs)
        if epoch % self.config.checkpoint_every == 0 or last or self.stopped:
            self.save(epoch)
        self.finished = last or self.stopped

    def end(self) -> None:
        self.learner.end(self.writer)

    def result(self) -> TrainResult:
        return TrainResult(self.model, self.history, self.writer.path if self.writer is not None else None)


def check_cancel(cancel: Cancel | None, epoch: int) -> None:
    """Raise :class:`TrainingCancelled` if ``cancel`` is set (before the step to ``epoch``)."""
    if cancel is not None and cancel.is_set():
        raise TrainingCancelled(f"training cancelled before epoch {epoch}; the run resumes from its last checkpoint")


def _loop(state: LoopState, cancel: Cancel | None = None) -> TrainResult:
    if state.finished:
        state.end()
        return state.result()  # it had finished: nothing is rewritten
    model, task, config, learner = state.model, state.task, state.config, state.learner
    try:
        state.begin()
        params, cfg = named_weights(model), model_config(model)
        device = next(iter(params.values())).device  # a task's tensors live on the CPU
        x = ModelWeights(cfg, params).check_inputs(task.inputs("train"))  # checked once, not every step
        y = task.labels("train").to(device)
        bar = _progress_bar(config, state.start_epoch, learner.kind)
        for epoch in range(state.start_epoch + 1, config.epochs + 1):
            if state.finished:
                break
            check_cancel(cancel, epoch)
            for xb, yb in epoch_batches(config, epoch, x, y):  # one full batch unless config.batch_size
                _step(cfg, params, task, learner, epoch, xb, yb)
            state.after_step(epoch)
            if bar is not None:
                if epoch % config.eval_every == 0 or epoch == config.epochs:
                    bar.set_postfix(train=f"{state.history[-1]['train_acc']:.3f}", test=f"{state.history[-1]['test_acc']:.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        state.end()
    return state.result()


def _step(config: ModelConfig, params: Mapping[str, Tensor], task: Task, learner: Learner, epoch: int, x: Tensor,
          y: Tensor) -> None:
    """One step of every optimiser of the learner on the batch ``x`` (checked inputs, see
    :meth:`~grokinterp.models.ModelWeights.check_inputs`); ``params``: the model's parameters."""
    learner.warm_up(epoch)
    weights = learner.weights(train=True)
    logits = ModelWeights(config, {**params, **weights} if weights else params).logits(x, checked=True)
    loss = train_loss(task, logits, y)
    for _, opt, _ in learner.optimisers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for _, opt, _ in learner.optimisers:
        opt.step()


def _open(writer, model, learner, record, resuming, steps_per_epoch: int = 1) -> tuple[int, list[dict], bool]:
    """Start a run (write its record), or continue the one in the folder: restore its last
    checkpoint without writing anything, or, if it was killed before its first checkpoint, start it
    over in place. Returns the epoch to continue from, the history up to it and whether a
    checkpoint was restored."""
    if writer is None:
        return 0, [], False
    if not resuming:
        writer.create(record, learner.input_mask)
        return 0, [], False
    check_same_spec(writer.path, writer.read_config(), record)
    if not writer.has_resume_state():
        writer.restart(record)
        return 0, [], False
    epoch, history = _restore(writer, model, learner, steps_per_epoch)
    return epoch, history, True


def _stops(config: Schedule, row: Mapping | None) -> bool:
    return row is not None and config.stop_at_test_acc is not None and row["test_acc"] > config.stop_at_test_acc


def run_record(task: Task, model: Mapping, config: Schedule, kind: str, learner_record: Mapping,
               parent: Mapping | None, parent_key: str | None) -> dict:
    """The record (``config.json``) of a run: task, model config (as a dict), training settings,
    seeds, the learner's sections, parent and versions. Its spec
    (:func:`grokinterp.runs.spec_of`) is the run's identity; sweeps compute it before training."""
    record = {
        "learner": kind,
        "task": task.to_dict(),
        "model": dict(model),
        "train": config.to_dict(),
        "seeds": {"split": task.seed, "init": model["seed"]},
        "mask": None,
        "parent": dict(parent) if parent else None,
        "parent_key": parent_key,
        "epoch_convention": epoch_convention(config),
        "versions": library_versions(),
    }
    extra = dict(learner_record)
    record["seeds"].update(extra.pop("seeds", {}))
    record.update(extra)
    return record


def _schedule_sections(record: Mapping) -> dict:
    """The record sections a resume may rewrite (they hold schedule fields)."""
    return {k: record[k] for k in ("edge_popup",) if k in record}


def _restore(writer: RunWriter, model, learner, steps_per_epoch: int = 1) -> tuple[int, list[dict]]:
    """Load the last checkpoint: weights, optimiser and learner state, each checked against the run
    (names, shapes, step counts = epoch × steps per epoch, finite values); returns the epoch and the
    metrics up to it."""
    epoch, weights, stored = read_resume_state(writer.path)
    load_weights(model, weights, f"{writer.path} epoch {epoch}")
    for prefix, opt, params in learner.optimisers:
        load_optimiser_state(opt, params, stored, prefix, steps=epoch * steps_per_epoch, source=writer.paths.resume)
    learner.load_state(writer, epoch, stored)
    history = [r for r in writer.read_metrics() if r["epoch"] <= epoch]
    if not history or history[0]["epoch"] != 0:
        raise CheckpointError(f"{writer.paths.metrics}: lacks the epoch-0 row of a run checkpointed at epoch {epoch}")
    return epoch, history


@contextlib.contextmanager
def training_settings(threads: int | None) -> Iterator[None]:
    """Training's process settings, restored after: ``threads`` intra-op threads; torch's
    deterministic algorithms (same seeds and thread count give bit-identical runs; another thread
    count may split a matrix product's sums differently, so a run's numbers hold for its own), without
    their NaN fill of new memory (a tenth of a small model's step; nothing reads memory before
    writing it); denormals
    flushed — tiny weights after memorisation otherwise slow every CPU step ~2x, and as torch cannot
    read this setting back it is left on."""
    torch.set_flush_denormal(True)
    old, was_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    if threads:
        torch.set_num_threads(threads)
    # deterministic cuBLAS (CUDA) needs a fixed workspace, read when cuBLAS starts; no effect on the CPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # no NaN fill of every new tensor
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = was_filling
        if threads:
            torch.set_num_threads(old)


def _progress_bar(config: Schedule, start: int, kind: str):
    """A progress bar over the epochs (a widget in Jupyter with ``grokinterp[notebook]``, a text bar
    elsewhere, in a terminal or not) that stays with its final line; ``None`` with ``progress=False``."""
    if not config.progress:
        return None
    return epoch_bar(config.epochs, start, "train" if kind == "dense" else kind.replace("_", "-"))


def epoch_bar(total: int, initial: int, desc: str):
    """A tqdm.auto bar over epochs that stays with its final line."""
    return tqdm(total=total, initial=initial, desc=desc, unit="ep", leave=True, dynamic_ncols=True)
