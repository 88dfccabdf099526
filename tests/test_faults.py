"""Fault injection: a run killed at any write point, or at a random moment, resumes to exactly the
files, weights and metrics of an uninterrupted run; two writers never share a run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import grokinterp as gi
from grokinterp import safeio
from grokinterp.runs import RunWriter
from grokinterp.tickets import edge_popup, ticket_prune_sweep

from conftest import FAST_MLP, FAST_TASK

SETTINGS = dict(epochs=40, lr=1e-2, eval_every=10, checkpoint_every=20, progress=False)


class Kill(BaseException):
    """Stands for the process dying: nothing after the point runs (no clean-up of temporary files)."""


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _train(out: Path, resume: bool = False):
    model = gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    return gi.train(model, gi.ModularArithmetic(**FAST_TASK), gi.TrainConfig(**SETTINGS), out, resume=resume)


def _edge_popup(out: Path, resume: bool = False):
    model = gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    return edge_popup(model, 0.5, out, task=gi.ModularArithmetic(**FAST_TASK), weights="joint", resume=resume,
                      epochs=40, eval_every=10, checkpoint_every=20, progress=False)


def _write_points(monkeypatch):
    """Counters for every write a run makes: a temporary file written (not yet renamed), renamed,
    a metrics row appended, a checkpoint saved."""
    calls = {"n": 0, "kill_at": None}

    def hit(point: str):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise Kill(point)

    real_replace, real_append, real_save = os.replace, RunWriter.append_metrics, RunWriter.save_checkpoint

    def replace(src, dst):
        hit("temp file written")
        real_replace(src, dst)
        hit("renamed")

    def append(self, row):
        real_append(self, row)
        hit("metrics appended")

    def save(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        hit("checkpoint saved")

    monkeypatch.setattr(safeio.os, "replace", replace)
    monkeypatch.setattr(safeio, "_discard", lambda tmp: None)  # a killed process leaves its temp file
    monkeypatch.setattr(RunWriter, "append_metrics", append)
    monkeypatch.setattr(RunWriter, "save_checkpoint", save)
    return calls


@pytest.mark.parametrize("job", [_train, _edge_popup], ids=["train", "edge_popup"])
def test_a_run_killed_at_every_write_point_resumes_to_the_uninterrupted_run(job, tmp_path, monkeypatch):
    calls = _write_points(monkeypatch)
    full = job(tmp_path / "full")
    reference = _files(tmp_path / "full")
    n_points = calls["n"]
    assert n_points > 15
    for k in range(1, n_points + 1):
        out = tmp_path / f"killed_{k}"
        calls.update(n=0, kill_at=k)
        with pytest.raises(Kill):
            job(out)
        calls.update(n=0, kill_at=None)
        resumed = job(out, resume=True)
        assert resumed.history == full.history, k
        assert _files(out) == reference, k  # stale temp files gone, no duplicate rows, same bytes
        a, b = gi.models.named_weights(resumed.model), gi.models.named_weights(full.model)
        assert all(torch.equal(a[n], b[n]) for n in a), k


def test_a_sweep_killed_at_every_write_point_reruns_to_the_same_table(tmp_path, monkeypatch):
    base = _train(tmp_path / "base")
    calls = _write_points(monkeypatch)
    kwargs = dict(epochs=20, eval_every=10, checkpoint_every=10)
    table = ticket_prune_sweep(base.run_dir, [0.3, 0.6], out_dir=tmp_path / "full", **kwargs)
    reference = _files(tmp_path / "full")
    n_points = calls["n"]
    for k in range(1, n_points + 1, 3):
        out = tmp_path / f"killed_{k}"
        calls.update(n=0, kill_at=k)
        with pytest.raises(Kill):
            ticket_prune_sweep(base.run_dir, [0.3, 0.6], out_dir=out, **kwargs)
        calls.update(n=0, kill_at=None)
        again = ticket_prune_sweep(base.run_dir, [0.3, 0.6], out_dir=out, **kwargs)
        assert again.drop(columns="run_dir").equals(table.drop(columns="run_dir")), k
        got = {name: data for name, data in _files(out).items() if not name.endswith((".csv", ".parquet"))}
        assert got == {name: data for name, data in reference.items() if not name.endswith((".csv", ".parquet"))}, k


_KILLED_RUN = textwrap.dedent(
    """
    import sys, torch
    import grokinterp as gi
    sys.path.insert(0, {tests!r})
    from conftest import FAST_MLP, FAST_TASK
    torch.set_num_threads(1)
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK),
             gi.TrainConfig(epochs=3000, lr=1e-2, eval_every=10, checkpoint_every=20, progress=False), {out!r},
             resume=True)
    """
)


def test_a_run_killed_at_random_moments_resumes_bit_identically(tmp_path):
    settings = dict(epochs=3000, lr=1e-2, eval_every=10, checkpoint_every=20, progress=False)
    full = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK), gi.TrainConfig(**settings),
                    tmp_path / "full")
    out = tmp_path / "killed"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    rng = torch.Generator().manual_seed(0)
    for delay in (3.0 + 2.0 * torch.rand(3, generator=rng)).tolist():  # past the imports, into training
        proc = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK),
                       gi.TrainConfig(**settings), out, resume=True)
    assert resumed.history == full.history
    assert _files(out) == _files(tmp_path / "full")


def test_two_writers_of_one_folder_exactly_one_wins(tmp_path):
    writer = RunWriter(tmp_path / "run")
    with writer.locked():
        with pytest.raises(gi.errors.RunLockedError, match=f"pid.*{os.getpid()}"):
            _train(tmp_path / "run")
        script = (f"import grokinterp as gi\nfrom grokinterp.runs import RunWriter\n"
                  f"try:\n    RunWriter({str(tmp_path / 'run')!r}).locked().__enter__()\n"
                  f"except gi.errors.RunLockedError as e:\n    print('LOCKED', e)\n")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert out.stdout.startswith("LOCKED") and str(os.getpid()) in out.stdout
    assert not (tmp_path / "run" / ".lock").exists()
    _train(tmp_path / "run")  # the lock went with its holder
