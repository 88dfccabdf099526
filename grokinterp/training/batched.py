"""The batched loop: several runs of one MLP shape trained in lockstep as one stacked model.

Runs that share a shape (the same task and the same tickets-MLP architecture; differing in init
seed, initial weights, mask, learning rate, weight decay, warm-up or schedule) take each full-batch
step together: their weights (masked where they have a mask) are stacked on a leading axis, one
batched forward (:func:`grokinterp.models.stacked_mlp_logits`) gives every run's logits, the losses
(:func:`grokinterp.metrics.train_loss`, one per run) are summed so that one backward
pass gives each run exactly its own gradient (d(sum)/d(loss_j) = 1), and one AdamW shared by all
runs (each run's parameters in the group with its settings) steps them with one fused update.

Each run keeps its own :class:`~grokinterp.training.loop.LoopState`: it opens, resumes, evaluates,
logs and checkpoints through the same code as a run trained alone by :func:`train`, so it writes the
same files, byte for byte, and reaches the same weights bit for bit (with one intra-op thread,
which the batched loop uses; see :func:`~grokinterp.models.stacked_mlp_logits`). A run that stops
early or reaches its last epoch drops out of the stack; a resumed run joins it at its own epoch.
Transformers are trained one at a time (:func:`train`); :func:`stack_key` says what can be stacked.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import GrokinterpError, TrainingCancelled
from ..metrics import train_loss
from ..models import MLPConfig, Model, fit_task, model_config, named_weights, stacked_mlp_logits
from ..runs import RunWriter
from ..tasks import SPLITS, Task
from .config import TrainConfig
from .loop import Cancel, LoopState, TrainResult, check_cancel, check_config, epoch_bar, training_settings

__all__ = ["MLP_WEIGHTS", "TrainJob", "stack_key", "train_batched"]

MLP_WEIGHTS = ("W_E", "W_in", "W_out", "W_U")


@dataclass
class TrainJob:
    """The arguments of one :func:`~grokinterp.training.train` call with the default learner
    (``model`` is trained in place)."""

    model: Model
    task: Task
    config: TrainConfig
    out_dir: Optional[Union[str, Path]] = None
    mask: Optional[Mapping[str, Tensor]] = None
    resume: bool = False
    parent: Optional[Mapping] = None
    parent_key: Optional[str] = None


def stack_key(job: TrainJob) -> Optional[str]:
    """What must agree for runs to train in one stack (the task, and the MLP's p, widths and
    activation), as a string; ``None`` for a run that trains alone (a transformer, a vector MLP, a
    task whose loss is not cross-entropy, a run in mini-batches)."""
    cfg = model_config(job.model)
    if not isinstance(cfg, MLPConfig) or job.task.loss != "cross_entropy" or not isinstance(job.config, TrainConfig):
        return None
    if job.config.batch_size is not None:  # the stacked step is full batch
        return None
    shape = {"p": cfg.p, "d_embed": cfg.d_embed, "d_hidden": cfg.d_hidden, "act": cfg.act}
    return json.dumps({"task": job.task.to_dict(), "mlp": shape}, sort_keys=True)


def train_batched(jobs: Sequence[TrainJob], *, return_exceptions: bool = False,
                  cancel: Optional[Cancel] = None) -> list[Union[TrainResult, Exception]]:
    """Train ``jobs`` (each as :func:`~grokinterp.training.train` would, with the default learner)
    in lockstep as one stacked model; every job must have the same :func:`stack_key`.

    Returns one :class:`TrainResult` per job, in order. ``return_exceptions``: a job that cannot
    start (its folder holds another run, a bad setting) gets its exception in its place and the
    others train; otherwise the first error is raised. A finished run in a job's folder is read
    back as :func:`train` would, without training. ``cancel``: as for :func:`train` (checked
    before every step; a cancelled stack raises, whatever ``return_exceptions`` says)."""
    jobs = list(jobs)
    if not jobs:
        return []
    keys = {stack_key(j) if isinstance(j, TrainJob) else None for j in jobs}
    if len(keys) != 1 or None in keys:
        raise GrokinterpError(
            "train_batched needs TrainJobs of tickets MLPs with one shape and one task (same p, widths, activation "
            "and split); train the others with train() or group them with stack_key()"
        )
    outcomes: list[Union[TrainResult, Exception, None]] = [None] * len(jobs)
    with training_settings(1), contextlib.ExitStack() as locks:
        states: list[tuple[int, LoopState]] = []
        optimiser = None
        for i, job in enumerate(jobs):
            try:
                states.append((i, _open_job(job, locks, optimiser)))
            except Exception as e:  # noqa: BLE001 - reported in the job's place
                if not return_exceptions:
                    raise
                outcomes[i] = e
                continue
            optimiser = optimiser or states[-1][1].learner.optimisers[0][1]
        try:
            _lockstep([s for _, s in states], cancel)
        except TrainingCancelled:
            raise
        except Exception as e:  # noqa: BLE001
            if not return_exceptions:
                raise
            for i, s in states:
                outcomes[i] = e
            return outcomes
        for i, s in states:
            outcomes[i] = s.result()
    return outcomes


def _open_job(job: TrainJob, locks: contextlib.ExitStack, optimiser) -> LoopState:
    config = check_config(job.config, None)
    fit_task(job.model, job.task)
    if job.resume and job.out_dir is None:
        raise GrokinterpError("resume=True needs the out_dir of the run to continue")
    writer = RunWriter(job.out_dir) if job.out_dir is not None else None
    if writer is not None:
        locks.enter_context(writer.locked())
    return LoopState.start(job.model, job.task, config, writer, job.mask, resume=job.resume, parent=job.parent,
                           parent_key=job.parent_key, optimiser=optimiser)


def _lockstep(states: Sequence[LoopState], cancel: Optional[Cancel] = None) -> None:
    """Step every unfinished run together until each has finished (see the module docstring)."""
    running = [s for s in states if not s.finished]
    try:
        for s in running:
            s.begin()
        if not running:
            return
        first = running[0]
        optimiser = first.learner.optimisers[0][1]
        act = model_config(first.model).act
        device = next(iter(named_weights(first.model).values())).device  # a task's tensors live on the CPU
        x, y = first.task.inputs("train").to(device), first.task.labels("train").to(device)
        epoch = min(s.start_epoch for s in running)
        last = max(s.config.epochs for s in running)
        bar = None
        if any(s.config.progress for s in running):
            bar = epoch_bar(last, epoch, f"train x{len(running)}")
        while any(not s.finished for s in running):
            epoch += 1
            live = [s for s in running if not s.finished and s.start_epoch < epoch]
            if live:
                check_cancel(cancel, epoch)
                _stacked_step(live, optimiser, act, epoch, x, y)
                outputs = _stacked_eval([s for s in live if s.evaluates_at(epoch)], act, device)
                for s in live:
                    s.after_step(epoch, outputs.get(id(s)))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        for s in running:
            s.end()


def _stacked_weights(states: Sequence[LoopState], train: bool) -> dict[str, Tensor]:
    """Each MLP weight of the runs (masked where they have a mask) stacked on a leading axis."""
    weights = [{**s.learner.params, **(s.learner.weights(train=train) or {})} for s in states]
    return {n: torch.stack([w[n] for w in weights]) for n in MLP_WEIGHTS}


@torch.no_grad()
def _stacked_eval(due: Sequence[LoopState], act: str, device) -> dict[int, dict[str, Tensor]]:
    """Each split's logits of the runs evaluated at this epoch, from one stacked forward (the
    same numbers as each run's own forward: the stacked forward is the single one, copy by copy);
    ``{}`` for fewer than two runs (they evaluate themselves)."""
    if len(due) < 2:
        return {}
    stacked = _stacked_weights(due, train=False)
    task = due[0].task
    logits = {split: stacked_mlp_logits(act, stacked, task.inputs(split).to(device)) for split in SPLITS}
    return {id(s): {split: logits[split][i] for split in SPLITS} for i, s in enumerate(due)}


def _stacked_step(live: Sequence[LoopState], optimiser: torch.optim.Optimizer, act: str, epoch: int,
                  x: Tensor, y: Tensor) -> None:
    """One full-batch step of every live run: stacked forward, summed losses, one backward, one
    AdamW step (runs not live hold no gradient, so AdamW leaves them and their state alone)."""
    for s in live:
        s.learner.warm_up(epoch)
    stacked = _stacked_weights(live, train=True)
    losses = train_loss(live[0].task, stacked_mlp_logits(act, stacked, x), y)
    optimiser.zero_grad(set_to_none=True)
    losses.sum().backward()
    optimiser.step()
