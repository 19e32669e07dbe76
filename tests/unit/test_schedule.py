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


def shifted_flow_schedule(steps: int, shift: float) -> torch.Tensor:
    """ComfyUI's 'simple' schedule under a flow shift: slow in sigma at the start, fast toward the end."""
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift * t / (1 + (shift - 1) * t)


def test_sigma_spacing_on_an_even_schedule_is_step_spacing():
    assert torch.equal(short_capture_schedule(FULL, 20, 4, "sigma"), short_capture_schedule(FULL, 20, 4, "step"))


def test_sigma_spacing_moves_steps_toward_the_capture_on_a_shifted_schedule():
    full = shifted_flow_schedule(50, 8.0)
    by_step = short_capture_schedule(full, 30, 6, "step")
    by_sigma = short_capture_schedule(full, 30, 6, "sigma")
    indices = [int((full - sigma).abs().argmin()) for sigma in by_sigma]
    assert indices == [0, 9, 15, 20, 24, 27, 30, 31]
    gaps_step, gaps_sigma = -by_step[:-1].diff(), -by_sigma[:-1].diff()
    # evenly in noise level: the largest gap is well under the step spacing's, which grows toward the capture
    assert gaps_sigma.max() < 0.75 * gaps_step.max()
    assert gaps_sigma.max() - gaps_sigma.min() < 0.01


def test_sigma_spacing_never_repeats_a_sigma_where_the_schedule_is_coarse():
    full = torch.tensor([1.0, 0.999, 0.998, 0.997, 0.5, 0.2, 0.1, 0.0], dtype=torch.float64)
    short = short_capture_schedule(full, 6, 5, "sigma")
    assert short[0] == 1.0 and short[-2] == full[6] and short[-1] == full[7]
    assert bool((short.diff() < 0).all())


def test_unknown_spacing_raises():
    with pytest.raises(ValueError, match="spacing"):
        short_capture_schedule(FULL, 20, 4, "log")
