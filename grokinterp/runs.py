"""Run directories: one run = one folder, the unit every analysis reads. ::

    run/
      config.json        task, model, training config, seeds, versions, parent (ticket runs)
      metrics.jsonl      one JSON object per evaluated epoch, appended and flushed
      checkpoints/       epoch_000000.safetensors ... (epoch 0 = initial weights)
      mask.safetensors   ticket / pruned runs only
      resume.safetensors optimiser state at the last checkpoint (for resume)

Every file is written atomically (temporary file + rename); metrics lines are appended and flushed,
and a torn last line from a crash is ignored on read. Checkpoints carry the model and task config
in their safetensors metadata, so a single file is self-describing. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
from torch import Tensor

from .errors import CheckpointError, GrokinterpError
from .models import Model, ModelConfig, build_model, config_from_dict, config_to_dict, model_config, named_weights
from .safeio import atomic_write_text, read_json, read_safetensors, write_safetensors
from .tasks import ModularArithmetic

__all__ = [
    "Run",
    "RunWriter",
    "load_checkpoint",
    "load_optimiser_state",
    "load_run",
    "load_weights",
    "optimiser_state",
    "read_resume_state",
    "read_train_config",
    "save_checkpoint",
]

_CKPT = re.compile(r"^epoch_(\d+)\.safetensors$")


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:06d}.safetensors"


def save_checkpoint(
    model: Model, path: str | Path, *, task: ModularArithmetic | None = None, epoch: int | None = None
) -> Path:
    """Write the model's weights (and its config, task and epoch as metadata) to one safetensors file."""
    meta = {
        "grokinterp_kind": "checkpoint",
        "model": json.dumps(config_to_dict(model_config(model))),
    }
    if task is not None:
        meta["task"] = json.dumps(task.to_dict())
    if epoch is not None:
        meta["epoch"] = str(int(epoch))
    return write_safetensors({n: p for n, p in named_weights(model).items()}, path, meta)


def load_weights(model: Model, weights: Mapping[str, Tensor], source: str | Path = "weights") -> Model:
    """Copy ``weights`` into ``model``; a missing name or a shape mismatch raises naming ``source``."""
    params = named_weights(model)
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params))
    if missing or extra:
        raise CheckpointError(
            f"{source}: parameter names do not match the model (missing {missing}, unexpected {extra})"
        )
    with torch.no_grad():
        for name, p in params.items():
            w = weights[name]
            if tuple(w.shape) != tuple(p.shape):
                raise CheckpointError(
                    f"{source}: {name!r} has shape {tuple(w.shape)}, the model expects {tuple(p.shape)}"
                )
            p.copy_(w)
    return model


def _meta_json(meta: Mapping[str, str], key: str, path: Path):
    try:
        return json.loads(meta[key])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: checkpoint metadata lacks a valid {key!r} entry") from None


def load_checkpoint(path: str | Path, task: ModularArithmetic | None = None) -> tuple[Model, dict]:
    """Load one checkpoint file into a fresh model: grokinterp's own ``.safetensors``, or a legacy
    ``.pth`` / ``.pt`` (TransformerLens HookedTransformer state dict, or the progress-measures
    paper's layout), read with ``weights_only=True``.

    Returns ``(model, info)``; ``info`` has ``format``, ``epoch`` (if known) and ``task`` (a
    :class:`ModularArithmetic` when the file records one or ``task`` is given, else ``None``).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; use load_run for run directories")
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        from .legacy import load_legacy

        model, info = load_legacy(path)
        if task is not None:
            info["task"] = task
        return model, info
    tensors, meta = read_safetensors(path)
    if meta.get("grokinterp_kind") != "checkpoint":
        raise CheckpointError(
            f"{path}: not a grokinterp checkpoint (metadata kind {meta.get('grokinterp_kind')!r}); expected a file "
            "written by grokinterp.save_checkpoint or train()"
        )
    try:
        cfg = config_from_dict(_meta_json(meta, "model", path))
    except GrokinterpError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model = load_weights(build_model(cfg), tensors, path)
    if task is None and "task" in meta:
        task = ModularArithmetic.from_dict(_meta_json(meta, "task", path))
    epoch = int(meta["epoch"]) if "epoch" in meta else None
    return model, {"format": "grokinterp", "epoch": epoch, "task": task, "path": str(path)}


def read_train_config(config: Mapping):
    from .training import TrainConfig

    return TrainConfig.from_dict(config.get("train", {}))


class RunWriter:
    """Writes one run directory (used by the trainer)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    def create(self, record: Mapping, mask: Mapping[str, Tensor] | None) -> None:
        if (self.path / "config.json").exists() or (self.ckpt_dir.exists() and any(self.ckpt_dir.iterdir())):
            raise GrokinterpError(
                f"{self.path} already holds a run; pass resume=True (on the command line: --resume) to continue "
                "it or choose a new out_dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        if mask is not None:
            from .tickets.masks import save_mask

            save_mask(mask, self.path / "mask.safetensors")
        (self.path / "metrics.jsonl").write_text("")
        atomic_write_text(self.path / "config.json", json.dumps(record, indent=2))

    def read_config(self) -> dict:
        if not (self.path / "config.json").exists():
            raise CheckpointError(f"{self.path}: no config.json, so there is no run to resume")
        return read_json(self.path / "config.json")

    def update_config(self, record: Mapping) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(record, indent=2))

    def read_mask(self):
        from .tickets.masks import load_mask

        f = self.path / "mask.safetensors"
        return load_mask(f) if f.exists() else None

    def append_metrics(self, row: Mapping) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def truncate_metrics(self, epoch: int) -> list[dict]:
        rows = [r for r in read_metrics(self.path / "metrics.jsonl") if r["epoch"] <= epoch]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def save_checkpoint(
        self, model: Model, task: ModularArithmetic, epoch: int, resume_state: Mapping[str, Tensor]
    ) -> None:
        """The weights at ``epoch``, then ``resume.safetensors`` (written last: it names the epoch a
        resume starts from) holding ``resume_state`` (see :func:`optimiser_state`)."""
        save_checkpoint(model, self.ckpt_dir / checkpoint_name(epoch), task=task, epoch=epoch)
        write_safetensors(resume_state, self.path / "resume.safetensors", {"epoch": str(epoch)})

    def check_resumable(self, old: Mapping, record: Mapping, keys) -> None:
        """Raise unless the stored config ``old`` and the requested ``record`` agree on ``keys``."""
        for key in keys:
            if old.get(key) != record[key]:
                raise CheckpointError(
                    f"{self.path}: cannot resume, its {key} {json.dumps(old.get(key))} differs from the "
                    f"requested {json.dumps(record[key])}"
                )


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


def read_resume_state(path: Path) -> tuple[int, dict[str, Tensor], dict[str, Tensor]]:
    f = path / "resume.safetensors"
    if not f.exists():
        raise CheckpointError(f"{path}: no resume.safetensors, so the run cannot be resumed")
    opt_state, meta = read_safetensors(f)
    epoch = int(meta["epoch"])
    weights, _ = read_safetensors(path / "checkpoints" / checkpoint_name(epoch))
    return epoch, weights, opt_state


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


@dataclass
class Run:
    """A training run read back: config, history, checkpoints, mask.

    ``model_at(epoch)`` builds the model at a checkpoint epoch (default: the last one).
    """

    path: Optional[Path]
    config: dict
    task: Optional[ModularArithmetic]
    model_config: ModelConfig
    history: list[dict]
    checkpoint_epochs: list[int]
    mask: Optional[dict[str, Tensor]] = None
    _weights_at: Callable[[int], Mapping[str, Tensor]] = field(default=None, repr=False)

    @property
    def frame(self):
        """The history as a pandas DataFrame (one row per evaluated epoch)."""
        import pandas as pd

        return pd.DataFrame(self.history)

    @property
    def times(self):
        from .training import grokking_times

        return grokking_times(self.history)

    @property
    def train_config(self):
        return read_train_config(self.config)

    def weights_at(self, epoch: int | None = None) -> Mapping[str, Tensor]:
        if not self.checkpoint_epochs:
            raise CheckpointError(f"{self.path}: the run has no checkpoints")
        epoch = self.checkpoint_epochs[-1] if epoch is None else int(epoch)
        if epoch not in self.checkpoint_epochs:
            raise GrokinterpError(
                f"no checkpoint at epoch {epoch} in {self.path}; available: {self.checkpoint_epochs[:5]}"
                f"{' ...' if len(self.checkpoint_epochs) > 5 else ''} {self.checkpoint_epochs[-1:]}"
            )
        return self._weights_at(epoch)

    def model_at(self, epoch: int | None = None) -> Model:
        epoch_label = self.checkpoint_epochs[-1] if epoch is None and self.checkpoint_epochs else epoch
        return load_weights(build_model(self.model_config), self.weights_at(epoch), f"{self.path} epoch {epoch_label}")


def load_run(path: str | Path) -> Run:
    """Read a run directory (or a legacy TransformerLens ``.pth`` with its checkpoint list)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or file")
    if path.is_file():
        if path.suffix in (".pth", ".pt"):
            from .legacy import load_legacy_run

            return load_legacy_run(path)
        raise CheckpointError(f"{path}: is a file; expected a run directory (or use load_checkpoint)")
    config = read_json(path / "config.json")
    try:
        model_cfg = config_from_dict(config["model"])
        task = ModularArithmetic.from_dict(config["task"])
    except (KeyError, TypeError, GrokinterpError) as e:
        raise CheckpointError(f"{path}/config.json: missing or invalid task/model entry ({e})") from None
    ckpt_dir = path / "checkpoints"
    epochs = sorted(int(m.group(1)) for f in (os.listdir(ckpt_dir) if ckpt_dir.is_dir() else []) if (m := _CKPT.match(f)))
    mask = None
    if (path / "mask.safetensors").exists():
        from .tickets.masks import load_mask

        mask = load_mask(path / "mask.safetensors")

    def weights_at(epoch: int) -> Mapping[str, Tensor]:
        return read_safetensors(ckpt_dir / checkpoint_name(epoch))[0]

    return Run(path, config, task, model_cfg, read_metrics(path / "metrics.jsonl"), epochs, mask, weights_at)
