import pytest
import torch

from grokinterp import GrokinterpError, ModularArithmetic


def test_reference_sizes():
    assert ModularArithmetic(67, pairs="a>b").n_pairs == 2211
    assert ModularArithmetic(67, pairs="a>=b").n_pairs == 2278
    nanda = ModularArithmetic(113, frac_train=0.3)
    assert (len(nanda.train_inputs), len(nanda.test_inputs)) == (3830, 8939)
    assert len(ModularArithmetic(67, pairs="a>=b", frac_train=0.4).train_inputs) == 911


@pytest.mark.parametrize(
    "op,f",
    [
        ("add", lambda a, b, p: (a + b) % p),
        ("sub", lambda a, b, p: (a - b) % p),
        ("mul", lambda a, b, p: (a * b) % p),
        ("div", lambda a, b, p: next(c for c in range(p) if (c * b) % p == a)),
        ("x2+y2", lambda a, b, p: (a * a + b * b) % p),
        ("x2+xy+y2", lambda a, b, p: (a * a + a * b + b * b) % p),
        ("x3+xy", lambda a, b, p: (a**3 + a * b) % p),
    ],
)
def test_labels_match_brute_force(op, f):
    task = ModularArithmetic(13, op=op)
    pairs = task.all_pairs.tolist()
    labels = task.label(task.all_pairs).tolist()
    assert labels == [f(a, b, 13) for a, b in pairs]


def test_div_excludes_zero_divisor_and_needs_prime():
    task = ModularArithmetic(7, op="div")
    assert task.n_pairs == 7 * 6 and (task.all_pairs[:, 1] != 0).all()
    for op in ("mul", "div"):
        with pytest.raises(GrokinterpError, match="prime"):
            ModularArithmetic(12, op=op)
    ModularArithmetic(12, op="add")  # composite p is fine for addition


def test_pair_sets_and_bad_arguments():
    t = ModularArithmetic(11, pairs="a>b")
    assert (t.all_pairs[:, 0] > t.all_pairs[:, 1]).all()
    with pytest.raises(GrokinterpError, match="unknown op"):
        ModularArithmetic(11, op="pow")
    with pytest.raises(GrokinterpError, match="frac_train"):
        ModularArithmetic(11, frac_train=1.0)
    with pytest.raises(GrokinterpError, match="pairs"):
        ModularArithmetic(11, pairs="a<b")
    with pytest.raises(GrokinterpError, match=r"\[0, 11\)"):
        t.label(torch.tensor([[0, 11]]))


def test_split_is_seeded_disjoint_and_complete():
    a, b, c = (ModularArithmetic(31, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.train_inputs, b.train_inputs)
    assert not torch.equal(a.train_inputs, c.train_inputs)
    both = torch.cat([a.train_indices, a.test_indices]).sort().values
    assert torch.equal(both, torch.arange(a.n_pairs))
    assert torch.equal(a.train_labels, a.label(a.train_inputs))


def test_explicit_split_round_trips():
    t = ModularArithmetic(7, train_index=(5, 1, 3))
    assert t.train_indices.tolist() == [1, 3, 5]
    assert ModularArithmetic.from_dict(t.to_dict()) == t
    with pytest.raises(GrokinterpError, match="distinct"):
        ModularArithmetic(7, train_index=(1, 1))


def test_tokens_and_grid():
    t = ModularArithmetic(5)
    toks = t.tokens("train")
    assert toks.shape[1] == 3 and (toks[:, 2] == 5).all()
    assert torch.equal(t.tokens("train", eq_token=False), t.train_inputs)
    g = t.grid_inputs
    assert g[3 * 5 + 4].tolist() == [3, 4]


def test_modular_arithmetic_is_a_task_and_round_trips_through_its_description():
    from grokinterp.tasks import Task, is_task, require_modular, task_from_dict

    task = ModularArithmetic(13, "sub", "a>b", 0.5, seed=3)
    assert isinstance(task, Task) and is_task(task) and not is_task(ModularArithmetic)
    assert task.kind == "modular_arithmetic" and task.loss == "cross_entropy"
    again = task_from_dict(task.to_dict())
    assert again == task and torch.equal(again.inputs("train"), task.inputs("train"))
    assert task_from_dict({**task.to_dict(), "kind": "modular_arithmetic"}) == task
    with pytest.raises(GrokinterpError, match="unknown task kind 'parity'"):
        task_from_dict({"kind": "parity"})
    assert require_modular(task) is task
    with pytest.raises(GrokinterpError, match="needs a modular-arithmetic task"):
        require_modular(_NotModular())
    with pytest.raises(GrokinterpError, match="grokinterp task"):
        require_modular("add")


class _NotModular:
    kind, loss, seed = "regression", "mse", 0

    def inputs(self, split="train"):
        return torch.zeros(3, 2)

    def labels(self, split="train"):
        return torch.zeros(3)

    def to_dict(self):
        return {"kind": self.kind}


def test_split_rules_by_name():
    import random

    default = ModularArithmetic(13, frac_train=0.4, seed=5)
    assert "split" not in default.to_dict()  # the default rule is not written: old task dicts and run keys stay
    g = torch.Generator().manual_seed(5)
    assert default.train_indices.tolist() == sorted(torch.randperm(169, generator=g)[:67].tolist())
    shuffled = ModularArithmetic(13, frac_train=0.4, seed=5, split="python_shuffle")
    order = list(range(169))
    random.seed(5)
    random.shuffle(order)
    assert shuffled.train_indices.tolist() == sorted(order[:67])
    assert shuffled.to_dict()["split"] == "python_shuffle"
    assert ModularArithmetic.from_dict(shuffled.to_dict()) == shuffled
    torch.manual_seed(5)
    demo = ModularArithmetic(13, frac_train=0.4, seed=5, split="torch_randperm")
    assert demo.train_indices.tolist() == sorted(torch.randperm(169)[:67].tolist())
    half = ModularArithmetic(13, pairs="a>b", frac_train=0.5, seed=2, split="python_shuffle")
    order = list(range(half.n_pairs))
    random.Random(2).shuffle(order)
    assert half.train_indices.tolist() == sorted(order[: half.n_train])
    with pytest.raises(GrokinterpError, match="split must be one of"):
        ModularArithmetic(13, split="numpy")


def test_the_codes_pair_set_a_le_b_is_the_mirror_of_a_ge_b():
    le, ge = ModularArithmetic(11, "sub", "a<=b", 0.4), ModularArithmetic(11, "sub", "a>=b", 0.4)
    assert le.n_pairs == ge.n_pairs == 11 * 12 // 2
    assert bool((le.all_pairs[:, 0] <= le.all_pairs[:, 1]).all())
    assert {tuple(x) for x in le.all_pairs.tolist()} == {(b, a) for a, b in ge.all_pairs.tolist()}
    a, b = le.all_pairs.T
    assert torch.equal(le.labels("all"), (a - b) % 11)  # a different data set from the mirror for sub
    with pytest.raises(GrokinterpError, match="'a<=b'"):
        ModularArithmetic(11, "add", "b<a", 0.4)
