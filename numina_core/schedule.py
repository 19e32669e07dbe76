"""Short phase-1 schedules: reach the capture step's noise level in a few steps instead of all of them.

The capture reads the model at exactly sigma(t*) of the run's own schedule. The reference gets there by
sampling steps 0..t*-1 of that schedule (t*+1 model evaluations with the capture). A short schedule takes
`steps` of the same schedule's sigmas from sigma_max down to sigma(t*), evenly spaced in step index, then
evaluates the capture at sigma(t*): steps + 1 evaluations. The sigmas are a subset of the run's own, so
every model call of phase 1 sees a noise level the full run also visits.
"""
from __future__ import annotations

import torch


def short_capture_schedule(sigmas: torch.Tensor, capture_step: int, steps: int) -> torch.Tensor:
    """Sigmas for phase 1 given the run's full schedule `sigmas` (steps + 1 values, descending): indices
    round(linspace(0, t*, steps + 1)) of the full schedule, then sigma(t* + 1) so the sampler evaluates the
    model at sigma(t*) (the capture; sampling stops there). `steps` ≥ t* gives the reference's sigmas[:t*+2]."""
    if not 0 <= capture_step < len(sigmas) - 1:
        raise ValueError(f"capture step {capture_step} is outside a schedule of {len(sigmas) - 1} steps")
    if steps < 1:
        raise ValueError(f"a short schedule needs at least one step, not {steps}")
    if steps >= capture_step:
        return sigmas[: capture_step + 2].clone()
    indices = torch.linspace(0, capture_step, steps + 1).round().long()
    return torch.cat([sigmas[indices], sigmas[capture_step + 1 : capture_step + 2]])


def phase1_evaluations(capture_step: int, schedule_steps: int) -> int:
    """Model evaluations phase 1 makes up to and including the capture (0 schedule steps: the reference)."""
    if schedule_steps <= 0 or schedule_steps >= capture_step:
        return capture_step + 1
    return schedule_steps + 1
