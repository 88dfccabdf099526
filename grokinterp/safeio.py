"""Atomic file writes and safe reads. Nothing here unpickles: weights are safetensors.

Writes go to a temporary file in the target's folder (``.<name>.<random>.tmp``), are flushed to
disk and renamed over the target, so a reader sees the old file or the new one, never a part. The
new file gets the permissions an ordinary ``open`` would give (``0o666`` less the umask). A
safetensors file's header is written with sorted keys, so identical tensors and metadata give
identical bytes. Operating-system failures (disk full, read-only folder, a file where a folder
should be) raise :class:`~grokinterp.errors.StorageError` naming the path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from .errors import CheckpointError, StorageError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "make_dirs",
    "read_json",
    "read_safetensors",
    "remove_stale_temp_files",
    "write_safetensors",
]

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_dirs(path: str | Path) -> Path:
    """``mkdir -p``, with an operating-system failure as :class:`StorageError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"{path}: exists and is not a folder; expected a folder (or nothing) there") from None
    except OSError as e:
        raise StorageError(f"{path}: cannot create the folder ({e.strerror or e})") from None
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``: a reader
    sees the old file or the new one, never a partial one."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise StorageError(f"{path}: cannot write the file ({e.strerror or e})") from None
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed write left in ``folder`` and its sub-folders (only call
    this while holding the folder's lock); returns what was removed."""
    folder = Path(folder)
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink()
    return stale


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise StorageError(f"{path}: cannot read the file ({e.strerror or e})") from None


def write_safetensors(tensors: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Tensors (moved to the CPU) and string metadata as one safetensors file, atomically, with a
    deterministic header."""
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write_bytes(path, _sorted_header(st_save(data, metadata=dict(metadata or {}))))


def _sorted_header(raw: bytes) -> bytes:
    """The same safetensors bytes with the header's JSON keys sorted (the writer orders the metadata
    by a hash that changes between processes). Offsets are relative to the data, so they stay valid;
    the header is padded with spaces to a multiple of 8 bytes, as the format asks."""
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file; a missing, truncated or corrupt file raises
    :class:`CheckpointError` naming the path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .safetensors file") from None
    except OSError as e:
        raise StorageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {}) or {}
        if not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("metadata values must be strings")
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {e}"
        ) from None
    return tensors, meta


def clone_state(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items()}


def tensors_equal(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
