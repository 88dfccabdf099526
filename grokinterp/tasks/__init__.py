"""Tasks: the protocol the trainer and analyses use, modular arithmetic, and the tasks on vectors
(polynomial regression, sparse parity, image classification)."""

from typing import Mapping

from ..errors import GrokinterpError
from .images import IMAGE_SOURCES, MNIST_IDX_FILES, ImageClassification, read_idx, read_mnist
from .modular import OPS, PAIR_SETS, SPLIT_RULES, ModularArithmetic, is_prime
from .parity import ENCODINGS, SparseParity
from .presets import PAPER_PRESETS, Preset
from .protocol import SPLITS, Split, Task, check_split, is_task, kind_of, require_modular
from .regression import PolynomialRegression
from .vector import derived_seed

__all__ = [
    "ENCODINGS",
    "IMAGE_SOURCES",
    "MNIST_IDX_FILES",
    "OPS",
    "PAIR_SETS",
    "PAPER_PRESETS",
    "Preset",
    "SPLITS",
    "SPLIT_RULES",
    "TASKS",
    "ImageClassification",
    "ModularArithmetic",
    "PolynomialRegression",
    "SparseParity",
    "Split",
    "Task",
    "check_split",
    "derived_seed",
    "is_prime",
    "is_task",
    "read_idx",
    "read_mnist",
    "require_modular",
    "task_from_dict",
]

#: Every task class by its ``kind`` (what ``to_dict()["kind"]`` says; modular arithmetic's dict
#: has no ``kind``).
TASKS = {
    cls.kind: cls for cls in (ModularArithmetic, PolynomialRegression, SparseParity, ImageClassification)
}


def task_from_dict(d: Mapping) -> Task:
    """Rebuild a task from its ``to_dict()`` (a dict without ``kind`` is modular arithmetic)."""
    if not isinstance(d, Mapping):
        raise GrokinterpError(f"a task description must be a JSON object, got {type(d).__name__}")
    kind = kind_of(d)
    if kind not in TASKS:
        raise GrokinterpError(f"unknown task kind {kind!r}; expected one of {sorted(TASKS)}")
    return TASKS[kind].from_dict({k: v for k, v in d.items() if k != "kind"})
