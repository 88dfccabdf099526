"""A run's identity: what defines it (its spec) apart from how long and how often it is run (its
schedule).

The spec of a run is read off its record (``config.json``): the task, the model config, the learner
(its kind and every training setting that changes the numbers: optimiser, warm-up, edge-popup's
scores and prune ratio), the mask it trains with (by digest) and its parent (what it was derived
from and how: the parent's spec key, ticket epoch, prune ratio ...; the parent's folder path is not
part of it). Its key is the SHA-256 of the spec's canonical JSON (sorted keys, no spaces), cut to 16
hex digits: the name a run goes by in its children's records and in sweeps.

The schedule (:data:`SCHEDULE_FIELDS`: epochs, evaluation and checkpoint cadence, early stop,
threads, progress bar) may change on resume. Resume, sweep reuse and "this folder already holds a
run" all compare specs here, in :func:`check_same_spec`, and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import CheckpointError

__all__ = ["SCHEDULE_FIELDS", "check_key", "check_same_spec", "spec_differences", "spec_key", "spec_of"]

SCHEDULE_FIELDS = ("epochs", "eval_every", "checkpoint_every", "stop_at_test_acc", "threads", "progress")


def _without_schedule(d: Mapping | None) -> dict | None:
    return None if d is None else {k: v for k, v in d.items() if k not in SCHEDULE_FIELDS}


def spec_of(record: Mapping) -> dict:
    """The identity part of a run record (see the module docstring)."""
    parent = record.get("parent")
    mask = record.get("mask") or {}
    return {
        "task": record.get("task"),
        "model": record.get("model"),
        "learner": {
            "kind": record.get("learner") or ("edge_popup" if "edge_popup" in record else "dense"),
            "train": _without_schedule(record.get("train")),
            **({"edge_popup": _without_schedule(record["edge_popup"])} if "edge_popup" in record else {}),
        },
        "mask": mask.get("sha256"),
        "parent": None if not parent else {**{k: v for k, v in parent.items() if k != "run"}, "key": record.get("parent_key")},
    }


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def spec_key(record_or_spec: Mapping) -> str:
    """16 hex digits naming a spec (a record is reduced to its spec first)."""
    spec = record_or_spec if set(record_or_spec) == {"task", "model", "learner", "mask", "parent"} else spec_of(record_or_spec)
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def spec_differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted path, value in a, value in b)`` for every leaf where two specs differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for key in sorted(set(a) | set(b)):
            out += spec_differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [(prefix, a, b)]


def _describe(path: str, stored: Any, requested: Any) -> str:
    if path == "mask":
        return "a different mask than the run's"
    if path == "learner.kind":
        return f"the folder holds a {stored} run, not an {requested.replace('_', '-')} run" if requested == "edge_popup" else (
            f"the folder holds a {str(stored).replace('_', '-')} run, not a {requested} training run"
        )
    leaf = path.rsplit(".", 1)[-1]
    return f"{path} ({leaf}={json.dumps(requested)} requested, the run has {json.dumps(stored)})"


def check_same_spec(path: str | Path, stored: Mapping, requested: Mapping) -> None:
    """Raise :class:`CheckpointError` naming every differing field unless two records (or specs)
    define the same run."""
    a = stored if "learner" in stored and isinstance(stored["learner"], Mapping) else spec_of(stored)
    b = requested if "learner" in requested and isinstance(requested["learner"], Mapping) else spec_of(requested)
    diffs = spec_differences(a, b)
    if not diffs:
        return
    kind = [d for d in diffs if d[0] == "learner.kind"]
    shown = kind or diffs  # another kind of run: its settings differ wholesale
    raise CheckpointError(
        f"{path} holds a run with other settings: " + "; ".join(_describe(*d) for d in shown)
        + ". Pass the run's own settings, or choose another output folder"
    )


def check_key(path: str | Path, record: Mapping) -> None:
    """Refuse a record whose stored ``key`` no longer matches its spec: its ``config.json`` was
    edited after the run was made (a changed split seed would describe a split never trained on)."""
    stored = record.get("key")
    if stored is not None and stored != spec_key(record):
        raise CheckpointError(
            f"{path}: its spec no longer matches its key {stored} (the file was edited after the run was made); "
            "a run's task, model and settings cannot change: train a new run instead"
        )
