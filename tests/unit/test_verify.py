"""The count-verified loop with fake generate / count callables: when it stops, what it keeps, what each
strategy tries next, and what the node shows."""
import pytest

from numina_core import verify

TARGETS = {"cats": 3, "dogs": 2}


def scripted(counts_by_seed: dict[int, dict[str, list[int]]]):
    """generate: a try → its seed (the 'video'); count: the scripted counts of that seed; plus the tries made."""
    made: list[verify.Try] = []

    def generate(trial: verify.Try) -> int:
        made.append(trial)
        return trial.seed

    def count(seed: int) -> dict[str, list[int]]:
        return counts_by_seed[seed]

    return generate, count, made


def test_stops_at_the_first_exact_try():
    generate, count, made = scripted({10: {"cats": [4, 4], "dogs": [2, 2]}, 11: {"cats": [3, 3], "dogs": [2, 2]},
                                      12: {"cats": [3, 3], "dogs": [2, 2]}})
    result = verify.verify_counts(TARGETS, 5, verify.reseed(10, TARGETS), generate, count)
    assert [t.seed for t in made] == [10, 11]
    assert result.best.index == 1 and result.best.exact and result.best_result == 11
    assert [a.error for a in result.attempts] == [2, 0]


def test_respects_the_budget_and_keeps_the_closest():
    generate, count, made = scripted({0: {"cats": [5], "dogs": [2]}, 1: {"cats": [3], "dogs": [1]},
                                      2: {"cats": [1], "dogs": [2]}, 3: {"cats": [3], "dogs": [2]}})
    result = verify.verify_counts(TARGETS, 3, verify.reseed(0, TARGETS), generate, count)
    assert [t.seed for t in made] == [0, 1, 2]  # seed 3 would have been exact, but the budget is 3
    assert [a.error for a in result.attempts] == [2, 1, 2]
    assert result.best.index == 1 and result.best_result == 1 and not result.best.exact


def test_ties_keep_the_earliest_try():
    generate, count, _ = scripted({0: {"cats": [4], "dogs": [2]}, 1: {"cats": [3], "dogs": [3]},
                                   2: {"cats": [2], "dogs": [2]}})
    result = verify.verify_counts(TARGETS, 3, verify.reseed(0, TARGETS), generate, count)
    assert [a.error for a in result.attempts] == [1, 1, 1]
    assert result.best.index == 0 and result.best_result == 0


def test_error_sums_absolute_errors_over_nouns_and_frames():
    assert verify.count_error({"cats": [3, 4, 1], "dogs": [2, 2, 0]}, TARGETS) == 0 + 1 + 2 + 0 + 0 + 2
    with pytest.raises(ValueError, match=r"\['dogs'\]"):
        verify.count_error({"cats": [3], "dogs": []}, TARGETS)


def test_budget_one_makes_one_video_even_when_wrong():
    generate, count, made = scripted({7: {"cats": [1], "dogs": [1]}})
    result = verify.verify_counts(TARGETS, 1, verify.reseed(7, TARGETS), generate, count)
    assert len(made) == 1 and result.best.index == 0 and result.best.error == 3
    with pytest.raises(ValueError, match="at least one video"):
        verify.verify_counts(TARGETS, 0, verify.reseed(7, TARGETS), generate, count)


def test_retarget_guides_the_same_seed_past_the_miscount_then_moves_on():
    # seed 4 draws 4 cats (one too many) and 1 dog (one too few) in most frames; the retargeted try aims the
    # layout at 2 cats and 3 dogs; when that is still wrong the next try is seed 5 toward the real targets.
    generate, count, made = scripted({4: {"cats": [4, 4, 3], "dogs": [1, 1, 2]},
                                      5: {"cats": [3, 3, 3], "dogs": [2, 2, 2]}})
    counts_of_retry = {"cats": [3, 3, 4], "dogs": [2, 2, 2]}

    def count_try(result):
        return counts_of_retry if len(made) == 2 else count(result)

    result = verify.verify_counts(TARGETS, 4, verify.retarget(4, TARGETS), generate, count_try)
    assert made == [verify.Try(4, TARGETS), verify.Try(4, {"cats": 2, "dogs": 3}), verify.Try(5, TARGETS)]
    assert [a.error for a in result.attempts] == [4, 1, 0] and result.best.index == 2


def test_retarget_keeps_targets_at_least_one_and_skips_a_retarget_that_changes_nothing():
    six_of_three = verify.Attempt(0, verify.Try(0, {"cats": 3}), {"cats": [6, 6]}, 6)
    assert verify.retarget(0, {"cats": 3})([six_of_three]) == verify.Try(0, {"cats": 1})  # 3 - 3 = 0 → 1
    # one asked, four drawn: the target cannot go below 1, so the retarget would change nothing: next seed
    four_of_one = verify.Attempt(0, verify.Try(0, {"cats": 1}), {"cats": [4, 4]}, 6)
    assert verify.retarget(0, {"cats": 1})([four_of_one]) == verify.Try(1, {"cats": 1})
    # typical count right, only one frame off: a corrected target would equal the target, so next seed
    flicker = verify.Attempt(0, verify.Try(0, TARGETS), {"cats": [3, 3, 4], "dogs": [2, 2, 2]}, 1)
    assert verify.retarget(0, TARGETS)([flicker]) == verify.Try(1, TARGETS)


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="reseed, retarget"):
        verify.strategy("re-roll", 0, TARGETS)


def test_report_lists_every_try_and_the_kept_one():
    generate, count, _ = scripted({0: {"cats": [4], "dogs": [2]}, 1: {"cats": [3], "dogs": [2]}})
    result = verify.verify_counts(TARGETS, 3, verify.reseed(0, TARGETS), generate, count)
    assert verify.verification_report(result, TARGETS, 3).splitlines() == [
        "try 1: seed 0: cats 4 of 3 · dogs 2 of 2 → off by 1",
        "try 2: seed 1: cats 3 of 3 · dogs 2 of 2 → exact",
        "kept try 2: every frame has the right counts (2 of 3 videos used)",
    ]
    retargeted = verify.Attempt(1, verify.Try(0, {"cats": 2, "dogs": 2}), {"cats": [3], "dogs": [1]}, 1)
    assert verify.attempt_report(retargeted, TARGETS) == (
        "try 2: seed 0 (layout aimed at cats 2, dogs 2): cats 3 of 3 · dogs 1 of 2 → off by 1")
