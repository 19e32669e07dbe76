"""The Layout Editor's edits: the output equals what the artist drew, compared instance by instance as pixel
sets on the token grid, for add / move / resize / delete on every frame and on one frame."""
import json

import numpy as np
import pytest

from numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from numina_core.layout_edits import apply_edits, parse_edits, rasterize

GRID = TokenGrid(3, 12, 16)


def pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    """{(x, y)} of a [H, W] mask."""
    ys, xs = np.nonzero(mask)
    return set(zip(xs.tolist(), ys.tolist()))


def rect(x0: int, y0: int, x1: int, y1: int) -> set[tuple[int, int]]:
    return {(x, y) for x in range(x0, x1) for y in range(y0, y1)}


def instances(frame: np.ndarray) -> dict[int, set[tuple[int, int]]]:
    """Every label of a frame (instances, and −1 for removed) → its pixel set."""
    return {int(label): pixels(frame == label) for label in np.unique(frame) if label != 0}


def base_layout() -> Layout:
    """discs: 1 (3×3 at x 1–3) touching 2 (2×3 at x 4–5) in every frame; 3 (2×2) one token further right per
    frame. squares: one instance 1."""
    discs = np.zeros(GRID.shape, dtype=np.int32)
    squares = np.zeros(GRID.shape, dtype=np.int32)
    for f in range(GRID.frames):
        discs[f, 1:4, 1:4] = 1
        discs[f, 1:4, 4:6] = 2
        discs[f, 7:9, 8 + f:10 + f] = 3
        squares[f, 9:11, 1:3] = 1
    return Layout(GRID, {"discs": discs, "squares": squares}, {"discs": 3, "squares": 1})


def edits(*entries: dict) -> list:
    return parse_edits(json.dumps(list(entries)))


def test_rasterized_ellipse_is_the_disc_of_token_centres():
    disc = pixels(rasterize("ellipse", (2, 2, 7, 7), GRID.height, GRID.width))
    assert disc == {(4 + dx, 4 + dy) for dx in range(-2, 3) for dy in range(-2, 3) if dx * dx + dy * dy <= 6.25}
    assert len(disc) == 21
    assert pixels(rasterize("box", (2, 3, 5, 4), GRID.height, GRID.width)) == rect(2, 3, 5, 4)
    assert pixels(rasterize("ellipse", (6.2, 6.2, 6.4, 6.4), GRID.height, GRID.width)) == {(6, 6)}


@pytest.mark.parametrize("frame", [None, 1])
def test_add_paints_the_drawn_shape_as_one_new_instance(frame):
    base = base_layout()
    result = apply_edits(base, edits({"op": "add", "id": "a", "noun": "discs", "frame": frame, "shape": "box",
                                      "box": [10, 1, 14, 4]}))
    assert result.stale == []
    label = result.labels_of["a"]
    assert label == FIRST_ADDED
    for f in range(GRID.frames):
        before, after = instances(base.labels["discs"][f]), instances(result.layout.labels["discs"][f])
        if frame is None or f == frame:
            assert after == {**before, label: rect(10, 1, 14, 4)}
        else:
            assert after == before
    assert result.layout.counts("discs").tolist() == ([4, 4, 4] if frame is None else [3, 4, 3])
    assert np.array_equal(result.layout.labels["squares"], base.labels["squares"])
    assert np.array_equal(base.labels["discs"], base_layout().labels["discs"]), "the input layout is not mutated"


@pytest.mark.parametrize("frame", [None, 2])
def test_delete_removes_a_found_instance_so_guidance_suppresses_it(frame):
    base = base_layout()
    result = apply_edits(base, edits({"op": "delete", "id": "d", "noun": "discs", "frame": frame, "target": 1}))
    assert result.stale == []
    for f in range(GRID.frames):
        after = instances(result.layout.labels["discs"][f])
        if frame is None or f == frame:
            # The touching instance 2 keeps every pixel: edits go by label, not by connected component.
            assert after == {REMOVED: rect(1, 1, 4, 4), 2: rect(4, 1, 6, 4), 3: rect(8 + f, 7, 10 + f, 9)}
        else:
            assert after == instances(base.labels["discs"][f])
    assert result.layout.counts("discs").tolist() == ([2, 2, 2] if frame is None else [3, 3, 2])


@pytest.mark.parametrize("frame", [None, 0])
def test_move_is_delete_plus_add_of_the_same_pixels(frame):
    base = base_layout()
    # Instance 2 (x 4–5, y 1–3) moved 6 right and 3 down; its bounding box is the same in every frame.
    result = apply_edits(base, edits({"op": "move", "id": "m", "noun": "discs", "frame": frame, "target": 2,
                                      "box": [10, 4, 12, 7]}))
    assert result.stale == []
    label = result.labels_of["m"]
    assert label >= FIRST_ADDED
    for f in range(GRID.frames):
        after = instances(result.layout.labels["discs"][f])
        if frame is None or f == frame:
            assert after == {1: rect(1, 1, 4, 4), REMOVED: rect(4, 1, 6, 4), label: rect(10, 4, 12, 7),
                             3: rect(8 + f, 7, 10 + f, 9)}
        else:
            assert after == instances(base.labels["discs"][f])
    assert result.layout.counts("discs").tolist() == [3, 3, 3]


def test_move_on_all_frames_shifts_each_frame_by_the_same_offset():
    base = base_layout()
    # Instance 3 spans x 8–11 over the frames (x 8–9, 9–10, 10–11): its union box is [8, 7, 12, 9].
    result = apply_edits(base, edits({"op": "move", "id": "m", "noun": "discs", "frame": None, "target": 3,
                                      "box": [2, 5, 6, 7]}))
    label = result.labels_of["m"]
    for f in range(GRID.frames):
        after = instances(result.layout.labels["discs"][f])
        assert after[label] == rect(2 + f, 5, 4 + f, 7)
        assert after[REMOVED] == rect(8 + f, 7, 10 + f, 9)


@pytest.mark.parametrize("frame", [None, 1])
def test_resize_scales_the_instance_onto_the_new_box(frame):
    base = base_layout()
    result = apply_edits(base, edits({"op": "move", "id": "r", "noun": "discs", "frame": frame, "target": 1,
                                      "box": [1, 1, 7, 7]}))
    label = result.labels_of["r"]
    for f in range(GRID.frames):
        after = instances(result.layout.labels["discs"][f])
        if frame is None or f == frame:
            # The grown instance covers 2's pixels inside its box (drawn last wins); 2 keeps the rest, none merge.
            assert after[label] == rect(1, 1, 7, 7)
            assert REMOVED not in after
            assert 2 not in after
            assert after[3] == rect(8 + f, 7, 10 + f, 9)
        else:
            assert after == instances(base.labels["discs"][f])
    shrunk = apply_edits(base, edits({"op": "move", "id": "r", "noun": "discs", "frame": frame, "target": 1,
                                      "box": [1, 1, 2, 2]}))
    after = instances(shrunk.layout.labels["discs"][1])
    assert after[shrunk.labels_of["r"]] == {(1, 1)}
    assert after[REMOVED] == rect(1, 1, 4, 4) - {(1, 1)}


def test_added_instances_are_moved_and_deleted_by_their_edit_id_and_vacate_to_background():
    base = base_layout()
    result = apply_edits(base, edits(
        {"op": "add", "id": "a", "noun": "discs", "frame": None, "shape": "box", "box": [10, 1, 12, 3]},
        {"op": "move", "id": "m", "noun": "discs", "frame": 0, "target": "a", "box": [12, 1, 14, 3]},
        {"op": "delete", "id": "d", "noun": "discs", "frame": 2, "target": "a"},
    ))
    assert result.stale == []
    added, moved = result.labels_of["a"], result.labels_of["m"]
    assert moved == added + 1
    frames = [instances(result.layout.labels["discs"][f]) for f in range(GRID.frames)]
    assert frames[0][moved] == rect(12, 1, 14, 3) and added not in frames[0]
    assert frames[1][added] == rect(10, 1, 12, 3)
    assert added not in frames[2] and REMOVED not in frames[2]
    assert result.layout.counts("discs").tolist() == [4, 4, 3]


def test_edits_that_no_longer_apply_are_reported_and_skipped():
    base = base_layout()
    result = apply_edits(base, edits(
        {"op": "delete", "id": "gone", "noun": "discs", "frame": None, "target": 7},
        {"op": "move", "id": "x", "noun": "cats", "frame": None, "target": 1, "box": [0, 0, 2, 2]},
        {"op": "delete", "id": "late", "noun": "discs", "frame": 5, "target": 1},
        {"op": "add", "id": "out", "noun": "discs", "frame": 0, "shape": "box", "box": [30, 30, 40, 40]},
        {"op": "delete", "id": "chain", "noun": "discs", "frame": 0, "target": "out"},
        {"op": "delete", "id": "ok", "noun": "discs", "frame": 0, "target": 3},
    ))
    assert len(result.stale) == 5
    assert "instance 7" in result.stale[0] and "no longer exists" in result.stale[0]
    assert "no noun 'cats'" in result.stale[1]
    assert "frames 0–2" in result.stale[2]
    assert "outside the token grid" in result.stale[3]
    assert "edit 'out' made no instance" in result.stale[4]
    assert result.layout.counts("discs").tolist() == [2, 3, 3]


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"op": "add"}', "JSON list"),
    ('[{"op": "paint", "noun": "discs"}]', "op 'paint'"),
    ('[{"op": "add", "noun": "discs", "box": [3, 3, 1, 5]}]', "empty box"),
    ('[{"op": "add", "noun": "discs"}]', "needs a box"),
    ('[{"op": "delete", "noun": "discs", "frame": 0}]', "needs a target"),
    ('[{"op": "delete", "noun": "discs", "frame": "2", "target": 1}]', "frame '2'"),
])
def test_malformed_edits_are_refused_with_the_entry_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_edits(text)


def test_no_edits_is_the_input_layout():
    base = base_layout()
    assert parse_edits("") == [] and parse_edits("[]") == []
    result = apply_edits(base, [])
    assert all(np.array_equal(result.layout.labels[n], base.labels[n]) for n in base.nouns)
