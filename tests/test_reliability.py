"""Regression tests of what grokinterp promises about runs and inputs (docs: reliability page)."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grokinterp as gi
from grokinterp import cli, safeio
from grokinterp.cli import main
from grokinterp.errors import StorageError
from grokinterp.masks import save_mask
from grokinterp.models import named_weights
from grokinterp.runs import RunWriter, read_resume_state
from grokinterp.safeio import write_safetensors
from grokinterp.tickets import EdgePopupConfig, magnitude_mask, ticket_prune_sweep

from conftest import FAST_MLP

CFG = dict(epochs=40, lr=1e-2, eval_every=10, checkpoint_every=20, progress=False)


def _run(out, task, resume=False, mask=None, **changes):
    return gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, gi.TrainConfig(**{**CFG, **changes}), out, mask,
                    resume=resume)


class Kill(BaseException):
    pass


# ----------------------------------------------------------------------------- 1. output folders
def test_demo_refuses_a_folder_that_is_not_its_own_and_overwrite_replaces_it(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    assert "holds other files" in capsys.readouterr().err and (tmp_path / "mine.txt").read_text() == "keep me"
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["demo", "--quick", "--out", ".", "--overwrite"]) == 2  # never empties the working folder
    finally:
        os.chdir(cwd)
    assert "refuses to empty" in capsys.readouterr().err and (tmp_path / "mine.txt").exists()
    (tmp_path / "f").write_text("")
    assert main(["train", "--p", "5", "--epochs", "1", "--out", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3, 4. killed early
def test_a_run_killed_before_any_checkpoint_restarts_and_one_killed_after_epoch_0_adds_no_row(tmp_path, fast_task, monkeypatch):
    full = _run(tmp_path / "full", fast_task)
    real = RunWriter.save_checkpoint

    def die_before(self, *a, **k):
        raise Kill

    monkeypatch.setattr(RunWriter, "save_checkpoint", die_before)
    with pytest.raises(Kill):
        _run(tmp_path / "early", fast_task)
    assert (tmp_path / "early" / "config.json").exists() and not (tmp_path / "early" / "resume.safetensors").exists()

    def die_after_first(self, *a, **k):
        real(self, *a, **k)
        raise Kill

    with pytest.raises(Kill):
        _run(tmp_path / "epoch0", fast_task)
    monkeypatch.setattr(RunWriter, "save_checkpoint", die_after_first)
    with pytest.raises(Kill):
        _run(tmp_path / "early", fast_task, resume=True)  # restarts in place: dies after its epoch-0 checkpoint
    monkeypatch.setattr(RunWriter, "save_checkpoint", real)
    for name in ("early", "epoch0"):
        for _ in range(2):
            with pytest.raises(Kill):
                monkeypatch.setattr(RunWriter, "save_checkpoint", die_before)
                _run(tmp_path / name, fast_task, resume=True)
            monkeypatch.setattr(RunWriter, "save_checkpoint", real)
        resumed = _run(tmp_path / name, fast_task, resume=True)
        epochs = [r["epoch"] for r in resumed.history]
        assert epochs == sorted(set(epochs)) and resumed.history == full.history, name


# ----------------------------------------------------------------------------- 5, 13. the CLI's numbers
@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--p", "0", "--out", "X"], "--p: '0' is not a modulus"),
        (["train", "--frac-train", "0", "--out", "X"], "--frac-train: '0' is not a fraction"),
        (["train", "--lr", "inf", "--out", "X"], "--lr: 'inf' is not a finite number > 0"),
        (["train", "--weight-decay", "nan", "--out", "X"], "--weight-decay: 'nan'"),
        (["train", "--warmup", "2.5", "--out", "X"], "--warmup: '2.5' is not a whole number"),
        (["train", "--seed", str(2**63), "--out", "X"], "--seed"),
        (["train", "--threads", "0", "--out", "X"], "--threads"),
        (["demo", "--prune-ratio", "1.5"], "--prune-ratio: '1.5' is not a prune ratio"),
        (["sweep", "epoch", "--run", "R", "--values", "100.7", "--out", "X"], "--values: '100.7' is not a whole number"),
        (["sweep", "epoch", "--run", "R", "--values", "", "--out", "X"], "--values: '' is not a comma-separated list"),
        (["edge-popup", "--run", "R", "--out", "X", "--score-lr", "-1"], "--score-lr"),
    ],
)
def test_bad_numbers_get_one_line_and_status_2_before_anything_runs(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's default folder is runs/demo under the working folder
    argv = [str(tmp_path / a) if a in ("X", "R") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was written


def test_zero_is_a_value_not_a_missing_option(tmp_path):
    out = tmp_path / "zero"
    assert main(["train", "--p", "5", "--pairs", "all", "--frac-train", "0.5", "--epochs", "0", "--out", str(out),
                 "--no-progress", "--d-embed", "8", "--d-hidden", "4"]) == 0
    run = gi.load_run(out)
    assert run.checkpoint_epochs == [0] and [r["epoch"] for r in run.history] == [0]
    assert run.config["train"]["epochs"] == 0 and run.config["task"]["frac_train"] == 0.5


def test_ctrl_c_stops_with_one_line_that_says_how_to_continue(tmp_path, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    assert main(["train", "--p", "5", "--out", str(tmp_path / "r"), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err


# ----------------------------------------------------------------------------- 6, 14. bytes and threads
def test_same_seeds_give_the_same_bytes_at_two_threads(tmp_path):
    task = gi.ModularArithmetic(13, frac_train=0.5)
    for name in ("a", "b"):
        model = gi.make_transformer(gi.TransformerConfig(p=13, n_heads=2, d_model=16, d_head=8, d_mlp=32))
        gi.train(model, task, gi.TrainConfig(epochs=30, lr=1e-2, eval_every=10, checkpoint_every=10, threads=2,
                                             progress=False), tmp_path / name)
    files = lambda d: {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_written_files_honour_the_umask_and_failures_name_the_path(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        path = safeio.atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o640

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safeio.os, "replace", full_disk)
    with pytest.raises(StorageError, match=r"y\.txt: cannot write the file \(No space left on device\)"):
        safeio.atomic_write_text(tmp_path / "y.txt", "y")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- 7. stored state is checked
def test_resume_refuses_a_tampered_mask_or_optimiser_state(tmp_path, fast_task):
    model = gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    mask = magnitude_mask(model, 0.5)
    gi.train(model, fast_task, gi.TrainConfig(**{**CFG, "epochs": 20}), tmp_path / "m", mask)
    good = (tmp_path / "m" / "mask.safetensors").read_bytes()
    W_in = mask["W_in"]
    tampered = {
        "missing": {k: v for k, v in mask.items() if k != "W_in"},
        "broadcastable": {**mask, "W_in": W_in[:1]},
    }
    for what, bad in tampered.items():
        save_mask(bad, tmp_path / "m" / "mask.safetensors")
        with pytest.raises(gi.GrokinterpError, match="mask|shape"):
            _run(tmp_path / "m", fast_task, resume=True)
    write_safetensors({n: torch.full(m.shape, float("nan")) for n, m in mask.items()}, tmp_path / "m" / "mask.safetensors",
                      {"grokinterp_kind": "mask"})
    with pytest.raises(gi.CheckpointError, match="not 0/1"):
        _run(tmp_path / "m", fast_task, resume=True)
    (tmp_path / "m" / "mask.safetensors").write_bytes(good)

    epoch, _, state = read_resume_state(tmp_path / "m")
    write_safetensors({}, tmp_path / "m" / "resume.safetensors", {"epoch": str(epoch)})
    with pytest.raises(gi.CheckpointError, match="optimiser state is incomplete"):
        _run(tmp_path / "m", fast_task, resume=True)
    write_safetensors({**state, "W_in.exp_avg": state["W_in.exp_avg"] * float("nan")}, tmp_path / "m" / "resume.safetensors",
                      {"epoch": str(epoch)})
    with pytest.raises(gi.CheckpointError, match="non-finite"):
        _run(tmp_path / "m", fast_task, resume=True)
    write_safetensors(state, tmp_path / "m" / "resume.safetensors", {"epoch": str(epoch)})
    assert _run(tmp_path / "m", fast_task, resume=True).history[-1]["epoch"] == 40


# ----------------------------------------------------------------------------- 10, 13. files that lie
def test_an_edited_config_or_a_non_utf8_metrics_file_is_refused(tmp_path, fast_task):
    _run(tmp_path / "r", fast_task, epochs=20)
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    edited = {**record, "task": {**record["task"], "seed": 7}}
    (tmp_path / "r" / "config.json").write_text(json.dumps(edited))
    with pytest.raises(gi.CheckpointError, match="edited"):
        _run(tmp_path / "r", fast_task, resume=True)
    (tmp_path / "r" / "config.json").write_text(json.dumps(record))
    (tmp_path / "r" / "metrics.jsonl").write_bytes(b"\xff\xfe not text\n")
    with pytest.raises(gi.CheckpointError, match="not UTF-8"):
        _run(tmp_path / "r", fast_task, resume=True)


# ----------------------------------------------------------------------------- 12. the parent is its key
def test_sweep_reuse_does_not_depend_on_how_the_base_run_is_spelled(tmp_path, fast_task, monkeypatch):
    _run(tmp_path / "base", fast_task, epochs=20)
    monkeypatch.chdir(tmp_path)
    table = ticket_prune_sweep("base", [0.5], out_dir="sweep", epochs=10)
    mtime = (tmp_path / "sweep" / "t20_k0.5000" / "metrics.jsonl").stat().st_mtime_ns
    again = ticket_prune_sweep(tmp_path / "base", [0.5], out_dir=tmp_path / "sweep", epochs=10)
    assert again.drop(columns="run_dir").equals(table.drop(columns="run_dir"))
    assert (tmp_path / "sweep" / "t20_k0.5000" / "metrics.jsonl").stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------- property tests
_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.text(max_size=5), st.lists(st.floats(allow_subnormal=False), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["epochs", "eval_every", "checkpoint_every", "stop_at_test_acc", "threads", "progress",
                              "lr", "weight_decay", "betas", "warmup_epochs"]), value=_values)
def test_train_config_takes_a_value_or_says_what_was_wrong(field, value):
    try:
        cfg = gi.TrainConfig(**{field: value})
    except gi.GrokinterpError as e:
        assert field in str(e)
    else:
        assert getattr(cfg, field) == (tuple(value) if isinstance(value, list) else value)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["score_lr", "score_weight_decay", "score_betas", "weight_lr", "weight_decay", "seed",
                              "weights", "score_init", "epochs"]), value=_values)
def test_edge_popup_config_takes_a_value_or_says_what_was_wrong(field, value):
    try:
        EdgePopupConfig(**{field: value})
    except gi.GrokinterpError as e:
        assert field in str(e)


_OPTIONS = {
    "train": ["--p", "--frac-train", "--split-seed", "--seed", "--d-embed", "--d-hidden", "--epochs", "--lr",
              "--weight-decay", "--warmup", "--eval-every", "--checkpoint-every", "--stop-at-test-acc", "--threads",
              "--op", "--pairs", "--act", "--preset", "--model"],
    "edge-popup": ["--epoch", "--prune-ratio", "--epochs", "--score-lr", "--score-weight-decay", "--weight-lr",
                   "--weight-decay", "--score-init", "--seed", "--weights"],
    "demo": ["--prune-ratio"],
    "critical": ["--step", "--start", "--epoch", "--epochs", "--weight-decay", "--stop-at-test-acc"],
}


@settings(max_examples=300, deadline=None)
@given(command=st.sampled_from(sorted(_OPTIONS)), data=st.data(),
       text=st.one_of(st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).map(repr),
                      st.integers(min_value=-(2**70), max_value=2**70).map(str)))
def test_cli_parsers_take_a_value_or_raise_the_usage_error(command, data, text):
    option = data.draw(st.sampled_from(_OPTIONS[command]))
    required = {"train": ["--out", "o"], "edge-popup": ["--run", "r", "--out", "o"], "demo": [],
                "critical": ["--run", "r", "--out", "o"]}[command]
    try:
        args = cli.build_parser().parse_args([command, *required, option, text])
    except cli.UsageError as e:
        assert option in str(e) or "expected one argument" in str(e) or "invalid choice" in str(e)
    else:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        assert not (isinstance(value, float) and not math.isfinite(value))


def test_readers_refuse_an_edited_record_and_malformed_metadata(tmp_path, fast_task):
    _run(tmp_path / "r", fast_task, epochs=20)
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    (tmp_path / "r" / "config.json").write_text(json.dumps({**record, "task": {**record["task"], "seed": 7}}))
    with pytest.raises(gi.CheckpointError, match="edited"):
        gi.analyze(tmp_path / "r")
    model = gi.HookedMLP(gi.MLPConfig(5, d_embed=4, d_hidden=3))
    tensors = {n: p.detach() for n, p in named_weights(model).items()}
    for meta in ({"grokinterp_kind": "checkpoint", "model": "[1, 2]"},
                 {"grokinterp_kind": "checkpoint", "model": json.dumps({"kind": "mlp", **model.cfg.to_dict()}), "epoch": "x"}):
        write_safetensors(tensors, tmp_path / "c.safetensors", meta)
        with pytest.raises(gi.CheckpointError, match="c.safetensors"):
            gi.load_checkpoint(tmp_path / "c.safetensors")


@pytest.mark.parametrize("kwargs, message", [
    (dict(p=100003), "too large.*GB"), (dict(p=7, seed=2**63), "seed"), (dict(p=7, frac_train="x"), "frac_train"),
])
def test_tasks_refuse_what_they_cannot_hold(kwargs, message):
    with pytest.raises(gi.GrokinterpError, match=message):
        gi.ModularArithmetic(**kwargs)


def test_transformer_configs_refuse_non_finite_init_and_large_seeds():
    for kwargs in (dict(init_scale=float("inf")), dict(init_scale=float("nan")), dict(seed=2**63), dict(pos_embed=1)):
        with pytest.raises(gi.GrokinterpError):
            gi.TransformerConfig(p=7, **kwargs)


_CONSTRUCTORS = {
    "task": (lambda **kw: gi.ModularArithmetic(**{"p": 7, **kw}), ["p", "op", "pairs", "frac_train", "seed", "split"]),
    "mlp": (lambda **kw: gi.MLPConfig(**{"p": 7, **kw}), ["p", "d_embed", "d_hidden", "act", "init_scale", "seed"]),
    "transformer": (lambda **kw: gi.TransformerConfig(**{"p": 7, **kw}),
                    ["p", "n_layers", "n_heads", "d_model", "d_head", "d_mlp", "act", "eq_token", "pos_embed",
                     "init_scale", "seed", "attn_rate", "attention_dir", "diff_vocab"]),
}


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(_CONSTRUCTORS)), data=st.data(), value=_values)
def test_tasks_and_model_configs_take_a_value_or_say_what_was_wrong(kind, data, value):
    build, names = _CONSTRUCTORS[kind]
    field = data.draw(st.sampled_from(names))
    if isinstance(value, int) and not isinstance(value, bool) and field in ("p", "d_embed", "d_hidden", "d_model", "d_mlp"):
        value = min(value, 64)  # a valid size is built for real: keep it small
    try:
        build(**{field: value})
    except gi.GrokinterpError as e:
        assert field.split("_")[0] in str(e) or "p=" in str(e) or "split" in str(e), (field, value, str(e))
