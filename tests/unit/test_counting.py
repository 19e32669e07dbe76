"""Count scoring on synthetic detections with hand-computed answers."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numina_eval.counting import (NUMINA_PROTOCOL, T2V_COMPBENCH_PROTOCOL, CountProtocol, Detection, box_iou,
                                  count_accuracy, count_frame, failed_video, first_seed,
                                  merge_duplicate_boxes, parse_noun_counts, per_numeral_accuracy,
                                  score_video, seed_search, summarize, temporal_consistency)


def det(noun, box, score=0.5, label=None):
    return Detection(noun=noun, box=box, score=score, label=noun if label is None else label)


# --- CountAcc and TC -------------------------------------------------------------------------

def test_count_accuracy_is_mean_over_frames_of_fraction_of_exact_nouns():
    targets = {"cat": 3, "dog": 2}
    frames = [{"cat": 3, "dog": 2},  # 1
              {"cat": 3, "dog": 1},  # 0.5
              {"cat": 2, "dog": 1},  # 0
              {"cat": 3}]            # dog missing counts as 0 -> 0.5
    assert count_accuracy(frames, targets) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)


def test_count_accuracy_of_no_frames_is_zero():
    assert count_accuracy([], {"cat": 1}) == 0.0


def test_temporal_consistency_averages_over_pairs_and_classes():
    frames = [{"cat": 1, "dog": 2}, {"cat": 1, "dog": 3}, {"cat": 2, "dog": 3}, {"cat": 2, "dog": 3}]
    # pairs: (cat same, dog diff), (cat diff, dog same), (same, same) -> 4 of 6
    assert temporal_consistency(frames, ["cat", "dog"]) == pytest.approx(4 / 6)
    assert temporal_consistency(frames[:1], ["cat"]) == 1.0
    assert temporal_consistency([], ["cat"]) == 0.0


def test_tc_ignores_correctness_and_countacc_ignores_stability():
    wrong_but_stable = [{"cat": 5}] * 4
    right_but_flickering = [{"cat": 2}, {"cat": 0}, {"cat": 2}, {"cat": 0}]
    assert temporal_consistency(wrong_but_stable, ["cat"]) == 1.0
    assert count_accuracy(wrong_but_stable, {"cat": 2}) == 0.0
    assert temporal_consistency(right_but_flickering, ["cat"]) == 0.0
    assert count_accuracy(right_but_flickering, {"cat": 2}) == 0.5


@given(st.lists(st.fixed_dictionaries({"a": st.integers(0, 4), "b": st.integers(0, 4)}), min_size=1, max_size=12))
def test_metrics_stay_in_unit_interval(frames):
    assert 0.0 <= count_accuracy(frames, {"a": 2, "b": 1}) <= 1.0
    assert 0.0 <= temporal_consistency(frames, ["a", "b"]) <= 1.0


# --- protocols ------------------------------------------------------------------------------

def test_protocol_constants_match_the_published_settings():
    assert (NUMINA_PROTOCOL.box_threshold, NUMINA_PROTOCOL.text_threshold) == (0.32, 0.25)
    assert NUMINA_PROTOCOL.num_frames is None and NUMINA_PROTOCOL.merge_iou is None
    assert (T2V_COMPBENCH_PROTOCOL.box_threshold, T2V_COMPBENCH_PROTOCOL.text_threshold) == (0.4, 0.25)
    assert (T2V_COMPBENCH_PROTOCOL.num_frames, T2V_COMPBENCH_PROTOCOL.merge_iou) == (16, 0.9)


def test_frame_selection_differs_between_protocols():
    assert NUMINA_PROTOCOL.frame_indices(81) == list(range(81))
    picked = T2V_COMPBENCH_PROTOCOL.frame_indices(81)
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 80
    assert picked[:4] == [0, 5, 10, 16]  # linspace(0, 80, 16) truncated: 0, 5.33, 10.67, 16
    assert T2V_COMPBENCH_PROTOCOL.frame_indices(10) == list(range(10))
    assert NUMINA_PROTOCOL.frame_indices(0) == []


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_merge_keeps_the_higher_score_in_the_first_slot():
    a = det("cat", (0, 0, 10, 10), 0.5)
    b = det("dog", (0, 0, 10, 10.5), 0.9)  # IoU 0.952 with a
    c = det("cat", (20, 20, 30, 30), 0.6)
    assert merge_duplicate_boxes([a, b, c], 0.9) == [b, c]
    assert merge_duplicate_boxes([a, b, c], 0.99) == [a, b, c]


def test_same_detections_counted_differently_by_the_two_protocols():
    # Two near-identical cat boxes (IoU 0.95), one box the dog caption also returned on the
    # same cat (IoU 1), and one dog box whose decoded phrase is not "dog".
    detections = {
        "cat": [det("cat", (0, 0, 10, 10), 0.8), det("cat", (0, 0, 10, 10.5), 0.7),
                det("cat", (50, 50, 60, 60), 0.6)],
        "dog": [det("dog", (50, 50, 60, 60), 0.45), det("dog", (80, 0, 90, 10), 0.5, label="")],
    }
    assert count_frame(detections, NUMINA_PROTOCOL) == {"cat": 3, "dog": 2}
    # merged: cat boxes 1+2 -> one cat; dog box on the cat -> folded into the cat (higher score);
    # the unlabeled dog box is not counted.
    assert count_frame(detections, T2V_COMPBENCH_PROTOCOL) == {"cat": 2, "dog": 0}


def test_merge_moves_a_box_to_the_noun_with_the_higher_score():
    detections = {"cat": [det("cat", (0, 0, 10, 10), 0.4)], "dog": [det("dog", (0, 0, 10, 10), 0.9)]}
    assert count_frame(detections, T2V_COMPBENCH_PROTOCOL) == {"cat": 0, "dog": 1}


def test_label_match_is_case_and_space_insensitive():
    protocol = CountProtocol("x", 0.3, 0.25, None, None, label_must_match=True)
    noun = "Teddy bear"
    assert count_frame({noun: [det(noun, (0, 0, 1, 1), label=" teddy  BEAR ")]}, protocol) == {noun: 1}
    assert count_frame({noun: [det(noun, (0, 0, 1, 1), label="teddy")]}, protocol) == {noun: 0}


# --- per-video, per-numeral, seed search, failures ---------------------------------------------

def test_per_numeral_accuracy_groups_prompt_noun_pairs_by_target():
    v1 = score_video("1", 0, {"cat": 1, "dog": 2}, [{"cat": 1, "dog": 2}, {"cat": 1, "dog": 1}])
    v2 = score_video("2", 0, {"bird": 2}, [{"bird": 0}, {"bird": 0}])
    v3 = failed_video("3", 0, {"car": 1}, "missing", "no file", clip_available=False)
    accuracy, pairs = per_numeral_accuracy([v1, v2, v3])
    assert pairs == {1: 2, 2: 2}
    assert accuracy[1] == pytest.approx((1.0 + 0.0) / 2)   # cat always right, car missing
    assert accuracy[2] == pytest.approx((0.5 + 0.0) / 2)   # dog right half the time, bird never


def test_missing_video_counts_as_zero_and_is_reported():
    ok = score_video("1", 0, {"cat": 1}, [{"cat": 1}, {"cat": 1}], clip_score=0.3)
    missing = failed_video("2", 0, {"cat": 2}, "missing", "not produced", clip_available=True)
    summary = summarize([ok, missing], "run")
    assert summary.prompts == 2 and summary.failures == 1
    assert summary.count_acc == pytest.approx(0.5)
    assert summary.tc == pytest.approx(0.5)
    assert summary.clip_score == pytest.approx(0.15)
    with pytest.raises(ValueError):
        failed_video("3", 0, {"cat": 1}, "ok", "", clip_available=False)


def test_clip_reported_unavailable_when_any_video_lacks_it():
    a = score_video("1", 0, {"cat": 1}, [{"cat": 1}], clip_score=None)
    assert summarize([a], "run").clip_score is None


def test_seed_search_picks_best_countacc_per_prompt_and_first_seed_is_the_baseline():
    videos = [
        score_video("1", 10, {"cat": 2}, [{"cat": 1}, {"cat": 2}]),  # 0.5
        score_video("1", 11, {"cat": 2}, [{"cat": 2}, {"cat": 2}]),  # 1.0
        score_video("1", 12, {"cat": 2}, [{"cat": 0}, {"cat": 0}]),  # 0.0
        score_video("2", 10, {"dog": 1}, [{"dog": 1}, {"dog": 1}]),  # 1.0 (ties with seed 11)
        score_video("2", 11, {"dog": 1}, [{"dog": 1}, {"dog": 1}]),
        failed_video("3", 10, {"car": 3}, "failed", "server error", clip_available=False),
        score_video("3", 11, {"car": 3}, [{"car": 3}, {"car": 1}]),  # 0.5 beats the failure
    ]
    best = {v.prompt_id: v.seed for v in seed_search(videos)}
    assert best == {"1": 11, "2": 10, "3": 11}
    assert summarize(seed_search(videos), "best").count_acc == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    baseline = first_seed(videos, [10, 11, 12])
    assert [v.seed for v in baseline] == [10, 10, 10]
    assert summarize(baseline, "first").count_acc == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert summarize(baseline, "first").failures == 1


# --- parsing targets --------------------------------------------------------------------------

def test_parse_noun_counts_accepts_lists_and_json():
    assert parse_noun_counts("cat: 3, dog=2") == {"cat": 3, "dog": 2}
    assert parse_noun_counts("teddy bear: 1\nhot air balloon: 2;") == {"teddy bear": 1, "hot air balloon": 2}
    assert parse_noun_counts('{"cat": 3, "dog": 1}') == {"cat": 3, "dog": 1}


@pytest.mark.parametrize("text, message", [
    ("", "no nouns"), ("cat three", "noun: count"), ("cat: 2, cat: 3", "twice"),
    ('{"cat": 2.5}', "whole number"), ('{"cat": -1}', "negative"), ("{cat: 1}", "JSON"),
])
def test_parse_noun_counts_rejects_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        parse_noun_counts(text)
