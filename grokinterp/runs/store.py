"""Writing and reading the pieces of a run folder (file names: :mod:`grokinterp.runs.layout`).

Every file is written atomically (temporary file + rename); metrics lines are appended and flushed,
and a torn last line from a crash is ignored on read. Checkpoints carry the model and task config in
their safetensors metadata, so a single file is self-describing. Nothing is unpickled.

``resume.safetensors`` is written after the checkpoint it belongs to and names its epoch: a resume
starts from the last epoch for which both exist. It holds the optimiser states (flattened to tensors
named ``{optimiser}/{parameter}.{key}``) and any extra state of the learner.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import shutil
import socket
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, GrokinterpError, RunLockedError, StorageError
from ..masks import Mask, load_mask, save_mask
from ..models import Model, config_to_dict, model_config, named_weights
from ..safeio import atomic_write_text, make_dirs, read_json, read_safetensors, remove_stale_temp_files, write_safetensors
from ..tasks import Task
from .layout import RunPaths
from .spec import check_key, spec_key

__all__ = [
    "RunWriter",
    "library_versions",
    "load_optimiser_state",
    "load_weights",
    "optimiser_state",
    "read_metrics",
    "read_resume_state",
    "save_checkpoint",
]


def library_versions() -> dict[str, str]:
    """Versions recorded in a run's config.json."""
    out = {"python": platform.python_version()}
    for pkg in ("grokinterp", "torch", "transformer_lens"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def save_checkpoint(model: Model, path: str | Path, *, task: Task | None = None, epoch: int | None = None) -> Path:
    """Write the model's weights (and its config, task and epoch as metadata) to one safetensors file."""
    meta = {"grokinterp_kind": "checkpoint", "model": json.dumps(config_to_dict(model_config(model)))}
    if task is not None:
        meta["task"] = json.dumps(task.to_dict())
    if epoch is not None:
        meta["epoch"] = str(int(epoch))
    return write_safetensors(dict(named_weights(model)), path, meta)


def load_weights(model: Model, weights: Mapping[str, Tensor], source: str | Path = "weights") -> Model:
    """Copy ``weights`` into ``model``; a missing name or a shape mismatch raises naming ``source``."""
    params = named_weights(model)
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params))
    if missing or extra:
        raise CheckpointError(f"{source}: parameter names do not match the model (missing {missing}, unexpected {extra})")
    with torch.no_grad():
        for name, p in params.items():
            w = weights[name]
            if tuple(w.shape) != tuple(p.shape):
                raise CheckpointError(f"{source}: {name!r} has shape {tuple(w.shape)}, the model expects {tuple(p.shape)}")
            p.copy_(w)
    return model


def optimiser_state(opt: torch.optim.Optimizer, params: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """The optimiser's per-parameter state as flat tensors named ``{prefix}{param}.{key}``."""
    state: dict[str, Tensor] = {}
    for name, p in params.items():
        for key, value in opt.state.get(p, {}).items():
            state[f"{prefix}{name}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
    return state


def load_optimiser_state(
    opt: torch.optim.Optimizer, params: Mapping[str, Tensor], stored: Mapping[str, Tensor], prefix: str = "",
    *, steps: int | None = None, source: str | Path = "resume state",
) -> None:
    """Inverse of :func:`optimiser_state`: put the stored entries back as ``opt``'s state.

    With ``steps`` (the number of optimiser steps the state should hold), the state is checked
    first: after ``steps > 0`` steps every parameter needs the same complete set of entries, the
    per-weight ones of its shape, all finite, and a step count of ``steps``; after 0 steps there is
    none. A state that does not fit raises :class:`CheckpointError` naming the entry."""
    states = {}
    for name, p in params.items():
        states[name] = {
            k.rsplit(".", 1)[1]: v
            for k, v in stored.items()
            if k.startswith(prefix) and k[len(prefix):].rsplit(".", 1)[0] == name
        }
    if steps is not None:
        _check_optimiser_state(states, params, steps, f"{source} ({prefix or 'optimiser'})")
    for name, p in params.items():
        if states[name]:
            opt.state[p] = states[name]


def _check_optimiser_state(states: Mapping[str, Mapping[str, Tensor]], params: Mapping[str, Tensor], steps: int, where: str) -> None:
    keys = {frozenset(s) for s in states.values()}
    if steps == 0:
        if any(keys - {frozenset()}):
            raise CheckpointError(f"{where}: holds optimiser state at epoch 0, before any step")
        return
    if len(keys) != 1 or not next(iter(keys)):
        missing = sorted(n for n, s in states.items() if not s)
        raise CheckpointError(f"{where}: the optimiser state is incomplete (no state for {missing or 'some entries'})")
    for name, state in states.items():
        for key, value in state.items():
            if value.numel() > 1 and tuple(value.shape) != tuple(params[name].shape):
                raise CheckpointError(
                    f"{where}: {name}.{key} has shape {tuple(value.shape)}, the parameter has {tuple(params[name].shape)}"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{where}: {name}.{key} holds non-finite values")
        if "step" in state and not math.isclose(float(state["step"]), steps):
            raise CheckpointError(f"{where}: {name}.step is {float(state['step']):g}, expected {steps} (the checkpoint's epoch)")


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.jsonl; a torn final line (crash mid-write) is dropped, any other bad line raises."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text ({e}); expected one JSON object per line") from None
    except OSError as e:
        raise StorageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise CheckpointError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def read_resume_state(root: Path) -> tuple[int, dict[str, Tensor], dict[str, Tensor]]:
    """``(epoch, weights at that epoch, stored optimiser / learner state)`` of a run folder."""
    paths = RunPaths(Path(root))
    if not paths.resume.exists():
        raise CheckpointError(f"{root}: no {paths.resume.name}, so the run cannot be resumed")
    state, meta = read_safetensors(paths.resume)
    try:
        epoch = int(meta["epoch"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{paths.resume}: its metadata lacks an integer 'epoch'") from None
    weights, _ = read_safetensors(paths.checkpoint(epoch))
    return epoch, weights, state


class RunWriter:
    """Writes one run folder: the training loop's only way to touch disk.

    A writer holds the folder's lock (:meth:`locked`) while it writes: an exclusive ``flock`` on the
    folder itself, which the operating system releases when the process ends, however it ends; the
    ``.lock`` file beside the run says who holds it. A second writer gets :class:`RunLockedError`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.paths = RunPaths(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunWriter"]:
        """Hold the run folder's lock (creating the folder), clean the temporary files a killed
        write left, and release the lock at the end."""
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"{self.path}: is a file; expected a run folder (or nothing) there")
        make_dirs(self.path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.paths.lock.read_text(encoding="utf-8", errors="replace").strip() if self.paths.lock.exists() else "another process"
            raise RunLockedError(
                f"{self.path} is being written by {holder}; wait for that run to end or stop it (its lock goes with it), "
                "or choose another folder"
            ) from None
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            atomic_write_text(self.paths.lock, json.dumps(info))
            remove_stale_temp_files(self.path)
            yield self
        finally:
            with contextlib.suppress(OSError):
                self.paths.lock.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holds_run(self) -> bool:
        return self.paths.config.exists()

    def has_resume_state(self) -> bool:
        return self.paths.resume.exists()

    def create(self, record: Mapping, mask: Mapping[str, Tensor] | None) -> None:
        if self.holds_run() or self.paths.checkpoint_epochs():
            raise GrokinterpError(
                f"{self.path} already holds a run; pass resume=True (on the command line: --resume) to continue "
                "it or choose a new out_dir"
            )
        make_dirs(self.paths.checkpoints)
        if mask is not None:
            save_mask(mask, self.paths.mask)
        atomic_write_text(self.paths.metrics, "")
        self.write_config(record)

    def restart(self, record: Mapping) -> None:
        """A run killed before its first resumable state: drop what it wrote and record it anew
        (its spec was checked; the mask file, if any, is the same mask)."""
        for epoch in self.paths.checkpoint_epochs():
            self.paths.checkpoint(epoch).unlink()
        for folder in (p for p in self.path.iterdir() if p.is_dir() and p != self.paths.checkpoints):
            shutil.rmtree(folder)
        make_dirs(self.paths.checkpoints)
        atomic_write_text(self.paths.metrics, "")
        self.write_config(record)

    def read_config(self) -> dict:
        """The stored record, checked against its own key (an edited config.json is refused)."""
        if not self.holds_run():
            raise CheckpointError(f"{self.path}: no {self.paths.config.name}, so there is no run to resume")
        record = read_json(self.paths.config)
        check_key(self.paths.config, record)
        return record

    def write_config(self, record: Mapping) -> None:
        """The record, with its spec key, written atomically."""
        atomic_write_text(self.paths.config, json.dumps({**record, "key": spec_key(record)}, indent=2))

    def read_mask(self) -> Mask | None:
        return load_mask(self.paths.mask) if self.paths.mask.exists() else None

    def write_mask(self, mask: Mapping[str, Tensor], info: Mapping | None = None) -> None:
        save_mask(mask, self.paths.mask, info)

    def append_metrics(self, row: Mapping) -> None:
        try:
            with open(self.paths.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
        except OSError as e:
            raise StorageError(f"{self.paths.metrics}: cannot append the metrics row ({e.strerror or e})") from None

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.paths.metrics)

    def truncate_metrics(self, epoch: int) -> list[dict]:
        rows = [r for r in read_metrics(self.paths.metrics) if r["epoch"] <= epoch]
        atomic_write_text(self.paths.metrics, "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def save_checkpoint(
        self, model: Model, task: Task, epoch: int, resume_state: Mapping[str, Tensor],
        extra: Mapping[str, Mapping[str, Tensor]] = {},
    ) -> None:
        """The weights at ``epoch`` and each learner state in ``extra`` (``{"scores": tensors}``), then
        ``resume.safetensors`` (written last: it names the epoch a resume starts from)."""
        save_checkpoint(model, self.paths.checkpoint(epoch), task=task, epoch=epoch)
        for name, tensors in extra.items():
            write_safetensors(tensors, self.paths.state(name, epoch), {"grokinterp_kind": name, "epoch": str(epoch)})
        write_safetensors(resume_state, self.paths.resume, {"epoch": str(epoch)})

    def read_state(self, name: str, epoch: int) -> dict[str, Tensor]:
        return read_safetensors(self.paths.state(name, epoch))[0]
