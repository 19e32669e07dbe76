"""Previews and the layout ⇄ mask conversions: empty, full and half masks, pixel size, video frames, the
pixels an artist reads (colour families, crosses, dashed outlines, captions), and lossless Mask Editor edits."""
import numpy as np
import pytest

from numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from numina_core.preview import (ADDED_COLOUR, BACKDROP, CAPTION_LINE, CROSS_COLOUR, SHEET_INSTANCE_ALPHA, count_report,
                                 edit_sheet, edit_sheet_layout, layout_frame_images, layout_from_masks,
                                 layout_to_mask, latent_to_video_frames, mask_to_token_grid, read_edit_sheet,
                                 upscale_frames, video_frame_count)

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
    single = mask_to_token_grid(np.ones((1, 6, 8)), GRID)
    assert single.shape == GRID.shape and single.all()
    from_video = mask_to_token_grid(np.zeros((9, 6, 8)), GRID)
    assert from_video.shape == GRID.shape


TOUCHING = TokenGrid(3, 8, 12)


def four_touching_discs() -> np.ndarray:
    """Four 2×2 instances in a row, each touching the next, in every frame."""
    labels = np.zeros(TOUCHING.shape, dtype=np.int32)
    for label in range(1, 5):
        labels[:, 2:4, 2 * label:2 * label + 2] = label
    return labels


def two_noun_layout() -> Layout:
    discs = np.zeros((1, 8, 8), dtype=np.int32)
    discs[0, 1:3, 1:3] = 1
    discs[0, 1:3, 3:5] = 2
    discs[0, 5:7, 1:3] = REMOVED
    squares = np.zeros((1, 8, 8), dtype=np.int32)
    squares[0, 4:6, 4:6] = 1
    squares[0, 6:8, 6:8] = FIRST_ADDED
    return Layout(TokenGrid(1, 8, 8), {"discs": discs, "squares": squares}, {"discs": 2, "squares": 2}, 8, 4)


def test_preview_draws_each_noun_in_its_own_colour_family_with_distinct_shades():
    layout = two_noun_layout()
    image = layout_frame_images(layout)[0]
    caption = CAPTION_LINE * 3 + 4
    assert image.shape == (caption + 256, 256, 3)      # 64 px video shown at 256 px, caption above
    picture = image[caption:]
    scale = 32                                            # pixels per token at 256 px
    disc_1, disc_2 = picture[1 * scale + 8, 1 * scale + 8], picture[1 * scale + 8, 3 * scale + 8]
    square = picture[4 * scale + 8, 4 * scale + 8]
    assert disc_1[0] > 0.9 and disc_1[2] < 0.3           # discs: the red family
    assert disc_2[0] > 0.9 and not np.allclose(disc_1, disc_2)  # another shade of red
    assert square[2] > 0.9 and square[0] < 0.3           # squares: the blue family


def test_preview_crosses_out_removed_instances_and_dashes_added_ones():
    layout = two_noun_layout()
    caption = CAPTION_LINE * 3 + 4
    picture = (layout_frame_images(layout)[0][caption:] * 255).round()
    removed = picture[5 * 32:7 * 32, 1 * 32:3 * 32]
    diagonal = np.array([removed[i, i] for i in range(4, 60)])
    assert (diagonal == CROSS_COLOUR).all(axis=1).mean() > 0.9          # the X runs corner to corner
    hatch = removed.reshape(-1, 3)
    assert (hatch != BACKDROP * 255).any(axis=1).mean() > 0.3            # hatched, not a plain dark block
    added = picture[6 * 32:8 * 32, 6 * 32:8 * 32]
    edge = np.concatenate([added[0], added[-1], added[:, 0], added[:, -1]])
    is_dash = np.isclose(edge, np.round(ADDED_COLOUR * 255)).all(axis=1)
    assert 0.3 < is_dash.mean() < 0.7                                   # dashed: about half of the outline
    inside = added[28:36, 28:36].reshape(-1, 3)
    assert (inside.sum(axis=1) < 60).any()                             # the black "+" at its centre


def test_preview_caption_names_each_noun_with_count_and_target():
    layout = two_noun_layout()
    image = layout_frame_images(layout)[0]
    for line in (1, 2):                                   # the discs' and the squares' caption lines
        band = image[line * CAPTION_LINE + 2:(line + 1) * CAPTION_LINE, :]
        assert (band.max(axis=2) > 0.5).sum() > 40, f"caption line {line} is empty"
    discs_line = image[CAPTION_LINE + 2:2 * CAPTION_LINE].reshape(-1, 3)
    text = discs_line[discs_line.max(axis=1) > 0.5]
    assert (text[:, 0] > text[:, 2]).all()               # written in the discs' red


def test_unedited_edit_sheet_round_trip_is_exact_for_touching_instances():
    labels = four_touching_discs()
    labels[1, 2:4, 2:4] = REMOVED
    labels[2, 6:8, 0:2] = FIRST_ADDED
    base = Layout(TOUCHING, {"discs": labels}, {"discs": 4}, 8, 4)
    sheet = edit_sheet(base, "discs")
    mask = 1.0 - sheet[..., 3]                            # the Mask Editor's reading of alpha
    assert mask.max() == pytest.approx(1 - SHEET_INSTANCE_ALPHA)
    edited = layout_from_masks({"discs": read_edit_sheet(mask, base)}, TOUCHING, base=base)
    np.testing.assert_array_equal(edited.labels["discs"], labels)
    assert edited.counts("discs").tolist() == [4, 3, 5]


def test_unedited_video_mask_round_trip_is_exact_for_touching_instances():
    labels = four_touching_discs()
    base = Layout(TOUCHING, {"discs": labels}, {"discs": 4}, 16, 4)
    video_mask = latent_to_video_frames(upscale_frames(layout_to_mask(labels), 16))
    edited = layout_from_masks({"discs": video_mask}, TOUCHING, base=base)
    np.testing.assert_array_equal(edited.labels["discs"], labels)
    assert edited.counts("discs").tolist() == [4, 4, 4]


def test_erasing_one_disc_and_painting_one_removes_one_and_adds_one_in_every_frame():
    labels = four_touching_discs()
    base = Layout(TOUCHING, {"discs": labels}, {"discs": 4}, 8, 4)
    sheet_layout = edit_sheet_layout(base)
    mask = 1.0 - edit_sheet(base, "discs")[..., 3]
    pixels = sheet_layout.token_pixels
    for frame in range(TOUCHING.frames):
        top, left = sheet_layout.tile_origin(frame)
        mask[top + 2 * pixels:top + 4 * pixels, left + 4 * pixels:left + 6 * pixels] = 0   # erase disc 2
        mask[top + 6 * pixels:top + 8 * pixels, left + 8 * pixels:left + 10 * pixels] = 1  # paint a new one
    edited = layout_from_masks({"discs": read_edit_sheet(mask, base)}, TOUCHING, base=base).labels["discs"]
    for frame in edited:
        assert (frame[2:4, 4:6] == REMOVED).all()
        assert (frame[6:8, 8:10] == FIRST_ADDED).all()
        for label in (1, 3, 4):
            assert (frame[2:4, 2 * label:2 * label + 2] == label).all()
    assert Layout(TOUCHING, {"discs": edited}).counts("discs").tolist() == [4, 4, 4]


def test_an_edit_on_any_video_frame_of_a_latent_frame_counts():
    labels = four_touching_discs()
    base = Layout(TOUCHING, {"discs": labels}, {"discs": 4}, 1, 4)
    video_mask = latent_to_video_frames(layout_to_mask(labels))
    video_mask[7, 2:4, 2:4] = 0                          # erased in the 3rd of latent frame 2's video frames
    edited = layout_from_masks({"discs": video_mask}, TOUCHING, base=base).labels["discs"]
    assert (edited[2, 2:4, 2:4] == REMOVED).all() and (edited[1] == labels[1]).all()


def test_an_edit_sheet_of_another_layout_is_refused():
    base = Layout(TOUCHING, {"discs": four_touching_discs()}, {}, 8, 4)
    with pytest.raises(ValueError, match="made from another layout"):
        read_edit_sheet(np.zeros((10, 10)), base)


def test_count_report_names_target_found_counts_and_changes_per_frame():
    found = np.zeros((4, 8, 8), dtype=np.int32)
    for frame, count in enumerate([2, 2, 3, 2]):
        for i in range(count):
            found[frame, 0:2, 2 * i:2 * i + 2] = i + 1
    refined = found.copy()
    for frame in (0, 1, 3):
        refined[frame, 5:7, 5:7] = FIRST_ADDED
    refined[2, 0:2, 4:6] = REMOVED
    grid = TokenGrid(4, 8, 8)
    before = Layout(grid, {"cats": found}, {"cats": 2})
    after = Layout(grid, {"cats": refined}, {"cats": 3})
    assert count_report(before, after) == ("cats: target 3 · found 2 2 3 2 · now 3 3 2 3 · added 1 in frames 1,2,4"
                                           " · removed 1 in frame 3")
    found[1:3] = 0
    assert count_report(Layout(grid, {"cats": found}, {"cats": 2})) == \
        "cats: target 2 · found 2 0 0 2 · not found in frames 2,3"
