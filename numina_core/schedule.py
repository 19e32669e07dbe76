"""Short phase-1 schedules: reach the capture step's noise level in a few steps instead of all of them.

The capture reads the model at exactly sigma(t*) of the run's own schedule. The reference gets there by
sampling steps 0..t*-1 of that schedule (t*+1 model evaluations with the capture). A short schedule takes
`steps` of the same schedule's sigmas from sigma_max down to sigma(t*), evenly spaced in step index or in
noise level, then evaluates the capture at sigma(t*): steps + 1 evaluations. The sigmas are a subset of the
run's own, so every model call of phase 1 sees a noise level the full run also visits.
"""
from __future__ import annotations

import torch


def short_capture_schedule(sigmas: torch.Tensor, capture_step: int, steps: int,
                           spacing: str = "step") -> torch.Tensor:
    """Sigmas for phase 1 given the run's full schedule `sigmas` (steps + 1 values, descending): steps + 1 of
    its first t* + 1 sigmas, from sigma_max to sigma(t*) (spacing 'step': indices round(linspace(0, t*, steps
    + 1)); 'sigma': capture_step_indices_by_sigma), then sigma(t* + 1) so the sampler evaluates the model at
    sigma(t*) (the capture; sampling stops there). `steps` ≥ t* gives the reference's sigmas[:t*+2]."""
    if not 0 <= capture_step < len(sigmas) - 1:
        raise ValueError(f"capture step {capture_step} is outside a schedule of {len(sigmas) - 1} steps")
    if steps < 1:
        raise ValueError(f"a short schedule needs at least one step, not {steps}")
    if steps >= capture_step:
        return sigmas[: capture_step + 2].clone()
    if spacing == "sigma":
        indices = capture_step_indices_by_sigma(sigmas[: capture_step + 1], steps)
    elif spacing == "step":
        indices = torch.linspace(0, capture_step, steps + 1).round().long()
    else:
        raise ValueError(f"unknown short-schedule spacing {spacing!r}: 'step' or 'sigma'")
    return torch.cat([sigmas[indices], sigmas[capture_step + 1 : capture_step + 2]])


def capture_step_indices_by_sigma(sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    """steps + 1 strictly increasing indices into `sigmas` (descending, more than steps + 1 values), the first
    and the last included, each the nearest to evenly spaced noise levels between sigmas[0] and sigmas[-1]."""
    last = len(sigmas) - 1
    targets = torch.linspace(float(sigmas[0]), float(sigmas[-1]), steps + 1, dtype=torch.float64)
    nearest = (sigmas.double().cpu()[None] - targets[:, None]).abs().argmin(1).tolist()
    nearest[0], nearest[-1] = 0, last
    # Where the schedule is coarser than the targets, two may pick one sigma: keep each index at least one
    # above the one before and one below the one after, which fits since steps < last.
    for i in range(1, steps):
        nearest[i] = max(nearest[i], nearest[i - 1] + 1)
    for i in range(steps - 1, -1, -1):
        nearest[i] = min(nearest[i], nearest[i + 1] - 1)
    return torch.tensor(nearest, dtype=torch.long)


def phase1_evaluations(capture_step: int, schedule_steps: int) -> int:
    """Model evaluations phase 1 makes up to and including the capture (0 schedule steps: the reference)."""
    if schedule_steps <= 0 or schedule_steps >= capture_step:
        return capture_step + 1
    return schedule_steps + 1
