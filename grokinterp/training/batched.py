"""The batched loop: several runs of one MLP shape trained in lockstep as one stacked model.

Runs that share a shape (the same task and the same tickets-MLP architecture; differing in init
seed, initial weights, mask, learning rate, weight decay, warm-up or schedule) take each full-batch
step together. Each weight of the live runs lives in one stacked tensor (:class:`_Stack`; a run's
parameter is a view of its slice, so the run's model always holds its current weights); one
batched forward (:func:`grokinterp.models.stacked_mlp_logits`) of the stacks (times the stacked
masks, where runs have masks) gives every run's logits, the losses
(:func:`grokinterp.metrics.train_loss`, one per run) are summed so that one backward
pass gives each run exactly its own gradient (d(sum)/d(loss_j) = 1), each run's slice of the
stacked gradient becomes its parameter's gradient, and one AdamW shared by all runs (each run's
parameters in the group with its settings) steps them with one fused update of each run's own
tensors (a fused step of the stacked tensor would round some entries of the second moment
differently: the kernel's vector body and its tail do not compute alike).

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
from torch.optim.adam import adam

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
    stack: Optional[_Stack] = None
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
                if stack is None or stack.states != live:  # a run joined or left: restack
                    if stack is not None:
                        stack.release()
                    stack = _Stack(live)
                _stacked_step(stack, optimiser, act, epoch, x, y)
                outputs = _stacked_eval(stack, [s for s in live if s.evaluates_at(epoch)], act, device)
                for s in live:
                    s.after_step(epoch, outputs.get(id(s)))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        if stack is not None:
            stack.release()
        for s in running:
            s.end()


class _Stack:
    """The live runs' weights, each name as one tensor stacked on a leading run axis, and the runs'
    parameters views of their slices (``p.data`` is slice ``i``). The optimiser steps the
    parameters in place, which updates the stack; the stacked forward reads the stack without a
    copy, and its gradient's slices become the parameters' gradients. ``release`` gives every
    parameter its own storage again (when a run joins or leaves, and at the end).

    ``masks``: each masked name's masks as factors of the weights' dtype, stacked (a run without a
    mask on that name gets ones: ``w * 1 = w`` exactly); the forward uses ``W * M`` as each run's
    :meth:`DenseLearner.weights` does."""

    def __init__(self, states: Sequence[LoopState]):
        self.states = list(states)
        self.params = {n: [s.learner.params[n] for s in self.states] for n in MLP_WEIGHTS}
        self.weights: dict[str, Tensor] = {}
        for n, params in self.params.items():
            stacked = torch.stack([p.detach() for p in params]).requires_grad_(any(p.requires_grad for p in params))
            for p, row in zip(params, stacked.detach().unbind(0)):
                p.data = row
            self.weights[n] = stacked
        factors = [s.learner.mask_factors() for s in self.states]
        masked = sorted({n for f in factors for n in f})
        self.masks = {n: torch.stack([f.get(n, torch.ones_like(self.params[n][i])) for i, f in enumerate(factors)])
                      for n in masked}
        self._groups: Optional[list[tuple]] = None  # the optimiser's lists, read after the first step

    def forward_weights(self) -> dict[str, Tensor]:
        return {n: w * self.masks[n] if n in self.masks else w for n, w in self.weights.items()}

    def scatter_grads(self) -> None:
        """Each run's slice of the stacked gradients as its parameters' gradients."""
        for n, w in self.weights.items():
            grad, w.grad = w.grad, None
            if grad is None:
                continue
            for p, g in zip(self.params[n], grad.unbind(0)):
                if p.requires_grad:
                    p.grad = g

    def step(self, optimiser: torch.optim.Optimizer) -> None:
        """One AdamW step of the runs' parameters (their gradients set by :meth:`scatter_grads`).
        The first step of a stack is ``optimiser.step()``, which creates any state a new run
        lacks; later ones call torch's functional ``adam`` on the parameter and state lists of
        each group, read once: the computation of ``Optimizer.step`` (the same fused kernel, the
        same arguments) without its per-call hooks, profiler ranges and per-parameter look-ups:
        sampled while two threads trained stacks, those held the interpreter's lock longer than
        any other part of a step."""
        if self._groups is None:
            optimiser.step()
            self._groups = _adamw_groups(optimiser, {id(p) for ps in self.params.values() for p in ps if p.requires_grad})
            return
        for group, params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps in self._groups:
            beta1, beta2 = group["betas"]
            adam(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                 foreach=group["foreach"], capturable=group["capturable"], differentiable=group["differentiable"],
                 fused=group["fused"], grad_scale=None, found_inf=None, has_complex=False,
                 decoupled_weight_decay=group["decoupled_weight_decay"], amsgrad=group["amsgrad"], beta1=beta1,
                 beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                 maximize=group["maximize"])

    def release(self) -> None:
        for params in self.params.values():
            for p in params:
                p.data = p.data.clone()
                p.grad = None
        self.weights, self._groups = {}, None


def _adamw_groups(optimiser: torch.optim.Optimizer, ids: set[int]) -> list[tuple]:
    """Per parameter group: the group and the lists ``adam`` takes (parameters, first and second
    moments, their maxima under amsgrad, step counts) of the parameters in ``ids``, in group order."""
    out = []
    for group in optimiser.param_groups:
        params = [p for p in group["params"] if id(p) in ids]
        if not params:
            continue
        states = [optimiser.state[p] for p in params]
        out.append((group, params, [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states],
                    [st["max_exp_avg_sq"] for st in states] if group["amsgrad"] else [],
                    [st["step"] for st in states]))
    return out


@torch.no_grad()
def _stacked_eval(stack: _Stack, due: Sequence[LoopState], act: str, device) -> dict[int, dict[str, Tensor]]:
    """Each split's logits of the runs evaluated at this epoch, from one stacked forward (the
    same numbers as each run's own forward: the stacked forward is the single one, copy by copy);
    ``{}`` for fewer than two runs (they evaluate themselves)."""
    if len(due) < 2:
        return {}
    if due == stack.states:
        stacked = stack.forward_weights()
    else:
        weights = [{**s.learner.params, **(s.learner.weights(train=False) or {})} for s in due]
        stacked = {n: torch.stack([w[n] for w in weights]) for n in MLP_WEIGHTS}
    task = due[0].task
    logits = {split: stacked_mlp_logits(act, stacked, task.inputs(split).to(device)) for split in SPLITS}
    return {id(s): {split: logits[split][i] for split in SPLITS} for i, s in enumerate(due)}


def _stacked_step(stack: _Stack, optimiser: torch.optim.Optimizer, act: str, epoch: int, x: Tensor,
                  y: Tensor) -> None:
    """One full-batch step of every live run: stacked forward, summed losses, one backward, one
    AdamW step (runs not live hold no gradient, so AdamW leaves them and their state alone)."""
    live = stack.states
    for s in live:
        s.learner.warm_up(epoch)
    losses = train_loss(live[0].task, stacked_mlp_logits(act, stack.forward_weights(), x), y)
    losses.sum().backward()
    stack.scatter_grads()  # every live parameter's gradient replaced; the others hold none
    stack.step(optimiser)
