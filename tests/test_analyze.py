import json
import re

import pytest
import torch

import grokinterp as gi
from grokinterp.report import Report, analyze
from grokinterp.cli import main

from _planted import analytic_mlp, planted_mlp
from browser import dump_dom
from conftest import FAST_MLP, FAST_TASK, FAST_TRAIN


@pytest.fixture(scope="module")
def grokked_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "base"
    cfg = gi.TrainConfig(**{**FAST_TRAIN, "checkpoint_every": 100})
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK), cfg, out_dir=out)
    return out


def test_planted_models_give_the_planted_key_frequencies():
    S = [1, 2, 4, 8, 15]
    report = analyze(analytic_mlp(31, S), gi.ModularArithmetic(31))
    assert all(report.key_frequencies[m] == S for m in ("logit", "embed", "neuron"))
    assert report.metrics["train_acc"] == 1.0 and report.metrics["test_acc"] == 1.0
    assert report.trig["fit"]["fraction_explained"] == pytest.approx(1.0, abs=1e-4)
    assert report.restricted_loss["loss"] <= report.restricted_loss["full_loss"] + 1e-6
    assert report.excluded_loss["loss"] > 3.0
    assert not report.task_assumed and report.times is None and report.attention is None
    relu = analyze(planted_mlp(29, [3, 7, 11]))  # no task given: addition over all pairs is assumed
    assert relu.task_assumed and relu.key_frequencies["logit"] == [3, 7, 11]


def test_report_round_trips_through_json(grokked_run, tmp_path):
    report = analyze(grokked_run)
    text = report.to_json(tmp_path / "r.json")
    assert json.loads(text) == report.to_dict()
    again = Report.from_json(tmp_path / "r.json")
    assert again.to_dict() == report.to_dict()
    assert again.times == report.times and report.times["t_gen"] is not None
    assert [r["epoch"] for r in report.progress] == gi.load_run(grokked_run).checkpoint_epochs
    assert set(again.figures()) == set(report.figures())
    with pytest.raises(gi.GrokinterpError, match="unknown fields"):
        Report.from_dict({**report.to_dict(), "colour": 1})


def test_run_report_matches_its_history(grokked_run):
    report = analyze(grokked_run)
    run = gi.load_run(grokked_run)
    last = run.history[-1]
    for key in ("train_acc", "test_acc"):
        assert report.metrics[key] == pytest.approx(last[key])
    assert report.key_frequencies["logit"] and set(report.key_frequencies["logit"]) <= set(report.key_frequencies["embed"])
    assert report.restricted_loss["loss"] < 10 * report.metrics["train_loss"] + 1e-3
    assert report.excluded_loss["loss"] > 1.0


def test_ticket_report_has_mask_section(grokked_run, tmp_path):
    run = gi.load_run(grokked_run)
    gi.grokking_ticket(grokked_run, run.checkpoint_epochs[-1], 0.6, tmp_path / "ticket", epochs=200)
    report = analyze(tmp_path / "ticket")
    assert report.mask["density"] == pytest.approx(0.4, abs=1e-3)
    assert report.parent["prune_ratio"] == 0.6
    assert "mask" in report.figures()
    assert {"share", "ratio", "z_score"} <= set(report.mask["alignment"])


def test_html_report_is_offline_and_draws_every_figure(tmp_path):
    model = gi.make_transformer("nanda", p=17, d_model=32, d_head=8, d_mlp=64, seed=1)
    task = gi.ModularArithmetic(17, frac_train=0.5)
    gi.train(model, task, gi.TrainConfig(epochs=20, eval_every=5, checkpoint_every=10, progress=False), out_dir=tmp_path / "t")
    report = analyze(tmp_path / "t")
    assert report.attention is not None and len(report.attention["mean"]) == 4
    path = report.to_html(tmp_path / "report.html")
    html = path.read_text()
    figures = report.figures()
    for name in ("training curves", "embedding spectrum", "neuron frequencies", "neuron activations",
                 "logit 2D spectrum", "progress measures", "attention"):
        assert name in figures and f'data-figure="{name}"' in html
    assert not re.search(r"""src=["']?(https?:)?//""", html) and "MathJax.js?config" not in html
    assert html.count("Plotly.newPlot(") == len(figures)
    # the summary's numbers are defined by formulas, drawn by the inlined MathJax
    assert "<h2>definitions</h2>" in html and "Fourier entropy" in html.split("<h2>definitions</h2>")[1]
    n_formulas = html.count('class="gi-math" data-tex="')
    assert n_formulas >= 20
    dom = dump_dom(path.as_uri())
    assert dom.count('class="main-svg"') >= 2 * len(figures)
    assert re.search(r'id="circuits-vis-[^"]+"[^>]*>\s*<div', dom), "the attention view is drawn"
    drawn = re.findall(r"<mjx-container.*?</mjx-container>", dom, re.S)
    assert len(drawn) == n_formulas and dom.count('data-typeset=""') == n_formulas
    assert not any('data-mml-node="merror"' in d for d in drawn), "a definition has a TeX error"


def test_analyze_checkpoint_and_legacy_files(grokked_run, tmp_path):
    ckpt = grokked_run / "checkpoints" / "epoch_000000.safetensors"
    report = analyze(ckpt)
    assert report.task["p"] == 23 and not report.task_assumed and report.history is None
    sd = {"embed.W_E": torch.randn(14, 16), "pos_embed.W_pos": torch.randn(3, 16),
          "blocks.0.attn.W_Q": torch.randn(2, 16, 8), "blocks.0.attn.W_K": torch.randn(2, 16, 8),
          "blocks.0.attn.W_V": torch.randn(2, 16, 8), "blocks.0.attn.W_O": torch.randn(2, 8, 16),
          "blocks.0.mlp.W_in": torch.randn(16, 32), "blocks.0.mlp.W_out": torch.randn(32, 16),
          "unembed.W_U": torch.randn(16, 13)}
    torch.save({"model": sd}, tmp_path / "legacy.pth")
    legacy = analyze(tmp_path / "legacy.pth")
    assert legacy.model["kind"] == "transformer" and legacy.model["p"] == 13 and legacy.task_assumed


def test_bad_inputs_name_the_path(tmp_path):
    with pytest.raises(gi.CheckpointError, match="nothing-here"):
        analyze(tmp_path / "nothing-here")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(gi.CheckpointError, match="bad.safetensors"):
        analyze(bad)
    with pytest.raises(gi.GrokinterpError, match="run directory, a checkpoint file or a grokinterp model"):
        analyze(42)
    (tmp_path / "x.pth").write_bytes(b"not a torch file")
    with pytest.raises(gi.CheckpointError, match="x.pth"):
        analyze(tmp_path / "x.pth")


def test_analyze_command(grokked_run, tmp_path, capsys):
    assert main(["analyze", str(grokked_run), "--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    report = Report.from_json(tmp_path / "r.json")
    assert f"key frequencies: logit {report.key_frequencies['logit']}" in out
    assert f"t_gen = {report.times['t_gen']}" in out and (tmp_path / "r.html").exists()
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
