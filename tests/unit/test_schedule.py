import pytest
import torch

from numina_core.schedule import phase1_evaluations, short_capture_schedule

FULL = torch.linspace(1.0, 0.0, 51)  # a 50-step schedule


def test_short_schedule_takes_evenly_spaced_sigmas_of_the_run_and_ends_past_the_capture():
    short = short_capture_schedule(FULL, 20, 4)
    assert torch.equal(short, FULL[[0, 5, 10, 15, 20, 21]])
    assert phase1_evaluations(20, 4) == 5  # 4 steps + the capture at sigma(20)


def test_uneven_spacing_rounds_to_schedule_indices():
    short = short_capture_schedule(FULL, 20, 3)
    assert torch.equal(short, FULL[[0, 7, 13, 20, 21]])


def test_as_many_steps_as_the_capture_step_is_the_reference():
    assert torch.equal(short_capture_schedule(FULL, 20, 20), FULL[:22])
    assert torch.equal(short_capture_schedule(FULL, 20, 30), FULL[:22])
    assert phase1_evaluations(20, 0) == phase1_evaluations(20, 20) == 21


def test_one_step_jumps_straight_to_the_capture_noise_level():
    assert torch.equal(short_capture_schedule(FULL, 8, 1), FULL[[0, 8, 9]])


def test_capture_at_the_first_step_needs_no_sampling():
    assert torch.equal(short_capture_schedule(FULL, 0, 3), FULL[:2])


@pytest.mark.parametrize("step, steps", [(50, 3), (-1, 3), (20, 0)])
def test_impossible_requests_raise(step, steps):
    with pytest.raises(ValueError):
        short_capture_schedule(FULL, step, steps)
