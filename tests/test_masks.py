"""Mask helpers: exact keep counts, deterministic tie-breaking, prune-ratio validation, comparison."""

import math

import pytest
import torch

import grokinterp as gi
from grokinterp.tickets import (
    check_prune_ratio,
    compare_masks,
    density,
    load_mask,
    magnitude_mask,
    mask_from_scores,
    n_keep,
    save_mask,
)


def test_n_keep_is_exact_on_the_decimal_ratio():
    assert n_keep(10, 0.7) == 3  # float 1 - 0.7 = 0.30000000000000004 would not matter, 0.9 * 10 would
    assert n_keep(10, 0.9) == 1
    assert n_keep(7, 0.0) == 7
    assert n_keep(5, 0.5) == 2  # half to even: round(2.5) = 2
    assert n_keep(7, 0.5) == 4  # round(3.5) = 4
    assert n_keep(115_000, 0.6) == 46_000


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), True, "0.5", None])
def test_prune_ratio_outside_unit_interval_raises(bad):
    with pytest.raises(gi.GrokinterpError, match=r"prune_ratio"):
        check_prune_ratio(bad)


def test_every_entry_point_rejects_a_bad_prune_ratio(fast_mlp):
    with pytest.raises(gi.GrokinterpError, match=r"\[0, 1\)"):
        magnitude_mask(fast_mlp, 1.0)
    with pytest.raises(gi.GrokinterpError, match=r"\[0, 1\)"):
        mask_from_scores({"a": torch.ones(3)}, -0.2)


def test_ties_go_to_the_earliest_weights():
    scores = {"a": torch.zeros(2, 2), "b": torch.zeros(3)}
    mask = mask_from_scores(scores, 0.5)  # keeps round(3.5) = 4 of 7: all of "a", none of "b"
    assert mask["a"].all() and not mask["b"].any()
    layer = mask_from_scores(scores, 0.5, scope="layer")  # a: 2 of 4, b: round(1.5) = 2 of 3
    assert layer["a"].tolist() == [[True, True], [False, False]]
    assert layer["b"].tolist() == [True, True, False]


def test_highest_scores_are_kept_across_tensors():
    scores = {"a": torch.tensor([[5.0, 1.0], [0.5, 4.0]]), "b": torch.tensor([3.0, 2.0, 0.0])}
    mask = mask_from_scores(scores, 0.5)  # keep 4: 5, 4, 3, 2
    assert mask["a"].tolist() == [[True, False], [False, True]]
    assert mask["b"].tolist() == [True, True, False]
    assert density(mask) == pytest.approx(4 / 7)


def test_nan_scores_raise():
    with pytest.raises(gi.GrokinterpError, match="NaN"):
        mask_from_scores({"a": torch.tensor([1.0, math.nan])}, 0.5)


def test_bad_scope_raises(fast_mlp):
    with pytest.raises(gi.GrokinterpError, match="scope"):
        magnitude_mask(fast_mlp, 0.5, scope="row")


def test_compare_masks_counts_on_a_hand_made_pair():
    a = {"x": torch.tensor([1, 1, 0, 0], dtype=torch.bool), "y": torch.tensor([1, 0], dtype=torch.bool)}
    b = {"x": torch.tensor([0, 1, 1, 0], dtype=torch.bool), "y": torch.tensor([1, 0], dtype=torch.bool)}
    table = compare_masks(a, b)
    assert table.loc["x", ["kept_both", "kept_either", "changed"]].tolist() == [1, 3, 2]
    assert table.loc["x", "jaccard_distance"] == pytest.approx(2 / 3)
    assert table.loc["y", "jaccard_distance"] == 0.0
    assert table.loc["overall", ["numel", "kept_both", "kept_either"]].tolist() == [6, 2, 4]
    assert table.loc["overall", "jaccard_distance"] == pytest.approx(0.5)


def test_compare_masks_rejects_mismatched_masks():
    a = {"x": torch.ones(3, dtype=torch.bool)}
    with pytest.raises(gi.MaskError, match="different tensors"):
        compare_masks(a, {"z": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(gi.MaskError, match="shape"):
        compare_masks(a, {"x": torch.ones(4, dtype=torch.bool)})


def test_pruned_mask_round_trips_through_safetensors(fast_mlp, tmp_path):
    mask = magnitude_mask(fast_mlp, 0.6)
    back = load_mask(save_mask(mask, tmp_path / "m.safetensors"))
    assert back.keys() == mask.keys() and all(torch.equal(back[k], mask[k]) for k in mask)


def test_mask_digest_names_the_kept_entries_whatever_the_order():
    from grokinterp.masks import mask_digest, parameters_of

    model = gi.HookedMLP(gi.MLPConfig(7, d_embed=6, d_hidden=4))
    mask = gi.magnitude_mask(model, 0.5)
    digest = mask_digest(mask)
    assert digest == mask_digest(dict(reversed(list(mask.items()))))
    assert digest == mask_digest({n: m.to(torch.uint8) for n, m in mask.items()})
    flipped = {n: m.clone() for n, m in mask.items()}
    flipped["W_in"][0, 0] = ~flipped["W_in"][0, 0]
    assert mask_digest(flipped) != digest
    assert mask_digest({"W_in": mask["W_in"]}) != digest
    # masks work on a model or on its parameters by name alike
    assert parameters_of(model).keys() == gi.models.named_weights(model).keys()
    assert gi.tickets.check_mask(parameters_of(model), mask).keys() == mask.keys()
