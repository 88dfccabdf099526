"""The tasks on vectors: seeded, exactly rebuilt from their dicts, their formulas recomputed by hand,
bad arguments refused; the squared-error loss and the accuracy rules; MNIST files read from disk."""

import gzip
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

import grokinterp as gi
from grokinterp import GrokinterpError
from grokinterp.metrics import evaluate, mse_f64, split_scores, task_accuracy, task_loss
from grokinterp.models import HookedVectorMLP, VectorMLPConfig, build_model, check_task, config_from_dict, fit_task
from grokinterp.tasks import (
    TASKS,
    ImageClassification,
    PolynomialRegression,
    SparseParity,
    read_idx,
    require_modular,
    task_from_dict,
)

SMALL = [
    PolynomialRegression(d=8, n_train=30, n_test=20, seed=3, beta_seed=5),
    SparseParity(n_bits=10, k=3, n_train=40, n_test=30, seed=2, subset_seed=7),
    SparseParity(n_bits=45, k=4, n_train=50, n_test=20, encoding="01"),
    ImageClassification(n_train=100, n_test=50, seed=1),
]


@pytest.mark.parametrize("task", SMALL, ids=lambda t: t.kind)
def test_round_trip_determinism_and_sizes(task):
    again = task_from_dict(json.loads(json.dumps(task.to_dict())))
    assert again == task and type(again) is type(task) and TASKS[task.kind] is type(task)
    for split in ("train", "test", "all"):
        assert torch.equal(again.inputs(split), task.inputs(split))
        assert torch.equal(again.labels(split), task.labels(split))
    n_train, n_test = task.n_train, task.n_test
    assert task.inputs("train").shape == (n_train, task.d_in) and task.labels("train").shape == (n_train,)
    assert task.inputs("test").shape == (n_test, task.d_in) and task.labels("test").shape == (n_test,)
    assert torch.equal(task.inputs("all"), torch.cat([task.inputs("train"), task.inputs("test")]))
    assert task.inputs().dtype == torch.float32
    with pytest.raises(GrokinterpError, match="split"):
        task.inputs("valid")


def test_regression_formula_and_seeds():
    t = PolynomialRegression(d=6, n_train=25, n_test=15, seed=1, beta_seed=2)
    x, y, beta = t.inputs("all"), t.labels("all"), t.beta
    by_hand = [sum(float(x[i, j]) * float(beta[j]) for j in range(6)) ** 2 / 2 for i in range(40)]
    assert np.allclose(y.numpy(), by_hand, rtol=1e-6)
    assert t.d_out == 1 and t.loss == "mse" and t.accuracy_rule == "squared_error"
    # the teacher depends on beta_seed only, the inputs on seed only
    other_data = PolynomialRegression(d=6, n_train=25, n_test=15, seed=9, beta_seed=2)
    other_beta = PolynomialRegression(d=6, n_train=25, n_test=15, seed=1, beta_seed=9)
    assert torch.equal(other_data.beta, beta) and not torch.equal(other_data.inputs(), t.inputs())
    assert torch.equal(other_beta.inputs(), t.inputs()) and not torch.equal(other_beta.beta, beta)
    # x ~ N(0, I/d): the coordinates' variance is 1/d
    big = PolynomialRegression(d=40, n_train=4000, n_test=1)
    assert abs(float(big.inputs().var()) * 40 - 1) < 0.05
    assert math.isclose(t.squared_error_bound, t.tolerance * float(t.labels("train").double().var(unbiased=False)))


def test_parity_bits_and_labels_by_hand():
    t = SparseParity(n_bits=10, k=3, n_train=60, n_test=40, seed=4, subset_seed=1)
    S = t.subset
    assert len(S) == 3 and list(S) == sorted(set(S)) and all(0 <= i < 10 for i in S)
    x, y = t.inputs("all"), t.labels("all")
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    for row, label in zip(x.tolist(), y.tolist()):
        bits = [(1 - v) / 2 for v in row]  # ±1 -> 0/1 (bit 1 is -1)
        assert label == int(sum(bits[i] for i in S)) % 2
        assert math.prod(row[i] for i in S) == (-1) ** label
    codes = t.codes.tolist()
    assert len(set(codes)) == 100  # distinct strings, so the splits share none
    for code, row in zip(codes[:5], x[:5].tolist()):
        assert [(code >> i) & 1 for i in range(10)] == [int((1 - v) / 2) for v in row]
    ones = SparseParity(n_bits=10, k=3, n_train=60, n_test=40, seed=4, subset_seed=1, encoding="01")
    assert torch.equal(ones.inputs("all"), (1 - x) / 2) and torch.equal(ones.labels("all"), y)
    assert t.d_out == 2 and t.loss == "cross_entropy"
    # the default (n, k) = (40, 3) problem, labels balanced-ish
    default = SparseParity()
    assert (default.n_bits, default.k) == (40, 3) and 0.4 < float(default.labels().float().mean()) < 0.6


def test_digits_split_and_scaling():
    t = ImageClassification(n_train=1000, seed=0)
    assert (t.n_train, len(t.labels("test")), t.d_in, t.d_out) == (1000, 797, 64, 10)
    x = t.inputs("all")
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    from sklearn.datasets import load_digits

    data = load_digits()
    train_idx, test_idx = t._indices
    assert len(set(train_idx.tolist()) | set(test_idx.tolist())) == 1797
    assert np.allclose(t.inputs("train").numpy(), data.data[train_idx.numpy()] / 16.0)
    assert np.array_equal(t.labels("test").numpy(), data.target[test_idx.numpy()])
    assert not torch.equal(ImageClassification(n_train=1000, seed=1).labels(), t.labels())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PolynomialRegression(d=0), "d must"),
        (lambda: PolynomialRegression(n_train=0), "n_train"),
        (lambda: PolynomialRegression(tolerance=-1.0), "tolerance"),
        (lambda: PolynomialRegression(seed=-1), "seed"),
        (lambda: SparseParity(k=0), "k must"),
        (lambda: SparseParity(n_bits=3, k=4), r"k must lie in \[1, n_bits=3\]"),
        (lambda: SparseParity(n_bits=63), "at most 62"),
        (lambda: SparseParity(n_bits=4, n_train=10, n_test=10), "only 16 exist"),
        (lambda: SparseParity(encoding="bits"), "encoding"),
        (lambda: ImageClassification(source="cifar"), "source"),
        (lambda: ImageClassification(n_train=1797), "do not fit"),
        (lambda: ImageClassification(path="x.npz"), "belong to source='mnist'"),
        (lambda: ImageClassification(source="mnist"), "needs path"),
        (lambda: task_from_dict({"kind": "sparse_parity", "bits": 3}), "unknown SparseParity fields"),
        (lambda: task_from_dict({"kind": "xor"}), "unknown task kind"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(GrokinterpError, match=match):
        make()


def test_mse_matches_hand_formula():
    out = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.25, 1.0]])
    classes = torch.tensor([2, 0])
    hand = ((0.5**2 + 1.0**2 + 1.0**2) + (1.0**2 + 0.25**2 + 1.0**2)) / 6
    assert mse_f64(out, classes).dtype == torch.float64 and math.isclose(float(mse_f64(out, classes)), hand)
    reg_out, targets = torch.tensor([[1.0], [3.0], [-2.0]]), torch.tensor([0.5, 3.0, 0.0])
    assert math.isclose(float(mse_f64(reg_out, targets)), (0.25 + 0 + 4) / 3)
    assert torch.equal(mse_f64(out, classes), torch.nn.functional.mse_loss(out.double(), torch.eye(3)[classes].double()))
    with pytest.raises(GrokinterpError, match="one target per output"):
        mse_f64(reg_out, torch.zeros(2))


def test_accuracy_rules_through_the_task():
    reg = PolynomialRegression(d=4, n_train=10, n_test=5)
    y = reg.labels("train")
    bound = reg.squared_error_bound
    close = (y + 0.5 * math.sqrt(bound))[:, None]
    far = (y + 2.0 * math.sqrt(bound))[:, None]
    mixed = torch.cat([close[:4], far[4:]])
    assert task_accuracy(reg, close, y) == 1.0 and task_accuracy(reg, far, y) == 0.0
    assert task_accuracy(reg, mixed, y) == 0.4
    assert split_scores(reg, mixed, y) == (float(task_loss(reg, mixed, y)), 0.4)
    par = SparseParity(n_bits=6, n_train=8, n_test=8)
    logits = torch.nn.functional.one_hot(par.labels(), 2).float()
    assert task_accuracy(par, logits, par.labels()) == 1.0 and task_accuracy(par, -logits, par.labels()) == 0.0
    # evaluate works for any task through its loss and accuracy
    model = HookedVectorMLP(VectorMLPConfig(d_in=4, widths=(8,), d_out=1))
    row = evaluate(model, reg, dict(model.named_parameters()))
    assert set(row) >= {"train_loss", "train_acc", "test_loss", "test_acc"} and 0 <= row["test_acc"] <= 1


def _write_idx(path, array, gz=False):
    code = {np.uint8: 0x08}[array.dtype.type]
    raw = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_mnist(rng, n_train=30, n_test=12):
    return {
        "x_train": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def test_mnist_from_idx_folder_and_npz(tmp_path):
    arrays = _fake_mnist(np.random.default_rng(0))
    folder = tmp_path / "idx"
    folder.mkdir()
    names = gi.tasks.MNIST_IDX_FILES
    for i, (key, name) in enumerate(names.items()):
        _write_idx(folder / (name + (".gz" if i % 2 else "")), arrays[key], gz=bool(i % 2))
    assert np.array_equal(read_idx(folder / names["x_train"]), arrays["x_train"])
    np.savez(tmp_path / "mnist.npz", **arrays)
    a = ImageClassification(source="mnist", path=str(folder), n_train=20, seed=3)
    b = ImageClassification(source="mnist", path=str(tmp_path / "mnist.npz"), n_train=20, seed=3)
    assert a.sha256 == b.sha256 and (a.n_train, a.d_in) == (20, 20)
    assert torch.equal(a.inputs("all"), b.inputs("all")) and torch.equal(a.labels("all"), b.labels("all"))
    assert torch.equal(a.inputs("test"), torch.from_numpy(arrays["x_test"].reshape(12, 20) / 255.0).float())
    train_idx = a._indices[0].numpy()
    assert np.array_equal(a.labels("train").numpy(), arrays["y_train"][train_idx])
    assert task_from_dict(json.loads(json.dumps(a.to_dict()))) == a
    # a different file under the recorded digest is refused
    arrays["x_train"][0, 0, 0] ^= 1
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(GrokinterpError, match="SHA-256"):
        task_from_dict(b.to_dict())


def test_bad_mnist_files_are_clear_errors(tmp_path):
    with pytest.raises(GrokinterpError, match="no such file.*nothing is downloaded"):
        ImageClassification(source="mnist", path=str(tmp_path / "missing.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GrokinterpError, match="lacks train-images-idx3-ubyte"):
        ImageClassification(source="mnist", path=str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GrokinterpError, match="expected an .npz"):
        ImageClassification(source="mnist", path=str(tmp_path / "notes.txt"))
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in gi.tasks.MNIST_IDX_FILES.values():
        (bad / name).write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(GrokinterpError, match="not an idx file"):
        ImageClassification(source="mnist", path=str(bad))
    arrays = _fake_mnist(np.random.default_rng(1))
    np.savez(tmp_path / "partial.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(GrokinterpError, match=r"lacks the arrays \['x_test', 'y_test'\]"):
        ImageClassification(source="mnist", path=str(tmp_path / "partial.npz"))
    objects = dict(arrays, y_test=np.array([object()] * 12, dtype=object))
    np.savez(tmp_path / "pickled.npz", **objects)
    with pytest.raises(GrokinterpError, match="pickled"):
        ImageClassification(source="mnist", path=str(tmp_path / "pickled.npz"))
    np.savez(tmp_path / "ok.npz", **arrays)  # 30 training images, 12 test images
    with pytest.raises(GrokinterpError, match="do not fit"):
        ImageClassification(source="mnist", path=str(tmp_path / "ok.npz"), n_train=31)
    with pytest.raises(GrokinterpError, match="do not fit"):
        ImageClassification(source="mnist", path=str(tmp_path / "ok.npz"), n_train=10, n_test=13)


@pytest.mark.parametrize("task", SMALL[:2], ids=lambda t: t.kind)
def test_modular_analyses_refuse_these_tasks(task):
    with pytest.raises(GrokinterpError, match="needs a modular-arithmetic task"):
        require_modular(task, "the Fourier analysis")
    mod_model = gi.HookedMLP(gi.MLPConfig(p=7, d_embed=8, d_hidden=4))
    for analysis in (gi.key_frequencies, gi.neuron_frequencies):
        with pytest.raises(GrokinterpError, match="modular-arithmetic task"):
            analysis(mod_model, task)
    with pytest.raises(GrokinterpError, match="modular-arithmetic task"):
        gi.restricted_loss(mod_model, task)
    vec = HookedVectorMLP(VectorMLPConfig(d_in=task.d_in, widths=(8,), d_out=task.d_out))
    with pytest.raises(GrokinterpError, match="modular-arithmetic"):
        gi.key_frequencies(vec, task)
    with pytest.raises(GrokinterpError, match="modular-arithmetic model"):
        check_task(vec, gi.ModularArithmetic(7))
    assert fit_task(vec, task) is task
    with pytest.raises(GrokinterpError, match="maps"):
        fit_task(HookedVectorMLP(VectorMLPConfig(d_in=task.d_in + 1, widths=(8,), d_out=task.d_out)), task)
    with pytest.raises(GrokinterpError, match="modular-arithmetic task"):
        fit_task(mod_model, task)


def test_paper_presets_build_and_fit(tmp_path):
    presets = gi.tasks.PAPER_PRESETS
    assert set(presets) == {"tickets_polynomial_regression", "tickets_mnist", "tickets_digits", "sparse_parity"}
    reg = presets["tickets_polynomial_regression"]
    assert dict(reg.model)["widths"] == [48, 500] and reg.train["batch_size"] == 100 and reg.train["lr"] == 1e-2
    mnist = presets["tickets_mnist"]
    assert (mnist.model["init_scale"], mnist.train["weight_decay"], mnist.train["epochs"]) == (8.0, 0.1, 100_000)
    assert set(reg.sources.values()) <= {"paper", "code", "grokinterp"}
    with pytest.raises(GrokinterpError, match="needs \\['path'\\]"):
        mnist.task_dict()
    arrays = _fake_mnist(np.random.default_rng(2), n_train=1000, n_test=10)
    arrays = {k: (np.repeat(np.repeat(v, 6, axis=1), 7, axis=2)[:, :28, :28] if k.startswith("x") else v) for k, v in arrays.items()}
    np.savez(tmp_path / "mnist.npz", **arrays)
    for preset in presets.values():
        given = {"path": str(tmp_path / "mnist.npz")} if preset.needs else {}
        task = task_from_dict(preset.task_dict(**given))
        model = build_model(config_from_dict(dict(preset.model)))
        assert fit_task(model, task) is task
        cfg = gi.TrainConfig(**preset.train)
        assert cfg.to_dict()["lr"] == preset.train["lr"]


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.text(max_size=5),
    st.lists(st.integers(min_value=-3, max_value=50), max_size=3),
)
_BUILDERS = {
    "regression": (lambda **kw: PolynomialRegression(**{"n_train": 5, "n_test": 5, **kw}),
                   ["d", "n_train", "n_test", "seed", "beta_seed", "tolerance"]),
    "parity": (lambda **kw: SparseParity(**{"n_bits": 8, "n_train": 5, "n_test": 5, **kw}),
               ["n_bits", "k", "n_train", "n_test", "seed", "subset_seed", "encoding"]),
    "images": (lambda **kw: ImageClassification(**kw), ["source", "path", "n_train", "n_test", "seed", "sha256"]),
    "vector_mlp": (lambda **kw: VectorMLPConfig(**{"d_in": 4, **kw}),
                   ["d_in", "widths", "d_out", "act", "bias", "init_scale", "init_scales", "seed"]),
}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(_BUILDERS)), data=st.data(), value=_VALUES)
def test_new_tasks_and_config_take_a_value_or_say_what_was_wrong(kind, data, value):
    build, names = _BUILDERS[kind]
    field = data.draw(st.sampled_from(names))
    try:
        build(**{field: value})
    except GrokinterpError as e:
        words = {"n_train": "n_", "n_test": "n_", "sha256": "path"}
        assert words.get(field, field.split("_")[0]) in str(e), (kind, field, value, str(e))
