"""Edge-popup: frozen weights stay bit-identical while the scores learn; straight-through gradients;
joint mode; run directory."""

import json

import pytest
import torch

import grokinterp as gi
from grokinterp.models import answer_logits, named_weights
from grokinterp.sweeps import execute
from grokinterp.tickets import EdgePopupConfig, edge_popup, edge_popup_mask, edge_popup_plan, load_mask, load_scores
from grokinterp.tickets.popup import _TopAbsStraightThrough
from grokinterp.tickets.select import n_keep
from grokinterp.metrics import cross_entropy_f64

P = 11


@pytest.fixture
def tiny():
    task = gi.ModularArithmetic(P, frac_train=0.5)
    model = gi.HookedMLP(gi.MLPConfig(P, d_embed=64, d_hidden=64, seed=0))
    return model, task


def _clone(model):
    return {n: p.detach().clone() for n, p in named_weights(model).items()}


def test_frozen_weights_stay_bit_identical_while_train_accuracy_rises(tiny, tmp_path):
    model, task = tiny
    before = _clone(model)
    result = edge_popup(model, 0.5, tmp_path / "ep", task=task, epochs=150, score_lr=3e-2, eval_every=10,
                        checkpoint_every=50, progress=False)
    accs = [row["train_acc"] for row in result.history]
    assert accs[0] < 0.2 and max(accs[-3:]) > 0.5  # chance is 1/11
    assert all(torch.equal(p, before[n]) for n, p in named_weights(result.model).items())
    assert all(torch.equal(p, before[n]) for n, p in named_weights(model).items())  # the source is untouched
    run = gi.load_run(tmp_path / "ep")
    for epoch in run.checkpoint_epochs:
        assert all(torch.equal(w, before[n]) for n, w in run.weights_at(epoch).items())
    # every evaluation used exactly the per-layer density 1 - k
    assert all(row["density"] == pytest.approx(0.5) for row in result.history)
    for name, m in result.mask.items():
        assert int(m.sum()) == n_keep(m.numel(), 0.5)
    assert sum(row["mask_changed"] for row in result.history[1:]) > 0  # the mask moved


def test_run_directory_records_parent_scores_and_final_mask(tiny, tmp_path):
    model, task = tiny
    gi.train(model, task, gi.TrainConfig(epochs=40, lr=1e-2, eval_every=20, checkpoint_every=20, progress=False), tmp_path / "base")
    result = edge_popup(tmp_path / "base", 0.6, tmp_path / "ep", epoch=20, epochs=30, eval_every=10,
                        checkpoint_every=10, progress=False)
    config = json.loads((tmp_path / "ep" / "config.json").read_text())
    assert config["parent"] == {"run": str(tmp_path / "base"), "epoch": 20, "kind": "edge_popup", "prune_ratio": 0.6, "weights": "frozen"}
    assert config["edge_popup"]["score_lr"] == EdgePopupConfig().score_lr and config["mask"]["density"] == pytest.approx(0.4, abs=1e-3)
    run = gi.load_run(tmp_path / "ep")
    assert run.checkpoint_epochs == [0, 10, 20, 30] and [r["epoch"] for r in run.history] == [0, 10, 20, 30]
    base_weights = gi.load_run(tmp_path / "base").weights_at(20)
    assert all(torch.equal(run.weights_at(0)[n], base_weights[n]) for n in base_weights)  # starts from the checkpoint
    scores = load_scores(tmp_path / "ep", 30)
    final = load_mask(tmp_path / "ep" / "mask.safetensors")
    assert all(torch.equal(final[n], edge_popup_mask(scores, 0.6)[n]) for n in final)
    assert all(torch.equal(final[n], result.mask[n]) for n in final)
    # the history reports the masked network
    masked = {n: run.weights_at(30)[n] * final[n] for n in final}
    logits = answer_logits(run.model_at(30), task.train_inputs, masked)
    assert run.history[-1]["train_acc"] == float((logits.argmax(-1) == task.train_labels).double().mean())


def test_straight_through_gradient_reaches_every_score(tiny):
    model, task = tiny
    g = torch.Generator().manual_seed(0)
    W = model.W_in.detach()
    S = (torch.rand(W.shape, generator=g) * 2 - 1).requires_grad_(True)
    k = n_keep(W.numel(), 0.7)
    m = _TopAbsStraightThrough.apply(S.abs(), k)
    assert int(m.sum()) == k and set(m.unique().tolist()) == {0.0, 1.0}
    eff = (W * m).detach().requires_grad_(True)
    loss = cross_entropy_f64(answer_logits(model, task.train_inputs, {"W_in": W * m}), task.train_labels)
    loss.backward()
    eff_loss = cross_entropy_f64(answer_logits(model, task.train_inputs, {"W_in": eff}), task.train_labels)
    (g_eff,) = torch.autograd.grad(eff_loss, eff)
    expected = g_eff * W * torch.sign(S.detach())  # dL/dS = sign(S) (dL/d(W ⊙ m)) ⊙ W, pruned entries included
    torch.testing.assert_close(S.grad, expected)
    assert (S.grad[m == 0] != 0).any()


def test_joint_mode_trains_the_weights_with_weight_decay(tiny):
    model, task = tiny
    before = _clone(model)
    result = edge_popup(model, 0.5, task=task, weights="joint", epochs=50, weight_lr=1e-2, weight_decay=1.0,
                        eval_every=25, progress=False)
    changed = [n for n, p in named_weights(result.model).items() if not torch.equal(p, before[n])]
    assert changed == ["W_E", "W_in", "W_out", "W_U"]
    assert result.history[-1]["train_acc"] > result.history[0]["train_acc"]
    assert all(p.requires_grad for p in named_weights(result.model).values())


def test_separate_optimiser_settings_and_bad_input(tiny):
    model, task = tiny
    # a vanishing score learning rate leaves the mask where it started (magnitude init = magnitude mask)
    still = edge_popup(model, 0.5, task=task, epochs=20, score_lr=1e-12, score_init="magnitude", eval_every=10, progress=False)
    assert all(row["mask_changed"] == 0 for row in still.history)
    assert all(torch.equal(still.mask[n], gi.tickets.magnitude_mask(model, 0.5, scope="layer")[n]) for n in still.mask)
    with pytest.raises(gi.GrokinterpError, match="frozen"):
        edge_popup(model, 0.5, task=task, weights="thawed")
    with pytest.raises(gi.GrokinterpError, match="needs a task"):
        edge_popup(model, 0.5)
    with pytest.raises(gi.GrokinterpError, match=r"\[0, 1\)"):
        edge_popup(model, 1.0, task=task)
    with pytest.raises(gi.GrokinterpError, match="unknown edge-popup setting"):
        edge_popup(model, 0.5, task=task, lr=0.1)


def test_edge_popup_on_the_transformer():
    task = gi.ModularArithmetic(P, frac_train=0.5)
    model = gi.make_transformer(gi.TransformerConfig(p=P, n_heads=1, d_model=16, d_head=16, d_mlp=16))
    before = _clone(model)
    result = edge_popup(model, 0.5, task=task, epochs=20, eval_every=10, progress=False)
    assert all(torch.equal(p, before[n]) for n, p in named_weights(result.model).items())
    assert "blocks.0.attn.q.weight" in result.mask and not any(n.endswith("bias") for n in result.mask)


class _Kill(Exception):
    pass


def _kill_after_metrics_of(epoch, monkeypatch):
    """Make the run die right after it has written the metrics row of ``epoch``."""
    from grokinterp.runs import RunWriter

    original = RunWriter.append_metrics

    def append(self, row):
        original(self, row)
        if row["epoch"] >= epoch:
            raise _Kill

    monkeypatch.setattr(RunWriter, "append_metrics", append)


@pytest.mark.parametrize("weights", ["frozen", "joint"])
def test_killed_edge_popup_run_resumes_bit_identically(tiny, tmp_path, monkeypatch, weights):
    model, task = tiny
    # checkpoints (every 15) fall between evaluations (every 10): the resumed run must also restore
    # the mask of the last evaluation to report the same mask_changed
    settings = dict(task=task, weights=weights, epochs=60, score_lr=3e-2, weight_lr=1e-2, eval_every=10,
                    checkpoint_every=15, progress=False)
    full = edge_popup(model, 0.5, tmp_path / "full", **settings)

    with monkeypatch.context() as m:
        _kill_after_metrics_of(50, m)
        with pytest.raises(_Kill):  # dies at epoch 50: checkpoint 45 exists, metrics run to 50
            edge_popup(model, 0.5, tmp_path / "killed", **settings)
    assert [r["epoch"] for r in gi.load_run(tmp_path / "killed").history][-1] == 50
    with pytest.raises(gi.GrokinterpError, match="resume=True"):
        edge_popup(model, 0.5, tmp_path / "killed", **settings)
    resumed = edge_popup(model, 0.5, tmp_path / "killed", resume=True, **settings)

    assert resumed.history == full.history
    assert sum(r["mask_changed"] for r in full.history[1:]) > 0
    assert all(torch.equal(resumed.scores[n], full.scores[n]) for n in full.scores)
    assert all(torch.equal(resumed.mask[n], full.mask[n]) for n in full.mask)
    a, b = named_weights(full.model), named_weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    if weights == "joint":
        assert any(not torch.equal(a[n], p) for n, p in named_weights(model).items())  # the weights did learn
    run = gi.load_run(tmp_path / "killed")
    assert run.history == full.history and run.checkpoint_epochs == [0, 15, 30, 45, 60]
    assert all(torch.equal(load_scores(tmp_path / "killed", 60)[n], full.scores[n]) for n in full.scores)
    # a finished run resumes to the same result without training further
    again = edge_popup(model, 0.5, tmp_path / "killed", resume=True, **settings)
    assert again.history == full.history and all(torch.equal(again.scores[n], full.scores[n]) for n in full.scores)


def test_edge_popup_resume_refuses_other_settings_and_continues_a_longer_schedule(tiny, tmp_path):
    model, task = tiny
    settings = dict(task=task, epochs=20, eval_every=10, checkpoint_every=10, progress=False)
    edge_popup(model, 0.5, tmp_path / "ep", **settings)
    with pytest.raises(gi.CheckpointError, match="score_lr"):
        edge_popup(model, 0.5, tmp_path / "ep", resume=True, **{**settings, "score_lr": 0.5})
    with pytest.raises(gi.CheckpointError, match="prune_ratio"):
        edge_popup(model, 0.6, tmp_path / "ep", resume=True, **settings)
    with pytest.raises(gi.GrokinterpError, match="out_dir"):
        edge_popup(model, 0.5, resume=True, **settings)
    gi.train(gi.HookedMLP(gi.MLPConfig(P, d_embed=64, d_hidden=64, seed=0)), task,
             gi.TrainConfig(epochs=5, progress=False), tmp_path / "plain")
    with pytest.raises(gi.CheckpointError, match="not an edge-popup run"):
        edge_popup(model, 0.5, tmp_path / "plain", resume=True, **settings)

    longer = edge_popup(model, 0.5, tmp_path / "ep", resume=True, **{**settings, "epochs": 40})
    straight = edge_popup(model, 0.5, **{**settings, "epochs": 40})
    assert longer.history == straight.history
    assert json.loads((tmp_path / "ep" / "config.json").read_text())["edge_popup"]["epochs"] == 40
    # resume=True on an empty out_dir starts the run
    fresh = edge_popup(model, 0.5, tmp_path / "new", resume=True, **settings)
    assert fresh.history == straight.history[:3]


def test_kaiming_uniform_scores_are_uniform_in_one_over_root_fan_in(tiny):
    model, task = tiny
    from grokinterp.tickets.popup import EdgePopupLearner

    cfg = EdgePopupConfig(score_init="kaiming_uniform", seed=3)
    learner = EdgePopupLearner(model, 0.5, ["W_in", "W_U"], cfg)
    uniform = EdgePopupLearner(model, 0.5, ["W_in", "W_U"], EdgePopupConfig(seed=3))
    for name, s in learner.scores.items():
        s = s.detach()
        # torch's own rule on the nn.Linear orientation (out, in) of the same matrix
        linear = torch.empty(s.T.shape)
        bound = 1 / torch.nn.init._calculate_fan_in_and_fan_out(linear)[0] ** 0.5
        assert bound == 1 / s.shape[0] ** 0.5  # x @ W orientation: fan-in is the first axis
        assert float(s.abs().max()) <= bound and float(s.abs().max()) > 0.9 * bound
        torch.testing.assert_close(s / bound, uniform.scores[name].detach())  # the same draws, scaled
        assert learner.record()["edge_popup"]["score_bounds"][name] == pytest.approx(bound)
    assert "score_bounds" not in uniform.record()["edge_popup"]
    with pytest.raises(gi.GrokinterpError, match="score_init"):
        EdgePopupConfig(score_init="normal")


def test_edge_popup_plan_is_the_edge_popup_run(tiny, tmp_path):
    """A plan of the run trains, through the sweeps engine, the very run edge_popup makes."""
    model, task = tiny
    gi.train(model, task, gi.TrainConfig(epochs=40, checkpoint_every=20, progress=False), tmp_path / "base")
    settings = dict(epoch=20, epochs=30, score_init="kaiming_uniform", score_weight_decay=1.0, seed=3, progress=False)
    direct = edge_popup(tmp_path / "base", 0.6, tmp_path / "direct", **settings)
    plan = edge_popup_plan(tmp_path / "base", 0.6, tmp_path / "planned", **settings)
    outcome = execute([plan], "inline", progress=False)[0]
    assert outcome.error is None and outcome.history == direct.history
    assert gi.load_run(tmp_path / "planned").key == gi.load_run(tmp_path / "direct").key == plan.key
    assert torch.equal(load_mask(tmp_path / "planned" / "mask.safetensors")["W_in"], direct.mask["W_in"])
    again = execute([plan], "inline", progress=False)[0]
    assert again.reused and again.history == direct.history
    with pytest.raises(gi.GrokinterpError, match="learner plan"):
        gi.RunPlan(task.to_dict(), plan.model, plan.train, learner=object())
