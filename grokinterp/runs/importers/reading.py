"""Reading files saved elsewhere without running code from them.

``torch.load(weights_only=True, map_location="cpu")``: tensors saved on a GPU land on the CPU, and
the safe unpickler never executes code. A pickled config object (TransformerLens's demo saves its
``HookedTransformerConfig``, the progress-measures code its ``Config`` dataclass) is rebuilt as an
inert attribute bag, :class:`InertObject`: its fields are read, none of its code exists here.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from ...errors import CheckpointError

__all__ = ["InertObject", "describe", "fields_of", "read_legacy_file", "read_json_file"]


class InertObject:
    """Stand-in for a class a legacy file names: takes arguments and state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state


def read_legacy_file(path: str | Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; globals the safe loader refuses
    (pickled config classes) are mapped to inert stand-ins. Corrupt files raise
    :class:`CheckpointError` naming the path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as e:  # torch raises RuntimeError / EOFError / zip errors on corrupt files
        raise CheckpointError(f"{path}: not a readable torch file (truncated or corrupt?): {e}") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        stand_ins = [(type(name.rsplit(".", 1)[-1], (InertObject,), {}), name) for name in names]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln] or [str(e).splitlines()[0]]
        raise CheckpointError(
            f"{path}: refused by the safe loader (weights_only=True), which never runs code from a file: {lines[0]}"
        ) from None


def read_json_file(path: Path) -> dict:
    """A JSON object from a file, or a :class:`CheckpointError` naming it."""

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def fields_of(config: Any) -> dict[str, Any] | None:
    """The fields of a config saved in a file: a dict as it is, a pickled object's attributes
    (an :class:`InertObject`), ``None`` for no config."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, InertObject):
        return {k: v for k, v in vars(config).items() if k != "args"}
    raise CheckpointError(f"the file's config is a {type(config).__name__}, expected a dict or a saved config object")


def describe(obj: Any) -> str:
    """A short description of what a file holds, for error messages."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):  # safetensors (tensors, meta)
        return f"a safetensors file with metadata kind {obj[1].get('grokinterp_kind')!r}"
    if isinstance(obj, Mapping):
        keys = sorted(map(str, obj))
        shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} keys)" if len(keys) > 10 else "")
        kind = "a state dict" if obj and all(isinstance(v, Tensor) for v in obj.values()) else "a dict"
        return f"{kind} with keys [{shown}]"
    return f"a {type(obj).__name__}"
