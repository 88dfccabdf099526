"""Mini-batches in the training loop: seeded per (batch seed, epoch), exact on resume, identical to
full batch when one batch holds the split; full-batch records and run keys unchanged."""

import pytest
import torch

import grokinterp as gi
from grokinterp.models import HookedVectorMLP, VectorMLPConfig, config_to_dict, named_weights
from grokinterp.runs import read_resume_state
from grokinterp.sweeps import RunPlan, train_plans
from grokinterp.tasks import SparseParity
from grokinterp.training import TrainJob, batches_per_epoch, epoch_batches, epoch_order, loop, stack_key

from conftest import FAST_MLP, FAST_TASK

PARITY = SparseParity(n_bits=10, k=3, n_train=50, n_test=40, seed=1)


def _vec(seed=0):
    return HookedVectorMLP(VectorMLPConfig(d_in=10, widths=(16, 16), d_out=2, seed=seed))


def _same_weights(a, b):
    wa, wb = named_weights(a), named_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_epoch_batches_cover_the_split_in_a_seeded_order():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    cfg = gi.TrainConfig(batch_size=4, batch_seed=3)
    batches = list(epoch_batches(cfg, 7, x, y))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and batches_per_epoch(cfg, 10) == 3
    order = torch.cat([b[1] for b in batches])
    assert torch.equal(order, epoch_order(3, 7, 10)) and sorted(order.tolist()) == list(range(10))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)  # inputs stay with their labels
    assert torch.equal(epoch_order(3, 7, 10), epoch_order(3, 7, 10))
    assert not torch.equal(epoch_order(3, 7, 10), epoch_order(3, 8, 10))
    assert not torch.equal(epoch_order(3, 7, 10), epoch_order(4, 7, 10))
    full = list(epoch_batches(gi.TrainConfig(batch_size=10), 1, x, y))
    assert len(full) == 1 and full[0][1] is y  # one batch of the whole split: its own order


@pytest.mark.parametrize("kind", ["mlp", "vector_mlp"])
def test_one_batch_of_the_whole_split_is_full_batch_bit_for_bit(kind):
    if kind == "mlp":
        task, make = gi.ModularArithmetic(**FAST_TASK), lambda: gi.HookedMLP(gi.MLPConfig(**FAST_MLP))
    else:
        task, make = PARITY, _vec
    n = len(task.labels("train"))
    base = dict(epochs=30, lr=3e-3, eval_every=5, progress=False)
    full = gi.train(make(), task, gi.TrainConfig(**base))
    for size in (n, n + 7):
        batched = gi.train(make(), task, gi.TrainConfig(**base, batch_size=size, batch_seed=5))
        assert batched.history == full.history and _same_weights(batched.model, full.model)
    small = gi.train(make(), task, gi.TrainConfig(**base, batch_size=max(1, n // 3)))
    assert small.history != full.history  # real mini-batches change the trajectory


def test_batch_seed_fixes_the_run():
    cfg = dict(epochs=20, lr=3e-3, eval_every=5, progress=False, batch_size=16)
    a = gi.train(_vec(), PARITY, gi.TrainConfig(**cfg, batch_seed=0))
    b = gi.train(_vec(), PARITY, gi.TrainConfig(**cfg, batch_seed=0))
    c = gi.train(_vec(), PARITY, gi.TrainConfig(**cfg, batch_seed=1))
    assert a.history == b.history and _same_weights(a.model, b.model) and a.history != c.history


class _Kill(Exception):
    pass


def test_killed_minibatch_run_resumes_bit_identically(tmp_path):
    cfg = gi.TrainConfig(epochs=30, lr=3e-3, eval_every=5, checkpoint_every=10, batch_size=16, batch_seed=2,
                         warmup_epochs=5, progress=False)
    full = gi.train(_vec(), PARITY, cfg, out_dir=tmp_path / "full")

    def kill(epoch, row, model):
        if epoch >= 25:  # after the checkpoint at 20, in the middle of the next stretch
            raise _Kill

    with pytest.raises(_Kill):
        gi.train(_vec(), PARITY, cfg, out_dir=tmp_path / "killed", callbacks=[kill])
    epoch, _, stored = read_resume_state(tmp_path / "killed")
    steps = {k: int(v) for k, v in stored.items() if k.endswith(".step")}
    assert epoch == 20 and set(steps.values()) == {20 * batches_per_epoch(cfg, 50)}  # 4 steps per epoch
    resumed = gi.train(_vec(), PARITY, cfg, out_dir=tmp_path / "killed", resume=True)
    assert resumed.history == full.history and _same_weights(resumed.model, full.model)
    record = gi.load_run(tmp_path / "killed").config
    assert record["train"]["batch_size"] == 16 and "mini-batches of 16" in record["epoch_convention"]
    # another batch size or batch seed is another run
    with pytest.raises(gi.CheckpointError, match="batch_seed"):
        gi.train(_vec(), PARITY, gi.TrainConfig(**{**cfg.to_dict(), "batch_seed": 3}), out_dir=tmp_path / "killed",
                 resume=True)


def test_full_batch_records_and_keys_do_not_change():
    # keys of full-batch runs made before mini-batches and per-weight init scales existed
    task = gi.ModularArithmetic(23, frac_train=0.5)
    assert RunPlan.of(task, config_to_dict(gi.MLPConfig(p=23)), gi.TrainConfig()).key == "5f83a3e674141d83"
    plan = RunPlan.of(task, config_to_dict(gi.MLPConfig(p=23, init_scale=2.0, seed=3)), gi.TrainConfig(lr=1e-2, warmup_epochs=10))
    assert plan.key == "748ac32f8eb06923"
    assert "batch_size" not in gi.TrainConfig().to_dict() and "init_scales" not in gi.MLPConfig(p=23).to_dict()
    mini = RunPlan.of(task, config_to_dict(gi.MLPConfig(p=23)), gi.TrainConfig(batch_size=64))
    assert mini.key != "5f83a3e674141d83" and mini.train.to_dict()["batch_seed"] == 0
    assert gi.TrainConfig.from_dict(gi.TrainConfig(batch_size=64, batch_seed=9).to_dict()) == gi.TrainConfig(batch_size=64, batch_seed=9)
    for bad in (0, True, 2.5):
        with pytest.raises(gi.GrokinterpError, match="batch_size"):
            gi.TrainConfig(batch_size=bad)
    with pytest.raises(gi.GrokinterpError, match="batch_seed"):
        gi.TrainConfig(batch_size=4, batch_seed=-1)


def test_minibatch_runs_are_not_stacked():
    task = gi.ModularArithmetic(**FAST_TASK)
    cfg = dict(epochs=6, eval_every=3, progress=False)
    job = TrainJob(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, gi.TrainConfig(**cfg, batch_size=64))
    assert stack_key(job) is None
    assert stack_key(TrainJob(job.model, task, gi.TrainConfig(**cfg))) is not None
    assert stack_key(TrainJob(_vec(), PARITY, gi.TrainConfig(**cfg))) is None
    model = config_to_dict(gi.MLPConfig(**FAST_MLP))
    plans = [RunPlan.of(task, {**model, "seed": s}, gi.TrainConfig(**cfg, batch_size=64)) for s in (0, 1)]
    outcomes = train_plans(plans)
    alone = gi.train(gi.HookedMLP(gi.MLPConfig(**FAST_MLP)), task, gi.TrainConfig(**cfg, batch_size=64))
    assert [o.error for o in outcomes] == [None, None] and outcomes[0].history == alone.history


def test_run_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    cfg = gi.TrainConfig(epochs=20, lr=3e-3, eval_every=5, checkpoint_every=10, batch_size=16, progress=False)
    full = gi.train(_vec(), PARITY, cfg)
    real_step, calls = loop._step, []

    def dying_step(*args):
        calls.append(1)
        if len(calls) == 4 * 13 + 2:  # the third of epoch 14's four steps
            raise _Kill
        return real_step(*args)

    monkeypatch.setattr(loop, "_step", dying_step)
    with pytest.raises(_Kill):
        gi.train(_vec(), PARITY, cfg, out_dir=tmp_path / "run")
    monkeypatch.setattr(loop, "_step", real_step)
    assert read_resume_state(tmp_path / "run")[0] == 10
    resumed = gi.train(_vec(), PARITY, cfg, out_dir=tmp_path / "run", resume=True)
    assert resumed.history == full.history and _same_weights(resumed.model, full.model)
