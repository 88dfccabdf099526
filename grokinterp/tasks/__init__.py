"""Tasks: the protocol the trainer and analyses use, and the modular-arithmetic data sets."""

from typing import Mapping

from ..errors import GrokinterpError
from .modular import OPS, SPLIT_RULES, ModularArithmetic, is_prime
from .protocol import SPLITS, Split, Task, check_split, is_task, kind_of, require_modular

__all__ = [
    "OPS",
    "SPLITS",
    "SPLIT_RULES",
    "TASKS",
    "ModularArithmetic",
    "Split",
    "Task",
    "check_split",
    "is_prime",
    "is_task",
    "require_modular",
    "task_from_dict",
]

TASKS = {"modular_arithmetic": ModularArithmetic}


def task_from_dict(d: Mapping) -> Task:
    """Rebuild a task from its ``to_dict()`` (a dict without ``kind`` is modular arithmetic)."""
    if not isinstance(d, Mapping):
        raise GrokinterpError(f"a task description must be a JSON object, got {type(d).__name__}")
    kind = kind_of(d)
    if kind not in TASKS:
        raise GrokinterpError(f"unknown task kind {kind!r}; expected one of {sorted(TASKS)}")
    return TASKS[kind].from_dict({k: v for k, v in d.items() if k != "kind"})
