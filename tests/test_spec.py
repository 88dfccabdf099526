"""A run's identity (grokinterp.runs.spec): what defines a run, its key, and the one comparison."""

import json
from dataclasses import fields

import pytest
import torch

import grokinterp as gi
from grokinterp.runs import SCHEDULE_FIELDS, check_same_spec, spec_differences, spec_key, spec_of
from grokinterp.tickets import EdgePopupConfig, edge_popup, magnitude_mask
from grokinterp.training import Schedule

from conftest import FAST_MLP


def _record(**changes):
    record = {
        "learner": "dense",
        "task": gi.ModularArithmetic(7).to_dict(),
        "model": {"kind": "mlp", **gi.MLPConfig(7).to_dict()},
        "train": gi.TrainConfig(epochs=100).to_dict(),
        "seeds": {"split": 0, "init": 0},
        "mask": None,
        "parent": None,
        "parent_key": None,
        "versions": {"torch": "x"},
    }
    record.update(changes)
    return record


def test_schedule_fields_are_exactly_the_fields_outside_the_identity():
    assert {f.name for f in fields(Schedule)} == set(SCHEDULE_FIELDS)
    assert set(SCHEDULE_FIELDS) < {f.name for f in fields(gi.TrainConfig)}
    assert set(SCHEDULE_FIELDS) < {f.name for f in fields(EdgePopupConfig)}


def test_the_key_ignores_the_schedule_versions_and_parent_path_and_sees_everything_else():
    base = _record()
    key = spec_key(base)
    assert len(key) == 16 and int(key, 16) >= 0
    same = [
        _record(train=gi.TrainConfig(epochs=5000, eval_every=7, checkpoint_every=9, threads=1, progress=False,
                                     stop_at_test_acc=0.9).to_dict()),
        _record(versions={"torch": "y"}),
        {k: base[k] for k in reversed(list(base))},  # key order
    ]
    assert all(spec_key(r) == key for r in same)
    different = [
        _record(train=gi.TrainConfig(epochs=100, lr=2e-3).to_dict()),
        _record(task=gi.ModularArithmetic(7, seed=1).to_dict()),
        _record(model={"kind": "mlp", **gi.MLPConfig(7, seed=1).to_dict()}),
        _record(mask={"density": 0.4, "sha256": "ab"}),
        _record(learner="edge_popup"),
        _record(parent={"run": "a", "kind": "grokking_ticket"}, parent_key="k1"),
    ]
    keys = {spec_key(r) for r in different}
    assert key not in keys and len(keys) == len(different)
    # a parent is identified by its key, not by the text of its path
    a = _record(parent={"run": "runs/ref", "kind": "grokking_ticket"}, parent_key="k1")
    b = _record(parent={"run": "/abs/runs/ref", "kind": "grokking_ticket"}, parent_key="k1")
    assert spec_key(a) == spec_key(b)


def test_differences_name_every_differing_field():
    a, b = spec_of(_record()), spec_of(_record(train=gi.TrainConfig(lr=0.5, weight_decay=0.0).to_dict()))
    assert [d[0] for d in spec_differences(a, b)] == ["learner.train.lr", "learner.train.weight_decay"]
    with pytest.raises(gi.CheckpointError, match=r"other settings.*lr=0\.5.*weight_decay=0\.0"):
        check_same_spec("somewhere", _record(), _record(train=gi.TrainConfig(lr=0.5, weight_decay=0.0).to_dict()))
    check_same_spec("somewhere", _record(), _record(train=gi.TrainConfig(epochs=9).to_dict()))  # schedule only


def test_runs_record_their_key_and_children_their_parents_key(tmp_path, fast_task):
    cfg = gi.TrainConfig(epochs=20, lr=1e-2, eval_every=10, checkpoint_every=10, progress=False)
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), fast_task, cfg, tmp_path / "base")
    base = gi.load_run(tmp_path / "base")
    assert base.config["key"] == base.key == spec_key(base.config)
    ticket = gi.grokking_ticket(base, 20, 0.5, tmp_path / "ticket")
    child = gi.load_run(tmp_path / "ticket")
    assert child.config["parent_key"] == base.key and child.config["mask"]["sha256"]
    assert child.config["parent"]["run"] == str(tmp_path / "base")
    ep = edge_popup(base, 0.5, tmp_path / "ep", epochs=10, eval_every=10, progress=False)
    record = json.loads((tmp_path / "ep" / "config.json").read_text())
    assert record["learner"] == "edge_popup" and record["parent_key"] == base.key
    assert ticket.times.t_mem is not None and ep.history


def test_a_dense_resume_into_an_edge_popup_folder_is_refused(tmp_path, fast_task):
    model = gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    edge_popup(model, 0.5, tmp_path / "ep", task=fast_task, epochs=10, eval_every=10, progress=False)
    with pytest.raises(gi.CheckpointError, match="edge-popup run, not a dense training run"):
        gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), fast_task, gi.TrainConfig(epochs=20, progress=False),
                 tmp_path / "ep", resume=True)


def test_resuming_a_finished_run_rewrites_nothing(tmp_path, fast_task):
    cfg = gi.TrainConfig(epochs=30, lr=1e-2, eval_every=10, checkpoint_every=10, progress=False)
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), fast_task, cfg, tmp_path / "r")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir() if p.is_file()}
    shorter = gi.TrainConfig(epochs=20, lr=1e-2, eval_every=10, checkpoint_every=10, progress=False)
    again = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), fast_task, shorter, tmp_path / "r", resume=True)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir() if p.is_file()}
    assert after == before and again.history[-1]["epoch"] == 30
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["epochs"] == 30


def test_a_resume_with_another_mask_names_the_mask(tmp_path, fast_task):
    model = gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    mask = magnitude_mask(model, 0.5)
    cfg = gi.TrainConfig(epochs=20, eval_every=10, checkpoint_every=10, progress=False)
    gi.train(model, fast_task, cfg, tmp_path / "m", mask)
    other = {n: ~m for n, m in mask.items()}
    with pytest.raises(gi.CheckpointError, match="different mask"):
        gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), fast_task, cfg, tmp_path / "m", other, resume=True)
    assert torch.equal(gi.load_run(tmp_path / "m").mask["W_in"], mask["W_in"])
