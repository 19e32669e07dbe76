"""Layout refinement: targets reached whenever placement is possible, in bounds, nouns independent."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numina_core.config import preset
from numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from numina_core.refine import addition_template, disc_template, place_addition, refine_layout

CONFIG = preset("reference")


def blobs(grid: TokenGrid, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    labels = np.zeros(grid.shape, dtype=np.int32)
    for i, (y, x, h, w) in enumerate(boxes, start=1):
        labels[:, y : y + h, x : x + w] = i
    return labels


@st.composite
def layouts(draw):
    grid = TokenGrid(draw(st.integers(1, 3)), draw(st.integers(6, 20)), draw(st.integers(6, 24)))
    labels = {}
    for noun in ("cats", "dogs"):
        frames = np.zeros(grid.shape, dtype=np.int32)
        for f in range(grid.frames):
            for label in range(1, draw(st.integers(0, 4)) + 1):
                y, x = draw(st.integers(0, grid.height - 2)), draw(st.integers(0, grid.width - 2))
                h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
                frames[f, y : y + h, x : x + w] = label
        labels[noun] = frames
    targets = {"cats": draw(st.integers(1, 6)), "dogs": draw(st.integers(1, 6))}
    return Layout(grid, labels), targets


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_refinement_properties(case):
    layout, targets = case
    result = refine_layout(layout, targets, CONFIG)
    refined = result.layout
    for noun, target in targets.items():
        before, after = layout.labels[noun], refined.labels[noun]
        assert after.shape == before.shape  # never writes outside the grid
        counts = refined.counts(noun)
        for f in range(layout.grid.frames):
            if f in result.shortfall.get(noun, []):
                assert counts[f] < target
                # Only a frame without room falls short: no candidate centre has a free template pixel.
                template = addition_template(before[f], CONFIG, layout.grid)
                assert place_addition(after[f] > 0, template, (0.0, 0.0), None, CONFIG) is None
            else:
                assert counts[f] == target
            # Existing instances keep their pixels unless removed; additions land on background only.
            kept = (before[f] > 0) & (after[f] != REMOVED)
            np.testing.assert_array_equal(after[f][kept], before[f][kept])
            assert ((after[f] >= FIRST_ADDED) <= (before[f] == 0)).all()
    # Refining one noun never touches another: refine each alone and compare.
    for noun in targets:
        alone = refine_layout(layout, {noun: targets[noun]}, CONFIG).layout
        np.testing.assert_array_equal(alone.labels[noun], refined.labels[noun])
        other = next(n for n in targets if n != noun)
        np.testing.assert_array_equal(alone.labels[other], layout.labels[other])


def test_removal_takes_the_smallest_instances():
    grid = TokenGrid(1, 12, 12)
    labels = blobs(grid, [(0, 0, 3, 3), (5, 5, 1, 2), (8, 0, 2, 2), (8, 8, 4, 4)])
    refined = refine_layout(Layout(grid, {"cats": labels}), {"cats": 2}, CONFIG).layout.labels["cats"]
    assert set(np.unique(refined[labels == 2])) == {REMOVED}
    assert set(np.unique(refined[labels == 3])) == {REMOVED}
    assert (refined[labels == 1] == 1).all() and (refined[labels == 4] == 4).all()


def test_addition_copies_the_smallest_instance_shape_next_to_the_others():
    grid = TokenGrid(1, 20, 30)
    labels = blobs(grid, [(8, 4, 3, 3), (8, 20, 5, 5)])
    refined = refine_layout(Layout(grid, {"cats": labels}), {"cats": 3}, CONFIG).layout.labels["cats"][0]
    added = refined >= FIRST_ADDED
    assert added.sum() == 9  # a copy of the 3×3 instance
    rows, cols = np.nonzero(added)
    assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
    assert 4 < cols.mean() < 24  # pulled towards the centre of the existing instances


def test_empty_frame_gets_a_disc_at_the_centre():
    grid = TokenGrid(1, 30, 52)
    refined = refine_layout(Layout(grid, {"cats": np.zeros(grid.shape, np.int32)}), {"cats": 1}, CONFIG)
    added = refined.layout.labels["cats"][0] == FIRST_ADDED
    assert added.sum() == disc_template(5).sum() == 81
    rows, cols = np.nonzero(added)
    # Candidate centres run 5, 7, …: of 25 and 27, equally far from x = 26, scan order takes 25.
    assert (rows.mean(), cols.mean()) == (15, 25)


def test_disc_shrinks_to_fit_a_small_grid():
    grid = TokenGrid(1, 5, 7)
    refined = refine_layout(Layout(grid, {"cats": np.zeros(grid.shape, np.int32)}), {"cats": 1}, CONFIG)
    assert refined.layout.counts("cats").tolist() == [1]
    assert not refined.shortfall


def test_full_frame_reports_a_shortfall():
    grid = TokenGrid(2, 4, 4)
    labels = np.ones(grid.shape, dtype=np.int32)
    result = refine_layout(Layout(grid, {"cats": labels}), {"cats": 3}, CONFIG)
    assert result.shortfall == {"cats": [0, 1]}
    assert result.layout.counts("cats").tolist() == [1, 1]


def test_temporal_term_keeps_additions_still_across_frames():
    grid = TokenGrid(5, 24, 40)
    labels = np.zeros(grid.shape, dtype=np.int32)
    for f in range(grid.frames):  # the existing instance drifts right; the addition should not jump
        labels[f, 10:13, 8 + 2 * f : 11 + 2 * f] = 1
    refined = refine_layout(Layout(grid, {"cats": labels}), {"cats": 2}, CONFIG).layout.labels["cats"]
    centres = [np.argwhere(refined[f] >= FIRST_ADDED).mean(axis=0) for f in range(grid.frames)]
    moves = [np.abs(centres[f + 1] - centres[f]).max() for f in range(grid.frames - 1)]
    assert max(moves) <= 2
    no_temporal = refine_layout(Layout(grid, {"cats": labels}), {"cats": 2},
                                preset("reference", lambda_temporal=0.0)).layout.labels["cats"]
    free = [np.argwhere(no_temporal[f] >= FIRST_ADDED).mean(axis=0) for f in range(grid.frames)]
    assert sum(np.abs(free[f + 1] - free[f]).max() for f in range(grid.frames - 1)) >= sum(moves)


def test_bad_targets_are_rejected():
    grid = TokenGrid(1, 4, 4)
    layout = Layout(grid, {"cats": np.zeros(grid.shape, np.int32)})
    with pytest.raises(ValueError, match="at least 1"):
        refine_layout(layout, {"cats": 0}, CONFIG)
    with pytest.raises(ValueError, match="'dogs' has no layout"):
        refine_layout(layout, {"dogs": 1}, CONFIG)
