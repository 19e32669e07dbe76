"""Previews and the layout ⇄ mask conversions: empty, full and half masks, pixel size, video frames."""
import numpy as np
import pytest

from numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from numina_core.preview import (layout_from_masks, layout_preview, layout_to_mask, latent_to_video_frames,
                                 mask_to_token_grid, video_frame_count, video_to_latent_frames)

GRID = TokenGrid(3, 6, 8)


def partition(labels: np.ndarray) -> set[frozenset]:
    return {frozenset(map(tuple, np.argwhere(labels == v))) for v in np.unique(labels) if v != 0}


def separate_instances() -> np.ndarray:
    labels = np.zeros(GRID.shape, dtype=np.int32)
    labels[:, 0:2, 0:2] = 1
    labels[:, 3:5, 4:7] = 2
    labels[1, 0, 7] = 3
    return labels


@pytest.mark.parametrize("scale", [1, 16])
def test_layout_mask_round_trip_is_lossless(scale):
    labels = separate_instances()
    mask = np.repeat(np.repeat(layout_to_mask(labels), scale, axis=1), scale, axis=2)
    back = layout_from_masks({"cat": mask}, GRID).labels["cat"]
    for f in range(GRID.frames):
        assert partition(back[f]) == partition(labels[f])


def test_empty_full_and_half_masks():
    empty = layout_from_masks({"cat": np.zeros((3, 6, 8))}, GRID)
    full = layout_from_masks({"cat": np.ones((3, 6, 8))}, GRID)
    half = np.zeros((3, 6, 8))
    half[:, :, :4] = 1
    halved = layout_from_masks({"cat": half}, GRID)
    assert empty.counts("cat").tolist() == [0, 0, 0]
    assert full.counts("cat").tolist() == [1, 1, 1] and (full.labels["cat"] == 1).all()
    assert halved.counts("cat").tolist() == [1, 1, 1] and (halved.labels["cat"][:, :, :4] == 1).all()
    assert (halved.labels["cat"][:, :, 4:] == 0).all()


def test_edited_mask_is_read_against_its_base_layout():
    base = separate_instances()
    edited = layout_to_mask(base).astype(bool)
    edited[:, 0:2, 0:2] = False       # the artist erased instance 1
    edited[:, 4:6, 0:2] = True        # and painted a new one
    layout = layout_from_masks({"cat": edited}, GRID, base=Layout(GRID, {"cat": base}, {"cat": 2}))
    labels = layout.labels["cat"]
    assert (labels[:, 0:2, 0:2] == REMOVED).all()
    assert (labels[:, 4:6, 0:2] >= FIRST_ADDED).all()
    assert (labels[:, 3:5, 4:7] > 0).all() and (labels[:, 3:5, 4:7] < FIRST_ADDED).all()
    assert layout.targets == {"cat": 2}


def test_masks_of_the_wrong_size_are_rejected_with_the_expected_sizes():
    with pytest.raises(ValueError, match="token grid 6×8 or a whole multiple"):
        mask_to_token_grid(np.zeros((3, 7, 8)), GRID)
    with pytest.raises(ValueError, match="needs 3 latent frames, 9 video frames"):
        mask_to_token_grid(np.zeros((4, 6, 8)), GRID)


def test_video_frames_align_with_latent_frames():
    assert video_frame_count(21) == 81
    frames = np.arange(3)[:, None, None] * np.ones((3, 2, 2))
    video = latent_to_video_frames(frames)
    assert video.shape[0] == 9 and video[:, 0, 0].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    np.testing.assert_array_equal(video_to_latent_frames(video), frames)
    single = mask_to_token_grid(np.ones((1, 6, 8)), GRID)
    assert single.shape == GRID.shape and single.all()
    from_video = mask_to_token_grid(np.zeros((9, 6, 8)), GRID)
    assert from_video.shape == GRID.shape


def test_preview_colours_instances_and_outlines_additions():
    labels = np.zeros((1, 8, 8), dtype=np.int32)
    labels[0, 1:3, 1:3] = 1
    labels[0, 4:8, 4:8] = FIRST_ADDED
    labels[0, 0, 7] = REMOVED
    rgb = layout_preview(labels, spatial_factor=16)
    assert rgb.shape == (1, 128, 128, 3) and rgb.dtype == np.float32
    assert (rgb[0, 0:16, 0:16] == 0).all()                       # background black
    assert rgb[0, 20, 20].max() > 0.5                              # detected instance coloured
    np.testing.assert_allclose(rgb[0, 64, 100], [1, 1, 1])         # outline of the addition
    assert rgb[0, 96, 96].max() > 0.5 and not np.allclose(rgb[0, 96, 96], 1)  # its inside keeps its colour
    np.testing.assert_allclose(rgb[0, 5, 120], [0.25, 0.25, 0.25])  # removed: grey
