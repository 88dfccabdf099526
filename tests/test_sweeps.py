"""Sweeps as one engine: plans, batched training bit-identical to training alone, executors that
give the same table, and a killed sweep that resumes only what was unfinished."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import grokinterp as gi
from grokinterp.models import named_weights
from grokinterp.errors import TrainingCancelled
from grokinterp.sweeps import RunPlan, ThreadExecutor, execute, run_sweep
from grokinterp.tickets import ticket_plan, ticket_prune_sweep
from grokinterp.training import TrainJob, train_batched

from conftest import FAST_MLP, FAST_TASK

SETTINGS = dict(epochs=60, lr=1e-2, weight_decay=1.0, eval_every=10, checkpoint_every=20, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _members():
    """Four runs of one shape that differ in seed, mask, learning rate, weight decay, warm-up and
    schedule (one evaluates at other epochs, one stops early)."""
    g = torch.Generator().manual_seed(0)
    shapes = {n: p.shape for n, p in named_weights(gi.HookedMLP(gi.MLPConfig(**FAST_MLP))).items()}
    mask = {n: torch.rand(s, generator=g) > 0.4 for n, s in shapes.items()}
    return [
        (0, {}, None),
        (1, {"lr": 3e-3}, mask),
        (2, {"weight_decay": 0.1, "warmup_epochs": 10, "eval_every": 15}, None),
        (3, {"epochs": 200, "stop_at_test_acc": 0.2}, {"W_in": mask["W_in"]}),
    ]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep_base") / "run"
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), gi.ModularArithmetic(**FAST_TASK), gi.TrainConfig(**SETTINGS), path)
    return path


def test_a_batch_of_four_trains_each_member_exactly_as_alone(tmp_path):
    task = gi.ModularArithmetic(**FAST_TASK)
    alone, jobs = [], []
    for i, (seed, over, mask) in enumerate(_members()):
        cfg = gi.TrainConfig(**{**SETTINGS, **over})
        model = lambda: gi.HookedMLP(gi.MLPConfig(**{**FAST_MLP, "seed": seed}))  # noqa: E731
        alone.append(gi.train(model(), task, cfg, tmp_path / f"alone{i}", mask))
        jobs.append(TrainJob(model(), task, cfg, tmp_path / f"batch{i}", mask))
    batched = train_batched(jobs)
    assert alone[3].history[-1]["epoch"] < 200  # the early stop happened, and the member dropped out
    for i, (a, b) in enumerate(zip(alone, batched)):
        assert a.history == b.history, i
        wa, wb = named_weights(a.model), named_weights(b.model)
        assert all(torch.equal(wa[n], wb[n]) for n in wa), i
        assert _files(tmp_path / f"alone{i}") == _files(tmp_path / f"batch{i}"), i  # config, metrics, checkpoints, resume state


def test_a_batch_resumes_members_killed_at_different_epochs(tmp_path):
    task = gi.ModularArithmetic(**FAST_TASK)
    cfg = gi.TrainConfig(**SETTINGS)
    short = gi.TrainConfig(**{**SETTINGS, "epochs": 20})
    full = [gi.train(gi.HookedMLP(gi.MLPConfig(**{**FAST_MLP, "seed": s})), task, cfg, tmp_path / f"full{s}") for s in (0, 1)]
    gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, short, tmp_path / "part0")  # stopped at epoch 20
    jobs = [TrainJob(gi.HookedMLP(gi.MLPConfig(**{**FAST_MLP, "seed": s})), task, cfg, tmp_path / f"part{s}", resume=True)
            for s in (0, 1)]  # seed 1 starts from scratch
    for f, r in zip(full, train_batched(jobs)):
        assert r.history == f.history
    for s in (0, 1):
        assert _files(tmp_path / f"part{s}") == _files(tmp_path / f"full{s}")


def test_plans_carry_their_spec_key_and_describe_themselves(base_run, tmp_path):
    planned = ticket_plan(base_run, None, 0.5, tmp_path / "t", epochs=20, reuse=True)
    plan = planned.plan
    described = json.loads(json.dumps(plan.to_dict()))
    assert described["key"] == plan.key and described["mask"]["density"] == pytest.approx(0.5, abs=1e-3)
    assert described["parent_key"] == gi.load_run(base_run).key and described["init"]["epoch"] == 0
    run_sweep([plan], progress=False)
    assert json.loads((tmp_path / "t" / "config.json").read_text())["key"] == plan.key  # what the loop wrote
    with pytest.raises(gi.GrokinterpError, match="list of RunPlans"):
        run_sweep(["not a plan"])
    with pytest.raises(gi.GrokinterpError, match="unknown executor"):
        run_sweep([plan], executor="thread")
    with pytest.raises(gi.GrokinterpError, match="executor must be"):
        run_sweep([plan], executor=42)
    with pytest.raises(gi.GrokinterpError, match="workers must be a positive integer"):
        run_sweep([plan], executor="process", workers=0)
    with pytest.raises(gi.GrokinterpError, match="share a run folder"):
        run_sweep([plan, plan])


def test_a_failed_run_is_a_row_with_its_error_and_the_others_train(base_run, tmp_path):
    good = ticket_plan(base_run, None, 0.5, tmp_path / "good", epochs=20, reuse=True).plan
    bad = RunPlan(good.task, good.model, good.train, str(tmp_path / "bad"), init={"W_E": torch.zeros(3, 3)})
    table = run_sweep([good, bad], executor="inline", progress=False, table=tmp_path / "runs.csv")
    assert table["error"].isna().tolist() == [True, False] and "parameter names do not match" in table.loc[1, "error"]
    assert table.loc[0, "final_epoch"] == 20
    assert pd.read_parquet(tmp_path / "runs.parquet").equals(table)
    assert (tmp_path / "runs.csv").exists()


def test_a_killed_sweep_reruns_only_what_was_unfinished(base_run, tmp_path, monkeypatch):
    ratios = [0.2, 0.4, 0.6, 0.8]
    kwargs = dict(epochs=40, eval_every=10, checkpoint_every=10)
    reference = ticket_prune_sweep(base_run, ratios, out_dir=tmp_path / "ref", **kwargs)
    out = tmp_path / "killed"
    first = ticket_prune_sweep(base_run, ratios[:2], out_dir=out, **kwargs)  # two points finished ...
    t = int(reference["ticket_epoch"].iloc[0])
    ticket_prune_sweep(base_run, [0.6], out_dir=out, **{**kwargs, "epochs": 20})  # ... one stopped half-way
    stamps = {k: (out / f"t{t}_k{k:.4f}" / "metrics.jsonl").stat().st_mtime_ns for k in ratios[:2]}
    trained = []
    real = gi.training.batched.LoopState.begin

    def begin(state):
        trained.append((state.writer.path.name, state.start_epoch))
        real(state)

    monkeypatch.setattr(gi.training.batched.LoopState, "begin", begin)
    again = ticket_prune_sweep(base_run, ratios, out_dir=out, **kwargs)
    assert sorted(trained) == [(f"t{t}_k0.6000", 20), (f"t{t}_k0.8000", 0)]  # resumed one, started one, reused two
    assert {k: (out / f"t{t}_k{k:.4f}" / "metrics.jsonl").stat().st_mtime_ns for k in ratios[:2]} == stamps
    assert again.drop(columns="run_dir").equals(reference.drop(columns="run_dir"))
    assert again.iloc[:2].drop(columns="run_dir").equals(first.drop(columns="run_dir"))
    ref_files = {n: d for n, d in _files(tmp_path / "ref").items() if not n.endswith((".csv", ".parquet"))}
    assert {n: d for n, d in _files(out).items() if not n.endswith((".csv", ".parquet"))} == ref_files


def test_dask_gives_the_table_of_the_process_pool(base_run, tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask distributed is not installed (pip install 'grokinterp[dask]')")
    ratios = [0.3, 0.5, 0.7]
    kwargs = dict(epochs=30, eval_every=10, checkpoint_every=10)
    pool = ticket_prune_sweep(base_run, ratios, out_dir=tmp_path / "pool", executor="process", workers=2, **kwargs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = ticket_prune_sweep(base_run, ratios, out_dir=tmp_path / "dask", executor=client, **kwargs)
    assert on_dask.drop(columns="run_dir").equals(pool.drop(columns="run_dir"))
    assert on_dask["error"].isna().all() and (on_dask["final_epoch"] == 30).all()
    for name in (f"t{int(pool['ticket_epoch'].iloc[0])}_k{k:.4f}" for k in ratios):
        assert _files(tmp_path / "pool" / name) == _files(tmp_path / "dask" / name)


def test_threads_give_the_files_of_the_process_pool(base_run, tmp_path):
    ratios = [0.3, 0.5, 0.7]
    kwargs = dict(epochs=30, eval_every=10, checkpoint_every=10)
    pool = ticket_prune_sweep(base_run, ratios, out_dir=tmp_path / "pool", executor="process", workers=2, **kwargs)
    threads = ticket_prune_sweep(base_run, ratios, out_dir=tmp_path / "threads", executor="threads", workers=2, **kwargs)
    assert threads.drop(columns="run_dir").equals(pool.drop(columns="run_dir"))
    assert threads["error"].isna().all()
    assert _files(tmp_path / "pool").keys() == _files(tmp_path / "threads").keys()
    for name in (f"t{int(pool['ticket_epoch'].iloc[0])}_k{k:.4f}" for k in ratios):
        assert _files(tmp_path / "pool" / name) == _files(tmp_path / "threads" / name)


class _SetAfter:
    """A cancel event that reads as set from its ``n``-th check on."""

    def __init__(self, n):
        self.checks, self.n = 0, n

    def is_set(self):
        self.checks += 1
        return self.checks >= self.n


def test_a_cancelled_run_stops_before_its_next_step_and_resumes_exactly(tmp_path):
    task = gi.ModularArithmetic(**FAST_TASK)
    cfg = gi.TrainConfig(**SETTINGS)
    full = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, cfg, tmp_path / "full")
    with pytest.raises(TrainingCancelled, match="before epoch 25"):
        gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, cfg, tmp_path / "single", cancel=_SetAfter(25))
    jobs = [TrainJob(gi.HookedMLP(gi.MLPConfig(**{**FAST_MLP, "seed": s})), task, cfg, tmp_path / f"stack{s}") for s in (0, 1)]
    with pytest.raises(TrainingCancelled, match="before epoch 45"):
        train_batched(jobs, return_exceptions=True, cancel=_SetAfter(45))
    assert json.loads((tmp_path / "single" / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 20
    again = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, cfg, tmp_path / "single", resume=True)
    stacked = train_batched([TrainJob(j.model, task, cfg, j.out_dir, resume=True) for j in jobs])
    assert again.history == full.history == stacked[0].history
    assert _files(tmp_path / "single") == _files(tmp_path / "full") == _files(tmp_path / "stack0")


def test_an_interrupted_thread_sweep_cancels_its_runs():
    seen = []

    def fn(item, cancel):
        while not cancel.is_set():  # a run that would train for ever unless cancelled
            cancel.wait(0.01)
        seen.append(item)
        raise TrainingCancelled("cancelled")

    def finished(i, result, error):
        raise AssertionError("no item may finish before the interrupt")

    def started(i):
        if i == 1:
            raise KeyboardInterrupt  # Ctrl-C while the sweep hands out work

    with pytest.raises(KeyboardInterrupt):
        ThreadExecutor(2).run(fn, ["a", "b"], started, finished)
    assert seen == ["a"]  # the thread in flight saw the cancel and stopped; the pool has joined it


def test_a_sweep_of_vector_mlps_trains_with_the_default_executor(tmp_path):
    task = gi.SparseParity(n_bits=10, k=3, n_train=100, n_test=100)
    cfg = gi.TrainConfig(epochs=5, eval_every=5, checkpoint_every=5, progress=False)
    plans = [RunPlan(task.to_dict(), gi.models.config_to_dict(gi.VectorMLPConfig(d_in=10, widths=(16,), d_out=2, seed=s)), cfg,
                     str(tmp_path / f"r{s}")) for s in (0, 1)]
    table = run_sweep(plans, progress=False)
    assert table["error"].isna().all() and (table["final_epoch"] == 5).all()
    assert table["key"].nunique() == 2


def test_a_lone_run_of_a_sweep_trains_on_one_thread_like_the_pools(tmp_path):
    """The thread count changes a run's numbers: a plan left with threads unset trains with one
    intra-op thread on the inline executor too (the one a sweep of one batch gets), so it matches
    the process pool and a plain train(threads=1), whatever the machine's default."""
    task = gi.SparseParity(n_bits=60, k=3, n_train=1000, n_test=100)
    cfg = gi.TrainConfig(epochs=6, eval_every=3, checkpoint_every=3, progress=False)
    model = gi.models.config_to_dict(gi.VectorMLPConfig(d_in=60, widths=(256, 256), d_out=2, seed=0))
    plan = lambda d: RunPlan(task.to_dict(), model, cfg, str(tmp_path / d))  # noqa: E731
    inline = execute([plan("inline")], "inline", progress=False)[0]
    pool = execute([plan("pool")], "process", workers=1, progress=False)[0]
    alone = gi.train(gi.models.build_model(gi.VectorMLPConfig(d_in=60, widths=(256, 256), d_out=2, seed=0)), task,
                     gi.TrainConfig(**{**cfg.to_dict(), "threads": 1}))
    assert inline.history == pool.history == alone.history
    assert all(torch.equal(inline.weights[n], w) for n, w in named_weights(alone.model).items())
    # the record keeps the config's setting, as a stacked run's does
    assert json.loads((tmp_path / "inline" / "config.json").read_text())["train"]["threads"] is None


def test_a_plan_of_a_partial_model_dict_has_the_key_of_the_run_it_trains(tmp_path):
    task = gi.SparseParity(n_bits=10, k=3, n_train=100, n_test=100)
    partial = {"kind": "vector_mlp", "d_in": 10, "widths": [16], "d_out": 2}  # defaults left out
    plan = RunPlan(task.to_dict(), partial, gi.TrainConfig(epochs=2, eval_every=1, progress=False), str(tmp_path / "r"))
    run_sweep([plan], progress=False)
    assert gi.load_run(tmp_path / "r").key == plan.key


class _Recorder:
    """An executor that records the batches in the order it is handed them and trains nothing."""

    name, workers = "recorder", 2

    def __init__(self):
        self.order = []

    def run(self, fn, items, started, finished):
        for i, batch in enumerate(items):
            started(i)
            self.order.append([(plan.model["kind"], plan.model.get("seed", 0), plan.train.epochs) for plan in batch])
            finished(i, None, RuntimeError("not trained"))


def test_the_longest_batches_are_handed_out_first(tmp_path):
    """A long run planned last starts first: batches go out by their members' epochs summed,
    longest first (a stack counts each member), ties in the plans' order."""
    task = gi.ModularArithmetic(**FAST_TASK)
    mlp = gi.models.config_to_dict(gi.MLPConfig(**FAST_MLP))
    vec = {"kind": "vector_mlp", "d_in": 12, "widths": [8], "d_out": 2}
    parity = gi.SparseParity(n_bits=12, k=3, n_train=50, n_test=50).to_dict()

    def cfg(epochs):
        return gi.TrainConfig(**{**SETTINGS, "epochs": epochs})

    plans = [RunPlan(task.to_dict(), {**mlp, "seed": s}, cfg(100), str(tmp_path / f"m{s}")) for s in range(4)]
    plans += [RunPlan(parity, {**vec, "seed": 0}, cfg(150), str(tmp_path / "short")),
              RunPlan(parity, {**vec, "seed": 1}, cfg(500), str(tmp_path / "long")),
              RunPlan(parity, {**vec, "seed": 2}, cfg(150), str(tmp_path / "tie"))]
    recorder = _Recorder()
    outcomes = execute(plans, recorder, progress=False)
    assert recorder.order == [[("vector_mlp", 1, 500)], [("mlp", 0, 100), ("mlp", 1, 100)],
                              [("mlp", 2, 100), ("mlp", 3, 100)], [("vector_mlp", 0, 150)], [("vector_mlp", 2, 150)]]
    assert all(o.error == "RuntimeError: not trained" for o in outcomes)
