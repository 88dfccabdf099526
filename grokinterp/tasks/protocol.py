"""What the trainer and the analyses need of a task.

A task is a finite supervised data set split into ``"train"`` and ``"test"``: per split, a tensor of
inputs and one of labels; the name of its loss (``"cross_entropy"`` or ``"mse"``, taken in float64
by :mod:`grokinterp.metrics`); what accuracy means (``accuracy_rule``: ``"argmax"``, the default
when a task does not say, or ``"squared_error"`` with the task's ``squared_error_bound``); a seed
that fixed its split; and a JSON description (``to_dict``) from which :func:`task_from_dict`
rebuilds it exactly. Tasks with a modulus (modular arithmetic) also have ``p``: the Fourier
analyses ask for one and refuse other tasks (:func:`require_modular`). Tasks on vectors also say
the input width and output width a model needs (``d_in``, ``d_out``).

New tasks plug in by satisfying :class:`Task` and registering their class in :data:`TASKS`; the
training loop never asks what kind of task it has.
"""

from __future__ import annotations

from typing import Literal, Mapping, Protocol, runtime_checkable

from jaxtyping import Shaped
from torch import Tensor

from ..errors import GrokinterpError

__all__ = ["SPLITS", "Split", "Task", "check_split", "is_task", "require_modular"]

Split = Literal["train", "test", "all"]
SPLITS = ("train", "test")


@runtime_checkable
class Task(Protocol):
    """The task protocol (structural: any object with these members is a task; ``accuracy_rule``
    is optional and defaults to ``"argmax"``)."""

    kind: str
    loss: str
    seed: int

    def inputs(self, split: Split = "train") -> Shaped[Tensor, "n ..."]: ...

    def labels(self, split: Split = "train") -> Shaped[Tensor, "n ..."]: ...

    def to_dict(self) -> dict: ...


def is_task(obj: object) -> bool:
    return isinstance(obj, Task) and not isinstance(obj, type)


def check_split(split: str) -> str:
    if split not in ("train", "test", "all"):
        raise GrokinterpError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return split


def require_modular(task: object, what: str = "this analysis"):
    """``task`` if it has a modulus ``p`` (modular arithmetic), else a clear refusal."""
    if not is_task(task):
        hint = " (pass options such as method=... by keyword)" if isinstance(task, str) else ""
        raise GrokinterpError(f"task must be a grokinterp task, got {type(task).__name__}{hint}")
    if not isinstance(getattr(task, "p", None), int):
        raise GrokinterpError(
            f"{what} needs a modular-arithmetic task (one with a modulus p); got a {getattr(task, 'kind', type(task).__name__)} task"
        )
    return task


def kind_of(d: Mapping) -> str:
    return str(d.get("kind", "modular_arithmetic"))
