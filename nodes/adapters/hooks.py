"""ComfyUI sampling plumbing that every model family's adapter shares: which step and which batch rows a
model call is, chaining a block-scoped attention override, and stopping phase 1 at the capture.

Nothing here knows a model family; the adapters (wan.py, cogvideox.py) do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ...numina_core.capture import AttentionCapture
from ...numina_core.grid import SamplingProvenance, TokenGrid
from ...numina_core.schedule import short_capture_schedule

WRAPPER_KEY = "numina"


class CaptureComplete(Exception):
    """Raised right after the capture so phase 1 stops there (the rest of the step is not needed)."""


class SharedHook:
    """ModelPatcher.clone() deep-copies model_options; a hook must stay one object so that what it
    records is seen by the node that installed it."""

    def __deepcopy__(self, memo):
        return self


def current_step(transformer_options: dict) -> tuple[int, bool]:
    """(index of the running sampling step within this sampler call, whether the model is evaluated
    exactly at that step's sigma — multi-evaluation samplers also call it in between)."""
    sigma = transformer_options["sigmas"].flatten()[0].float()
    schedule = transformer_options["sample_sigmas"].flatten().float().to(sigma.device)
    distances = (schedule[:-1] - sigma).abs()
    index = int(distances.argmin())
    return index, bool(distances[index] <= 1e-6 * max(1.0, float(sigma.abs())))


class StepOfCall:
    """`current_step` once per model call: every block of one call sees the same `sigmas` tensor, and
    reading it synchronises the GPU, so the other blocks reuse the answer."""

    def __init__(self):
        self._sigmas = None
        self._step: tuple[int, bool] = (-1, False)

    def __call__(self, transformer_options: dict) -> tuple[int, bool]:
        sigmas = transformer_options["sigmas"]
        if sigmas is not self._sigmas:
            self._sigmas, self._step = sigmas, current_step(transformer_options)
        return self._step


def positive_rows(transformer_options: dict, batch: int) -> list[int]:
    """Batch rows of the positive prompt: chunks are concatenated in `cond_or_uncond` order (0 = positive)."""
    order = transformer_options.get("cond_or_uncond", [0])
    chunk = batch // max(1, len(order))
    return [c * chunk + i for c, kind in enumerate(order) if kind == 0 for i in range(chunk)]


def with_override(args: dict, override: Callable) -> dict:
    options = dict(args["transformer_options"])
    previous = options.get("optimized_attention_override")

    def chained(func, *a, **kw):
        def plain(*pa, **pkw):
            return previous(func, *pa, **pkw) if previous is not None else func(*pa, **pkw)
        return override(plain, *a, **kw)

    options["optimized_attention_override"] = chained
    return {**args, "transformer_options": options}


def pass_through(args: dict, extra: dict) -> dict:
    return extra["original_block"](args)


def check_video_tokens(tokens: int, grid: TokenGrid, node: str) -> None:
    if tokens != grid.tokens:
        raise ValueError(f"{node}: the model sees {tokens} video tokens but the layout grid {grid} has "
                         f"{grid.tokens}; the latent's size must match the one the layout was captured with")


def force_step_evaluation(step: int):
    """A DIFFUSION_MODEL wrapper that stops EasyCache from skipping `step` (the capture must see it)."""

    def wrapper(executor, *args, **kwargs):
        options = args[-1] if isinstance(args[-1], dict) else kwargs.get("transformer_options", {})
        holder = options.get("easycache")
        if holder is not None and current_step(options) == (step, True):
            holder.cumulative_change_rate = math.inf
            holder.skip_current_step = False
        return executor(*args, **kwargs)

    return wrapper


def add_outermost_wrapper(clone, wrapper) -> None:
    """Add a DIFFUSION_MODEL wrapper that runs before any other (e.g. before EasyCache decides to skip)."""
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, wrapper)
    others = clone.wrappers[comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL]
    clone.wrappers[comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL] = {WRAPPER_KEY: others.pop(WRAPPER_KEY), **others}


def run_schedule(model, provenance: SamplingProvenance) -> torch.Tensor:
    """The sigmas KSampler samples this run with (its sampler's discarded penultimate sigma included)."""
    sampler = comfy.samplers.KSampler(model, steps=provenance.steps, device=model.load_device,
                                      sampler=provenance.sampler_name, scheduler=provenance.scheduler,
                                      model_options=model.model_options)
    return sampler.sigmas


def report_schedule(sigmas: torch.Tensor):
    """A SAMPLER_SAMPLE wrapper: model calls see `sigmas` as the running schedule (`sample_sigmas`), so a
    short phase 1 reports the full run's step indices (its capture evaluation is step t*, exactly)."""

    def wrapper(executor, guider, run_sigmas, extra_args, *args, **kwargs):
        options = extra_args["model_options"].setdefault("transformer_options", {})
        options["sample_sigmas"] = sigmas.to(run_sigmas.device)
        return executor(guider, run_sigmas, extra_args, *args, **kwargs)

    return wrapper


def finish_or_stop(capture_of: Callable[[], AttentionCapture | None], finish: Callable[[AttentionCapture], bool]):
    """A DIFFUSION_MODEL wrapper for a phase 1 that may become the video: when the capture hook stops the
    model call at t*, `finish(capture)` decides. True: run that model call again (the hook passes through
    once it holds its capture) and let sampling go on to the end; False: stop as the reference does."""

    def wrapper(executor, *args, **kwargs):
        try:
            return executor(*args, **kwargs)
        except CaptureComplete:
            capture = capture_of()
            if capture is None or not finish(capture):
                raise
            return executor(*args, **kwargs)

    return wrapper


@dataclass
class PhaseOne:
    """What phase 1 produced: the capture, and the finished latent when it sampled on to the end."""

    capture: AttentionCapture
    samples: torch.Tensor | None = None


def run_phase_one(patched, provenance: SamplingProvenance, positive, negative, latent: dict, samples, step: int,
                  x0_store: dict | None, capture_of: Callable[[], AttentionCapture | None], node: str,
                  schedule_steps: int = 0, finish: Callable[[AttentionCapture], bool] | None = None) -> PhaseOne:
    """Phase 1 on the patched clone (its capture hook raises CaptureComplete at `step`), from KSampler's noise
    for the seed. schedule_steps k > 0 (< step): the sampler walks k of the run's sigmas down to sigma(step)
    (numina_core/schedule.py) on ComfyUI's custom-sigmas path, then evaluates the capture there. `finish`
    (full schedule only): sample the whole run and let `finish(capture)` decide at the capture whether to go
    on to the end (PhaseOne.samples is then KSampler's latent for these settings) or stop there."""
    noise = comfy.sample.prepare_noise(samples, provenance.seed, latent.get("batch_index"))
    sigmas, last_step = None, step + 1
    if finish is not None:
        if 0 < schedule_steps < step:
            raise ValueError(f"{node}: a short phase-1 schedule cannot become the video; finish needs the run's "
                             "own schedule (capture_schedule_steps 0)")
        last_step = None
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY + "_finish",
                                     finish_or_stop(capture_of, finish))
    elif 0 < schedule_steps < step:
        full = run_schedule(patched, provenance)
        sigmas, last_step = short_capture_schedule(full, step, schedule_steps), None
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY,
                                     report_schedule(full[: step + 2]))
    preview_steps = len(sigmas) - 1 if sigmas is not None else provenance.steps if last_step is None else step + 1
    callback = latent_preview.prepare_callback(patched, preview_steps, x0_store)
    finished = None
    try:
        finished = comfy.sample.sample(patched, noise, provenance.steps, provenance.cfg, provenance.sampler_name,
                                       provenance.scheduler, positive, negative, samples, last_step=last_step,
                                       sigmas=sigmas, noise_mask=latent.get("noise_mask"), callback=callback,
                                       disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=provenance.seed)
    except CaptureComplete:
        pass
    capture = capture_of()
    if capture is None:
        raise RuntimeError(f"{node}: the capture step {step} was never evaluated on the positive prompt; "
                           "check that the sampler evaluates every step (not a cached or skipped one)")
    return PhaseOne(capture, finished)
