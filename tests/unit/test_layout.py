"""Countable layout on synthetic attention with known instance structure."""
import numpy as np
import pytest
from sklearn.cluster import MeanShift, estimate_bandwidth

from numina_core.capture import AttentionCapture, summarize_cross_attention, summarize_self_attention
from numina_core.config import preset
from numina_core.grid import TokenGrid
from numina_core.head_selection import select_heads
from numina_core.layout import (build_countable_layout, estimate_meanshift_bandwidth, flat_mean_shift, focus_mask,
                                focus_owners, instances_from_proposals)
from devtools.synthetic_attention import cross_attention_qk, place_discs, self_attention_qk

GRID = TokenGrid(2, 30, 52)


def synthetic_selection(instance_maps: dict[str, np.ndarray], config, heads=("noise", "separable")):
    all_instances = np.zeros(GRID.shape, dtype=np.int32)
    for maps in instance_maps.values():
        all_instances = np.where(maps > 0, maps + all_instances.max(), all_instances)
    qk = self_attention_qk(all_instances, GRID, list(heads), 32, seed=7)
    columns = {noun: [3 + 2 * i, 4 + 2 * i] for i, noun in enumerate(instance_maps)}
    q, k = cross_attention_qk(instance_maps, GRID, len(heads), 32, 512, columns, seed=7)
    capture = AttentionCapture(GRID, summarize_self_attention(qk, qk, len(heads), GRID, 0),
                               summarize_cross_attention(q, k, len(heads), GRID, 0, columns))
    return select_heads(capture, config)


def synthetic_layout(instance_maps: dict[str, np.ndarray], config, heads=("noise", "separable")):
    return build_countable_layout(synthetic_selection(instance_maps, config, heads), config)


@pytest.mark.parametrize("count", range(1, 9))
def test_improved_layout_counts_k_instances(count):
    instances = place_discs(count, GRID, 4, np.random.default_rng(count))
    layout = synthetic_layout({"cats": instances}, preset("improved"))
    assert layout.counts("cats").tolist() == [count] * GRID.frames


@pytest.mark.parametrize("count", [1, 2, 3])
def test_reference_layout_counts_few_instances(count):
    # The reference clusters rank-3 PCA colours with one bandwidth for the frame: beyond about three
    # small instances, instances of similar colour merge (as the testbed issue measured on a real model).
    instances = place_discs(count, GRID, 4, np.random.default_rng(count))
    layout = synthetic_layout({"cats": instances}, preset("reference"))
    assert layout.counts("cats").tolist() == [count] * GRID.frames


def test_two_nouns_are_counted_separately():
    rng = np.random.default_rng(11)
    both = place_discs(5, GRID, 4, rng)
    cats = np.where(both <= 2, both, 0)
    dogs = np.where(both > 2, both - 2, 0)
    layout = synthetic_layout({"cats": cats, "dogs": dogs}, preset("improved"))
    assert layout.counts("cats").tolist() == [2, 2]
    assert layout.counts("dogs").tolist() == [3, 3]
    assert not ((layout.labels["cats"] > 0) & (dogs > 0)).any()


@pytest.mark.parametrize("ownership", ["strongest", "strongest_relative"])
def test_owned_focus_keeps_a_lone_noun_off_the_other_nouns_objects(ownership):
    """One cat next to four dogs, the cat's map also lighting the dogs at 60 % of the dogs' own response (what a
    real model's map does): shared focus counts the dogs as cats too; owned focus gives each object to the noun
    that attends to it most, and the dogs keep theirs."""
    both = place_discs(5, GRID, 4, np.random.default_rng(5))
    cat, dogs = np.where(both == 1, 1, 0), np.where(both > 1, both - 1, 0)
    selection = synthetic_selection({"cat": cat, "dogs": dogs}, preset("improved"))
    selection.cross_maps["cat"] = selection.cross_maps["cat"] + 0.6 * selection.cross_maps["dogs"]
    shared = build_countable_layout(selection, preset("improved", focus_ownership="shared"))
    owned = build_countable_layout(selection, preset("improved", focus_ownership=ownership))
    assert shared.counts("cat").tolist() == [5, 5]
    assert owned.counts("cat").tolist() == [1, 1]
    assert owned.counts("dogs").tolist() == [4, 4]
    assert not ((owned.labels["cat"] > 0) & (dogs > 0)).any()


def test_focus_owners_give_each_pixel_to_the_strongest_map_and_one_noun_everything():
    weak = np.array([[1.0, 2.0], [0.5, 0.0]])
    strong = np.array([[3.0, 2.0], [0.25, 0.0]])
    owners = focus_owners({"weak": weak, "strong": strong}, "strongest")
    assert owners["weak"].tolist() == [[False, True], [True, True]]     # ties go to both
    assert owners["strong"].tolist() == [[True, True], [False, True]]
    relative = focus_owners({"weak": weak, "strong": strong}, "strongest_relative")   # over peaks 2 and 3
    assert relative["weak"].tolist() == [[False, True], [True, True]]
    assert relative["strong"].tolist() == [[True, False], [False, True]]
    assert focus_owners({"weak": weak}, "strongest") is None
    assert focus_owners({"weak": weak, "strong": strong}, "shared") is None


def test_flat_mean_shift_equals_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(3):
        points = np.concatenate([rng.normal(c, 0.07, (150, 5)) for c in rng.random((4, 5))])
        bandwidth = estimate_bandwidth(points, quantile=0.2, random_state=0)
        ours = flat_mean_shift(points, bandwidth)
        theirs = MeanShift(bandwidth=bandwidth, bin_seeding=True).fit_predict(points)
        np.testing.assert_array_equal(ours, theirs)


def test_bandwidth_estimate_equals_sklearn():
    rng = np.random.default_rng(1)
    for size, quantile in [(1560, 0.2), (300, 0.3), (40, 0.01)]:
        points = rng.random((size, 5))
        expected = estimate_bandwidth(points, quantile=quantile, n_samples=min(1000, size), random_state=0)
        assert estimate_meanshift_bandwidth(points, quantile, min(1000, size)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5])
def test_focus_mask_equals_dbscan_non_noise_points(density):
    from sklearn.cluster import DBSCAN

    config = preset("reference")
    rng = np.random.default_rng(int(density * 100))
    cross = rng.random((30, 52)) * (rng.random((30, 52)) < density)
    cross[0, 0] = 1.0
    kept = cross >= config.cross_attn_peak_ratio * cross.max()
    points = np.argwhere(kept).astype(float)
    labels = DBSCAN(eps=config.dbscan_eps, min_samples=config.dbscan_min_samples).fit_predict(points)
    expected = np.zeros_like(kept)
    expected[tuple(points[labels >= 0].astype(int).T)] = True
    np.testing.assert_array_equal(focus_mask(cross, config), expected)


def test_focus_mask_threshold_and_isolated_pixels():
    config = preset("reference")
    cross = np.full((20, 20), 0.001)
    cross[5:10, 5:10] = 1.0
    cross[15, 15] = 0.5  # isolated: DBSCAN noise
    mask = focus_mask(cross, config)
    assert mask[5:10, 5:10].all() and mask.sum() == 25
    assert not focus_mask(np.zeros((4, 4)), config).any()


def test_instances_need_tau_overlap():
    proposals = np.zeros((4, 4), dtype=np.int64)
    proposals[0, :] = 1
    proposals[1, :] = 2
    focus = np.zeros((4, 4), dtype=bool)
    focus[0, :1] = True   # 1 of 4 pixels of proposal 1: 0.25 ≥ 0.2
    focus[1, :0] = True   # none of proposal 2
    labels = instances_from_proposals(proposals, focus, preset("reference"))
    assert set(np.unique(labels)) == {0, 1}
    assert (labels[0] == 1).all()
    stricter = instances_from_proposals(proposals, focus, preset("reference", semantic_overlap_tau=0.3))
    assert not stricter.any()
