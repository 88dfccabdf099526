"""Checking the config fields a legacy file records against what grokinterp implements."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

__all__ = ["attn_scale_ok", "check_allowed_values", "check_shape_fields"]


def check_allowed_values(fields: Mapping[str, Any], allowed: Mapping[str, tuple], what: str) -> None:
    """Every field named in ``allowed`` that the config has must hold one of the allowed values."""
    for name, values in allowed.items():
        if name in fields and fields[name] not in values:
            raise ValueError(f"{what} sets {name}={fields[name]!r}; grokinterp implements {name} in {list(values)}")


def check_shape_fields(fields: Mapping[str, Any], names: Mapping[str, Any], what: str) -> None:
    """Config fields that give a size (``names``: field -> the value the tensors imply) must agree
    with the tensors; ``None`` and -1 (TransformerLens's "derive it") are not checked."""
    for name, value in names.items():
        got = fields.get(name)
        if got is None or got == -1:
            continue
        if got != value:
            raise ValueError(f"{what} says {name}={got!r} but the weights have {value}")


def attn_scale_ok(fields: Mapping[str, Any], d_head: int) -> Optional[str]:
    """``None`` when the config's attention scale is 1/sqrt(d_head) (or unset), else the problem."""
    if fields.get("use_attn_scale", True) is not True:
        return "use_attn_scale=False (unscaled attention scores) is not implemented"
    scale = fields.get("attn_scale")
    if scale not in (None, -1, -1.0) and not math.isclose(float(scale), math.sqrt(d_head)):
        return f"attn_scale={scale!r} is not sqrt(d_head)={math.sqrt(d_head):.4g}, the only scale implemented"
    return None
