"""The synthetic counting videos, their exact counter, the prompt grammar and the metrics."""

import numpy as np
import pytest
import torch

from testbed import synthetic as sc


def render(counts: list[list[int]], seed: int = 0, frames: int = 5):
    generator = torch.Generator().manual_seed(seed)
    scene = sc.sample_scenes(torch.tensor(counts), generator, frames=frames)
    return scene, sc.render_scenes(scene, frames=frames)


def test_counter_recovers_every_rendered_count_in_every_frame():
    generator = torch.Generator().manual_seed(3)
    scene = sc.sample_scenes(None, generator, batch=24)
    videos = sc.render_scenes(scene)
    truth = scene.counts().numpy()
    for video, expected in zip(videos, truth):
        counts = sc.count_objects(sc.video_to_image_frames(video))
        assert counts.shape == (5, 4)
        np.testing.assert_array_equal(counts, np.repeat(expected[None], 5, 0))


def test_crowded_scene_of_twelve_objects_keeps_gaps_and_stays_inside():
    scene, video = render([[6, 6, 0, 0]], seed=1)
    t = torch.arange(5.0)
    path = scene.centres[0, :, None] + scene.velocity[0, :, None] * t[None, :, None]  # [N, F, 2]
    r = scene.radius[0]
    dist = (path[:, None] - path[None]).norm(dim=-1).amin(-1)
    need = r[:, None] + r[None] + sc.MIN_GAP_PX
    off_diagonal = ~torch.eye(12, dtype=torch.bool)
    assert bool((dist[off_diagonal] >= need[off_diagonal]).all())
    assert bool(((path >= r[:, None, None]) & (path <= 64 - r[:, None, None])).all())
    np.testing.assert_array_equal(sc.count_objects(sc.video_to_image_frames(video[0]))[0], [6, 6, 0, 0])


def test_objects_move_at_constant_velocity_and_background_is_black():
    scene, video = render([[0, 0, 2, 1]], seed=2)
    assert float(video[0, :, :, 0, 0].max()) == -1.0  # corners stay black (objects keep a margin)
    assert bool((scene.velocity[0].norm(dim=-1) <= sc.MAX_SPEED_PX_PER_FRAME + 1e-6).all())
    frames = sc.video_to_image_frames(video[0]).numpy()
    assert not np.allclose(frames[0], frames[-1])  # something moved


def test_classify_pixels_uses_nearest_colour_within_threshold():
    pixels = np.array([[[0.9, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.9, 0.0], [0.9, 0.9, 0.1], [0.05, 0.05, 0.05], [0.5, 0.5, 0.5]]])
    np.testing.assert_array_equal(sc.classify_pixels(pixels)[0], [0, 1, 2, 3, -1, -1])


def test_count_objects_ignores_specks_and_separates_touching_diagonals_only_when_apart():
    frame = np.zeros((1, 16, 16, 3), dtype=np.float32)
    frame[0, 2:5, 2:5] = (1, 0, 0)  # 9 px red blob
    frame[0, 10, 10] = (1, 0, 0)  # 1 px speck: ignored
    frame[0, 8:11, 2:5] = (0, 0, 1)  # blue blob
    frame[0, 11:14, 5:8] = (0, 0, 1)  # diagonal neighbour: same component (8-connected)
    np.testing.assert_array_equal(sc.count_objects(frame)[0], [1, 1, 0, 0])


def test_count_objects_rejects_wrong_layout():
    with pytest.raises(ValueError, match="F, H, W, 3"):
        sc.count_objects(np.zeros((5, 3, 8, 8)))


def test_prompt_grammar_round_trip_and_vocabulary():
    prompt = sc.make_prompt({0: 3, 1: 1})
    assert prompt == "three red discs and one blue square"
    assert sc.parse_prompt(prompt) == {0: 3, 1: 1}
    assert sc.parse_prompt("2 Yellow diamonds, and 1 green triangle") == {3: 2, 2: 1}
    ids = sc.VOCABULARY.encode(prompt)
    assert len(ids) == 7 and 0 not in ids
    assert [sc.VOCABULARY.words[i] for i in ids] == prompt.split()
    assert len(sc.VOCABULARY) == 20
    with pytest.raises(ValueError, match="not in the testbed vocabulary"):
        sc.VOCABULARY.encode("three cats")
    with pytest.raises(ValueError, match="appears twice"):
        sc.parse_prompt("one red disc and two red discs")


def test_sample_prompt_specs_is_seeded_and_in_range():
    specs = sc.sample_prompt_specs(200, seed=5)
    assert specs == sc.sample_prompt_specs(200, seed=5)
    assert specs != sc.sample_prompt_specs(200, seed=6)
    assert all(1 <= len(s) <= 2 and all(1 <= n <= 6 for n in s.values()) for s in specs)
    assert {len(s) for s in specs} == {1, 2}


def test_count_metrics_values():
    requests = [{0: 2}, {1: 3, 2: 1}]
    measured = [
        np.array([[2, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0]]),  # 3 of 4 frames right
        np.array([[0, 3, 0, 0]] * 4),  # blue right, green missing
    ]
    m = sc.count_metrics(requests, measured)
    assert m.count_acc == pytest.approx((0.75 + 0.5) / 2)
    assert m.count_acc_one_category == pytest.approx(0.75)
    assert m.count_acc_two_categories == pytest.approx(0.5)
    assert m.missing_category_rate == pytest.approx(1 / 3)
    assert m.by_count[2] == pytest.approx((0.75, 0.25, 0.0, 1))
    assert m.by_count[1] == pytest.approx((0.0, 1.0, 0.0, 1))
    # TC: red pairs 2-2 ok, 2-1 no, 1-2 no -> 1/3; blue and green constant -> 1, 1
    assert m.temporal_consistency == pytest.approx((1 / 3 + 1 + 1) / 3)
