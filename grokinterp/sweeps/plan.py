"""A run plan: everything needed to build and train one run, as data.

A :class:`RunPlan` names the task and the model config (as their dicts), the initial weights (a
checkpoint's tensors, e.g. a rewound and rescaled base run, or ``None``: the config's seeded init),
the mask, the training settings, the parent it derives from and its run folder. It pickles (to a
worker process or a Dask worker), :meth:`RunPlan.to_dict` describes it as JSON, and its
:attr:`RunPlan.key` is the spec key (:func:`grokinterp.runs.spec_key`) of the record the loop will
write, so a sweep knows each run's identity before it trains anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol

from torch import Tensor

from ..errors import GrokinterpError
from ..masks import Mask, check_mask, density, mask_digest
from ..models import Model, build_model, config_from_dict, config_to_dict, model_config, named_weights
from ..runs import load_weights, spec_key
from ..tasks import Task, task_from_dict
from ..training import Learner, Schedule, TrainConfig, TrainJob, mask_record, run_record

__all__ = ["LearnerPlan", "RunPlan", "weights_digest"]


class LearnerPlan(Protocol):
    """How a plan's run trains when it is not plain (masked) training: picklable data that builds
    the :class:`~grokinterp.training.Learner` for a model (edge-popup:
    :class:`grokinterp.tickets.EdgePopupPlan`). ``kind`` names the learner in the run's spec;
    ``to_dict`` describes the settings as JSON."""

    kind: str

    def build(self, model: Model) -> Learner: ...

    def to_dict(self) -> dict: ...


def weights_digest(weights: Mapping[str, Tensor]) -> str:
    """SHA-256 (16 hex digits) of named tensors: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class RunPlan:
    """One run of a sweep (see the module docstring).

    ``labels`` are the run's columns in the sweep table (``kind``, ``method``, ``prune_ratio`` ...);
    ``init_source`` says where ``init`` came from (for :meth:`to_dict`); ``reuse``: a folder that
    already holds this run is read back if finished and resumed if not (else it is refused)."""

    task: Mapping
    model: Mapping
    train: TrainConfig
    out_dir: Optional[str] = None
    init: Optional[Mapping[str, Tensor]] = None
    init_source: Optional[Mapping] = None
    mask: Optional[Mask] = None
    parent: Optional[Mapping] = None
    parent_key: Optional[str] = None
    labels: Mapping = field(default_factory=dict)
    reuse: bool = True
    learner: Optional[Any] = None

    def __post_init__(self) -> None:
        if self.learner is None and not isinstance(self.train, TrainConfig):
            raise GrokinterpError(f"RunPlan.train must be a TrainConfig, got {type(self.train).__name__}")
        if self.learner is not None:
            if not all(hasattr(self.learner, a) for a in ("kind", "build", "to_dict")):
                raise GrokinterpError(
                    f"RunPlan.learner must be a learner plan (kind, build, to_dict), got {type(self.learner).__name__}"
                )
            if not isinstance(self.train, Schedule):
                raise GrokinterpError(f"RunPlan.train must be a Schedule for a learner plan, got {type(self.train).__name__}")
            if self.mask is not None:
                raise GrokinterpError("a learner plan learns its own mask; give it no input mask")
        # raise naming what is wrong; the dicts as the run's record will hold them (defaults filled
        # in), so the plan's key is the key of the run it trains
        object.__setattr__(self, "task", task_from_dict(self.task).to_dict())
        object.__setattr__(self, "model", config_to_dict(config_from_dict(self.model)))
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", str(Path(self.out_dir)))

    @classmethod
    def of(cls, task: Task, model: Model | Mapping, train: TrainConfig, out_dir=None, *, init: Model | Mapping | None = None,
           **kwargs) -> "RunPlan":
        """A plan from live objects: ``model`` a model (its current weights become ``init`` unless
        ``init`` is given) or a model-config dict (fresh seeded init)."""
        if isinstance(model, Mapping):
            model_dict = dict(model)
        else:
            model_dict = config_to_dict(model_config(model))
            init = model if init is None else init
        if init is not None and not isinstance(init, Mapping):
            init = {n: p.detach().clone() for n, p in named_weights(init).items()}
        return cls(task.to_dict(), model_dict, train, out_dir, init=init, **kwargs)

    # ------------------------------------------------------------------ identity
    def record(self) -> dict:
        """The record the loop writes for this run (without its key and schedule-only changes)."""
        if self.learner is not None:
            learner = self.build_learner(self.build_model())
            return run_record(self.task_object(), self.model, self.train, learner.kind, learner.record(), self.parent,
                              self.parent_key)
        return run_record(self.task_object(), self.model, self.train, "dense", mask_record(self.mask), self.parent,
                          self.parent_key)

    @property
    def key(self) -> str:
        return spec_key(self.record())

    def to_dict(self) -> dict:
        """The plan as JSON-able data: tensors by digest."""
        return {
            "key": self.key,
            "task": dict(self.task),
            "model": dict(self.model),
            "train": self.train.to_dict(),
            "out_dir": self.out_dir,
            "init": None if self.init is None else {**dict(self.init_source or {}), "sha256": weights_digest(self.init)},
            "mask": None if self.mask is None else {"density": density(self.mask), "sha256": mask_digest(self.mask)},
            "parent": dict(self.parent) if self.parent else None,
            "parent_key": self.parent_key,
            "labels": dict(self.labels),
            **({"learner": self.learner.to_dict()} if self.learner is not None else {}),
        }

    # ------------------------------------------------------------------ building
    def task_object(self) -> Task:
        return task_from_dict(self.task)

    def build_model(self) -> Model:
        """A model of the plan's config holding its initial weights."""
        model = build_model(config_from_dict(self.model))
        if self.init is not None:
            load_weights(model, self.init, f"the initial weights of the run planned for {self.out_dir or 'memory'}")
        return model

    def build_learner(self, model: Model) -> Optional[Learner]:
        """The learner of a learner plan for ``model`` (``None``: the loop's default, dense training)."""
        return None if self.learner is None else self.learner.build(model)

    def job(self) -> TrainJob:
        """The loop's arguments for this run (a fresh model each call)."""
        model = self.build_model()
        mask = check_mask(model, self.mask) if self.mask is not None else None
        resume = self.reuse and self.out_dir is not None
        return TrainJob(model, self.task_object(), self.train, self.out_dir, mask, resume, self.parent, self.parent_key)
