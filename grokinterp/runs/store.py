"""Writing and reading the pieces of a run folder (file names: :mod:`grokinterp.runs.layout`).

Every file is written atomically (temporary file + rename); metrics lines are appended and flushed,
and a torn last line from a crash is ignored on read. Checkpoints carry the model and task config in
their safetensors metadata, so a single file is self-describing. Nothing is unpickled.

``resume.safetensors`` is written after the checkpoint it belongs to and names its epoch: a resume
starts from the last epoch for which both exist. It holds the optimiser states (flattened to tensors
named ``{optimiser}/{parameter}.{key}``) and any extra state of the learner.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError, GrokinterpError
from ..masks import Mask, load_mask, save_mask
from ..models import Model, config_to_dict, model_config, named_weights
from ..safeio import atomic_write_text, read_json, read_safetensors, write_safetensors
from ..tasks import Task
from .layout import RunPaths
from .spec import spec_key

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
    opt: torch.optim.Optimizer, params: Mapping[str, Tensor], stored: Mapping[str, Tensor], prefix: str = ""
) -> None:
    """Inverse of :func:`optimiser_state`: put the stored entries back as ``opt``'s state."""
    for name, p in params.items():
        state = {
            k.rsplit(".", 1)[1]: v
            for k, v in stored.items()
            if k.startswith(prefix) and k[len(prefix):].rsplit(".", 1)[0] == name
        }
        if state:
            opt.state[p] = state


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.jsonl; a torn final line (crash mid-write) is dropped, any other bad line raises."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
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
    epoch = int(meta["epoch"])
    weights, _ = read_safetensors(paths.checkpoint(epoch))
    return epoch, weights, state


class RunWriter:
    """Writes one run folder (the training loop's only way to touch disk)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.paths = RunPaths(self.path)

    def holds_run(self) -> bool:
        return self.paths.config.exists()

    def create(self, record: Mapping, mask: Mapping[str, Tensor] | None) -> None:
        if self.holds_run() or self.paths.checkpoint_epochs():
            raise GrokinterpError(
                f"{self.path} already holds a run; pass resume=True (on the command line: --resume) to continue "
                "it or choose a new out_dir"
            )
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        if mask is not None:
            save_mask(mask, self.paths.mask)
        self.paths.metrics.write_text("")
        self.write_config(record)

    def read_config(self) -> dict:
        if not self.holds_run():
            raise CheckpointError(f"{self.path}: no {self.paths.config.name}, so there is no run to resume")
        return read_json(self.paths.config)

    def write_config(self, record: Mapping) -> None:
        """The record, with its spec key, written atomically."""
        atomic_write_text(self.paths.config, json.dumps({**record, "key": spec_key(record)}, indent=2))

    def read_mask(self) -> Mask | None:
        return load_mask(self.paths.mask) if self.paths.mask.exists() else None

    def write_mask(self, mask: Mapping[str, Tensor], info: Mapping | None = None) -> None:
        save_mask(mask, self.paths.mask, info)

    def append_metrics(self, row: Mapping) -> None:
        with open(self.paths.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

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
