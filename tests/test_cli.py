import json

import pytest

import grokinterp as gi
from grokinterp.cli import main


def test_train_command_writes_a_run_and_prints_times(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "mlp", "--p", "23", "--pairs", "all", "--frac-train", "0.5", "--d-embed", "128",
               "--lr", "1e-2", "--epochs", "3000", "--eval-every", "20", "--stop-at-test-acc", "0.99",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    run = gi.load_run(out)
    t = run.times
    assert f"t_mem = {t.t_mem}, t_gen = {t.t_gen}" in printed and str(out.resolve()) in printed
    assert t.t_gen is not None and run.history[-1]["test_acc"] > 0.99
    assert json.loads((out / "config.json").read_text())["task"]["p"] == 23


def test_train_command_transformer_preset(tmp_path, capsys):
    rc = main(["train", "--model", "transformer", "--preset", "tickets", "--p", "11", "--epochs", "3",
               "--out", str(tmp_path / "t"), "--no-progress"])
    assert rc == 0
    run = gi.load_run(tmp_path / "t")
    assert run.model_config.p == 11 and run.checkpoint_epochs == [0, 3]


def test_train_command_task_preset_with_its_settings_and_overrides(tmp_path, capsys):
    out = tmp_path / "parity"
    assert main(["train", "--task-preset", "sparse_parity", "--epochs", "4", "--eval-every", "2", "--batch-size", "64",
                 "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    preset = gi.tasks.PAPER_PRESETS["sparse_parity"]
    assert config["task"]["kind"] == "sparse_parity" and config["model"]["kind"] == "vector_mlp"
    assert config["model"]["widths"] == list(preset.model["widths"])
    assert config["train"]["epochs"] == 4 and config["train"]["batch_size"] == 64
    assert config["train"]["lr"] == preset.train["lr"] and [r["epoch"] for r in gi.load_run(out).history] == [0, 2, 4]
    capsys.readouterr()
    assert main(["train", "--task-preset", "sparse_parity", "--p", "7", "--out", str(tmp_path / "x")]) == 2
    assert "drop --p" in capsys.readouterr().err
    assert main(["train", "--task-preset", "tickets_mnist", "--out", str(tmp_path / "m")]) == 2
    assert "needs --mnist PATH" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "m").exists()


def test_cli_reports_bad_input(tmp_path, capsys):
    rc = main(["train", "--op", "mul", "--p", "12", "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2 and "prime" in capsys.readouterr().err


def test_demo_quick(tmp_path, capsys):
    from grokinterp.report import Report

    out_dir = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    base, ticket = gi.load_run(out_dir / "base"), gi.load_run(out_dir / "ticket")
    assert ticket.config["parent"]["run"] == str(out_dir / "base") and ticket.mask is not None
    for name, run in (("base", base), ("ticket", ticket)):
        t = run.times
        assert t.t_gen is not None
        assert f"{name:<7} t_mem = {t.t_mem}, t_gen = {t.t_gen}" in out
        assert Report.from_json(out_dir / f"{name}_report.json").times["t_gen"] == t.t_gen
    html = (out_dir / "report.html").read_text()
    assert 'data-figure="base: training curves"' in html and 'data-figure="ticket: mask"' in html
    assert str((out_dir / "report.html").resolve()) in out


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", "--p", "23", "--pairs", "all", "--frac-train", "0.5", "--d-embed", "128", "--lr", "1e-2",
                 "--epochs", "400", "--eval-every", "20", "--checkpoint-every", "100", "--out", str(out), "--no-progress"]) == 0
    return out


def test_ticket_and_sweep_commands(base_run, tmp_path, capsys):
    assert main(["ticket", "--run", str(base_run), "--epoch", "400", "--prune-ratio", "0.5", "--epochs", "30",
                 "--out", str(tmp_path / "ticket")]) == 0
    ticket = gi.load_run(tmp_path / "ticket")
    assert ticket.config["parent"]["ticket_epoch"] == 400 and ticket.config["parent"]["prune_ratio"] == 0.5
    assert abs(sum(int(m.sum()) for m in ticket.mask.values()) / sum(m.numel() for m in ticket.mask.values()) - 0.5) < 1e-3
    capsys.readouterr()
    assert main(["sweep", "prune-ratio", "--run", str(base_run), "--values", "0.3,0.6", "--epochs", "20",
                 "--out", str(tmp_path / "sweep")]) == 0
    table = (tmp_path / "sweep" / "prune_sweep.csv").read_text().splitlines()
    assert len(table) == 3 and "t_gen" in table[0]
    assert main(["sweep", "epoch", "--run", str(base_run), "--values", "0,abc", "--out", str(tmp_path / "e")]) == 2


def test_edge_popup_command(base_run, tmp_path, capsys):
    assert main(["edge-popup", "--run", str(base_run), "--epoch", "100", "--epochs", "20", "--out", str(tmp_path / "ep")]) == 0
    assert "test acc" in capsys.readouterr().out
    assert (tmp_path / "ep" / "mask.safetensors").exists()
    args = ["edge-popup", "--run", str(base_run), "--epoch", "100", "--epochs", "30", "--out", str(tmp_path / "ep")]
    assert main(args) == 2 and "resume=True" in capsys.readouterr().err  # the directory holds a run
    assert main([*args, "--resume"]) == 0 and "epoch 30:" in capsys.readouterr().out
    assert gi.load_run(tmp_path / "ep").checkpoint_epochs[-1] == 30
