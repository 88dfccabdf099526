"""Grokking tickets, sweeps, controls and the critical prune ratio."""

import json
from types import SimpleNamespace

import pytest
import torch

import grokinterp as gi
from grokinterp.checks import replace_fields
from grokinterp.models import named_weights
from grokinterp.tickets import (
    density,
    grokking_ticket,
    load_mask,
    norm_matched_dense,
    norm_matched_init,
    pruned_at_init,
    rewind,
    ticket_controls,
    ticket_epoch_sweep,
    ticket_mask,
    ticket_prune_sweep,
)
from grokinterp.tickets import search
from grokinterp.tickets.select import n_keep

from conftest import FAST_MLP, FAST_TASK, FAST_TRAIN


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """The fast grokking setting, trained to test accuracy 0.99 (about a second)."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("base") / "run"
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK), gi.TrainConfig(**FAST_TRAIN), path)
    return path


def test_rewind_restores_the_epoch0_weights_exactly(base_run):
    run = gi.load_run(base_run)
    w0 = run.weights_at(0)
    model = rewind(run)
    assert all(torch.equal(p, w0[n]) for n, p in named_weights(model).items())
    mask = ticket_mask(run, None, 0.6)
    masked = rewind(run, mask)
    for n, p in named_weights(masked).items():
        assert torch.equal(p, w0[n] * mask[n])


def test_ticket_run_directory_records_parent_and_mask(base_run, tmp_path):
    run = gi.load_run(base_run)
    t = run.checkpoint_epochs[-1]
    ticket = grokking_ticket(base_run, t, 0.6, tmp_path / "ticket", epochs=200)
    config = json.loads((tmp_path / "ticket" / "config.json").read_text())
    assert config["parent"] == {"run": str(base_run), "ticket_epoch": t, "prune_ratio": 0.6, "kind": "grokking_ticket", "scope": "global"}
    assert config["train"]["lr"] == FAST_TRAIN["lr"] and config["train"]["epochs"] == 200  # base optimiser, override applied
    assert config["task"] == run.config["task"]  # same split
    stored = load_mask(tmp_path / "ticket" / "mask.safetensors")
    expected = ticket_mask(run, t, 0.6)
    assert all(torch.equal(stored[n], expected[n]) for n in expected)
    total = sum(m.numel() for m in expected.values())
    assert sum(int(m.sum()) for m in stored.values()) == n_keep(total, 0.6)
    assert density(ticket.mask) == pytest.approx(0.4, abs=1e-4)

    # the ticket starts from the base run's init (pruned entries zeroed) ...
    ticket_run = gi.load_run(tmp_path / "ticket")
    w0, t0 = run.weights_at(0), ticket_run.weights_at(0)
    for n in w0:
        m = stored.get(n, torch.ones_like(w0[n], dtype=torch.bool))
        assert torch.equal(t0[n][m], w0[n][m]) and (t0[n][~m] == 0).all()
    # ... and the masked weights stay exactly zero (inert) at every checkpoint
    for epoch in ticket_run.checkpoint_epochs:
        w = ticket_run.weights_at(epoch)
        assert all((w[n][~stored[n]] == 0).all() for n in stored)
    assert ticket_run.checkpoint_epochs[-1] > 0 and not torch.equal(ticket_run.weights_at(200)["W_in"], t0["W_in"])


@pytest.mark.slow
def test_ticket_after_generalisation_groks_before_the_dense_run(tmp_path):
    # p = 23 with a wide embedding: the dense run needs ~1.5k epochs to generalise, its ticket a few hundred
    task = gi.ModularArithmetic(23, frac_train=0.5, seed=0)
    cfg = gi.TrainConfig(epochs=3000, lr=3e-3, weight_decay=1.0, eval_every=20, stop_at_test_acc=0.99, progress=False)
    base = gi.train(gi.HookedMLP(gi.MLPConfig(23, d_embed=500, d_hidden=48, seed=0)), task, cfg, tmp_path / "base")
    assert base.times.t_gen is not None
    run = gi.load_run(tmp_path / "base")
    t = run.checkpoint_epochs[-1]
    assert t >= base.times.t_gen  # the ticket is taken after generalisation
    ticket = grokking_ticket(run, t, 0.6)
    assert ticket.times.t_gen is not None and ticket.times.t_gen < base.times.t_gen


def test_prune_and_epoch_sweeps_return_a_table_and_reuse_finished_points(base_run, tmp_path):
    run = gi.load_run(base_run)
    table = ticket_prune_sweep(run, [0.3, 0.6], out_dir=tmp_path / "sweep", epochs=100)
    assert table["prune_ratio"].tolist() == [0.3, 0.6]
    assert table["density"].tolist() == pytest.approx([0.7, 0.4], abs=1e-4)
    assert {"t_mem", "t_gen", "tau_grok", "final_test_acc", "run_dir"} <= set(table.columns)
    assert (table["final_epoch"] == 100).all() and (table["ticket_epoch"] == run.checkpoint_epochs[-1]).all()
    assert (tmp_path / "sweep" / "prune_sweep.csv").exists()
    mtime = (tmp_path / "sweep" / f"t{run.checkpoint_epochs[-1]}_k0.6000" / "metrics.jsonl").stat().st_mtime_ns
    again = ticket_prune_sweep(run, [0.3, 0.6], out_dir=tmp_path / "sweep", epochs=100)
    assert again.equals(table)
    assert (tmp_path / "sweep" / f"t{run.checkpoint_epochs[-1]}_k0.6000" / "metrics.jsonl").stat().st_mtime_ns == mtime
    with pytest.raises(gi.GrokinterpError, match="other settings"):
        ticket_prune_sweep(run, [0.3], out_dir=tmp_path / "sweep", epochs=100, lr=1e-3)

    epochs = ticket_epoch_sweep(run, [0, 100], 0.6, epochs=60)
    assert epochs["ticket_epoch"].tolist() == [0, 100] and epochs["run_dir"].isna().all()


def test_norm_matched_init_has_the_ticket_norm(base_run):
    run = gi.load_run(base_run)
    mask = ticket_mask(run, None, 0.6)
    w0 = run.weights_at(0)
    for norm, order in (("l1", 1), ("l2", 2)):
        model, c = norm_matched_init(run, mask, norm)
        dense = sum(named_weights(model)[n].detach().double().abs().pow(order).sum() for n in mask) ** (1 / order)
        ticket = sum((w0[n].double() * mask[n]).abs().pow(order).sum() for n in mask) ** (1 / order)
        assert float(dense) == pytest.approx(float(ticket), rel=1e-6)
        assert 0 < c < 1
        assert torch.allclose(named_weights(model)["W_in"], w0["W_in"] * c)  # one global factor
    with pytest.raises(gi.GrokinterpError, match="'l1' or 'l2'"):
        norm_matched_init(run, mask, "linf")


def test_controls_and_pruning_at_init_baselines(base_run, tmp_path):
    run = gi.load_run(base_run)
    mask = ticket_mask(run, None, 0.6)
    dense = norm_matched_dense(run, mask, "l2", tmp_path / "dense", epochs=40)
    config = json.loads((tmp_path / "dense" / "config.json").read_text())
    assert config["parent"]["kind"] == "norm_matched_dense" and config["mask"] is None
    assert config["parent"]["scale"] == pytest.approx(dense.info["scale"])

    baseline = pruned_at_init(run, "snip", 0.6, tmp_path / "snip", epochs=40)
    assert sum(int(m.sum()) for m in baseline.mask.values()) == sum(int(m.sum()) for m in mask.values())
    assert json.loads((tmp_path / "snip" / "config.json").read_text())["parent"]["method"] == "snip"

    table = ticket_controls(run, None, 0.6, tmp_path / "controls", methods=("random", "synflow"), epochs=40)
    assert table["kind"].tolist() == ["base", "grokking_ticket", "norm_matched_dense", "norm_matched_dense", "pruned_at_init", "pruned_at_init"]
    assert table["method"].tolist() == ["dense", "magnitude", "norm_l1", "norm_l2", "random", "synflow"]
    assert table.loc[0, "t_gen"] == run.times.t_gen
    assert table["density"].iloc[1:].tolist() == pytest.approx([0.4, 1.0, 1.0, 0.4, 0.4], abs=1e-4)  # norm-matched runs train dense
    assert table["prune_ratio"].iloc[1:].tolist() == pytest.approx([0.6] * 5, abs=1e-4)  # the ticket each row controls for
    assert (tmp_path / "controls" / "controls.csv").exists()


def _planted_critical(monkeypatch, generalises):
    calls = []

    def fake_ticket(run, t, k, out_dir=None, **kwargs):
        calls.append((k, kwargs["weight_decay"]))
        history = [{"epoch": 0, "train_acc": 1.0, "test_acc": 1.0 if generalises(k) else 0.1}]
        result = SimpleNamespace(times=gi.grokking_times(history), history=history, run_dir=None)
        return gi.tickets.TicketRun("grokking_ticket", result, None, k, t)

    monkeypatch.setattr(search, "grokking_ticket", fake_ticket)
    return calls


def test_critical_prune_ratio_brackets_and_bisects_to_the_planted_edge(base_run, monkeypatch):
    calls = _planted_critical(monkeypatch, lambda k: k <= 0.81)
    found = search.critical_prune_ratio(base_run, step=0.01)
    assert found.prune_ratio == 0.81 and found.bracket == (0.81, 0.82)
    assert [k for k, _ in calls[:6]] == [0.6, 0.61, 0.63, 0.67, 0.75, 0.91]  # doubling strides up from 0.6
    assert len(calls) <= 10 and all(wd == 0.0 for _, wd in calls)  # weight decay 0 by default
    assert found.table["generalises"].tolist() == [k <= 0.81 for k, _ in calls]
    calls.clear()
    assert search.critical_prune_ratio(base_run, step=0.1, high=0.5).prune_ratio == 0.5
    assert [k for k, _ in calls] == [0.5]  # start clamped to high, which generalises


def test_critical_prune_ratio_when_small_ratios_fail_too(base_run, monkeypatch):
    # like the dense network without weight decay, tickets at small k fail here
    calls = _planted_critical(monkeypatch, lambda k: 0.3 <= k <= 0.81)
    assert search.critical_prune_ratio(base_run, step=0.01, start=0.6).prune_ratio == 0.81
    calls.clear()
    found = search.critical_prune_ratio(base_run, step=0.01, start=0.9)  # starts above the edge: steps down
    assert found.prune_ratio == 0.81 and [k for k, _ in calls[:4]] == [0.9, 0.89, 0.87, 0.83]
    calls.clear()
    assert search.critical_prune_ratio(base_run, step=0.05, start=0.9, low=0.85).prune_ratio is None


def test_critical_prune_ratio_on_a_real_run(base_run, tmp_path):
    # with weight decay the fast setting's tickets generalise at k = 0.6 and not at 0.9
    found = search.critical_prune_ratio(base_run, out_dir=tmp_path / "crit", step=0.3, weight_decay=1.0, epochs=1000)
    assert found.prune_ratio == 0.6 and found.bracket == (0.6, 0.9)
    assert found.table["prune_ratio"].tolist() == [0.6, 0.9] and found.table["generalises"].tolist() == [True, False]
    assert (tmp_path / "crit" / "critical.csv").exists() and (tmp_path / "crit" / "k0.9000" / "config.json").exists()


def test_ticket_input_errors(base_run):
    with pytest.raises(gi.GrokinterpError, match="no checkpoint at epoch 7"):
        grokking_ticket(base_run, 7, 0.6)
    with pytest.raises(gi.GrokinterpError, match=r"\[0, 1\)"):
        grokking_ticket(base_run, None, 1.0)
    with pytest.raises(gi.GrokinterpError, match="unknown training setting"):
        grokking_ticket(base_run, None, 0.5, learning_rate=0.1)
    with pytest.raises(gi.GrokinterpError, match="run directory path or a Run"):
        grokking_ticket(42, None, 0.5)


def test_critical_prune_ratio_accuracy_threshold(base_run, monkeypatch):
    calls = []

    def fake_ticket(run, t, k, out_dir=None, **kwargs):
        calls.append(k)
        acc = 0.97 if k <= 0.7 else 0.9 if k <= 0.8 else 0.1  # plateaus below 1, as without weight decay
        history = [{"epoch": 0, "train_acc": 1.0, "test_acc": 0.0}, {"epoch": 10, "train_acc": 1.0, "test_acc": acc}]
        result = SimpleNamespace(times=gi.grokking_times(history), history=history, run_dir=None)
        return gi.tickets.TicketRun("grokking_ticket", result, None, k, t)

    monkeypatch.setattr(search, "grokking_ticket", fake_ticket)
    assert search.critical_prune_ratio(base_run, step=0.05).prune_ratio == 0.7
    assert search.critical_prune_ratio(base_run, step=0.05, threshold=0.85).prune_ratio == 0.8
    with pytest.raises(gi.GrokinterpError, match="threshold"):
        search.critical_prune_ratio(base_run, step=0.05, threshold=1.0)


def test_a_replaced_setting_is_checked_and_an_unknown_name_is_named():
    """Overrides of every config go through ``checks.replace_fields``: an unknown name is named with
    the fields it could have been; a known name with a bad value gets the config's own check, not
    an "unknown setting" message."""
    cfg = gi.TrainConfig()
    assert replace_fields(cfg, {"lr": 0.5}, "training setting(s)") == gi.TrainConfig(lr=0.5)
    with pytest.raises(gi.GrokinterpError, match=r"unknown training setting\(s\) \['learning_rate'\]; .*'lr'"):
        replace_fields(cfg, {"learning_rate": 0.1, "lr": 0.1}, "training setting(s)")
    with pytest.raises(gi.GrokinterpError) as bad:
        replace_fields(cfg, {"lr": -1.0}, "training setting(s)")
    assert "unknown" not in str(bad.value) and "lr" in str(bad.value)
    with pytest.raises(gi.GrokinterpError, match=r"unknown TransformerConfig override\(s\) \['d_modle'\]"):
        gi.make_transformer("tickets", p=7, d_modle=3)
