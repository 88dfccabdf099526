"""Checks of single values, shared by every config and entry point: each raises
:class:`~grokinterp.errors.GrokinterpError` naming the setting, what it got and what it expects."""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, TypeVar

from .errors import GrokinterpError

__all__ = ["MAX_SEED", "check_betas", "check_count", "check_flag", "check_rate", "check_seed", "replace_fields"]

MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds

_D = TypeVar("_D")


def check_count(name: str, value, *, minimum: int = 0) -> None:
    """A whole number (not a bool, not a float) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GrokinterpError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def check_rate(name: str, value, *, positive: bool) -> None:
    """A finite number, > 0 (``positive``) or >= 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise GrokinterpError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def check_seed(name: str, value) -> None:
    """A seed: a whole number in [0, 2^63 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise GrokinterpError(f"{name} must be a whole number in [0, {MAX_SEED}], got {value!r}")


def check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise GrokinterpError(f"{name} must be True or False, got {value!r}")


def check_betas(name: str, betas) -> tuple[float, float]:
    """AdamW's ``(beta1, beta2)``: two numbers in [0, 1)."""
    try:
        ok = len(betas) == 2 and all(not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    except TypeError:
        ok = False
    if not ok:
        raise GrokinterpError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    return tuple(float(b) for b in betas)


def replace_fields(obj: _D, changes: Mapping, what: str) -> _D:
    """A copy of the dataclass ``obj`` with the fields in ``changes`` replaced (its own checks run
    on the copy). A name that is not one of its fields is an error naming it (``what``: how the
    message calls the changes, e.g. ``"training setting(s)"``) and listing the fields."""
    known = {f.name for f in dataclasses.fields(obj) if f.init}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise GrokinterpError(f"unknown {what} {unknown}; expected fields of {type(obj).__name__}: {sorted(known)}")
    return dataclasses.replace(obj, **changes)
