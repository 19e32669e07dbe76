"""ComfyUI sampling plumbing that every model family's adapter shares: which step and which batch rows a
model call is, chaining a block-scoped attention override, and stopping phase 1 at the capture.

Nothing here knows a model family; the adapters (wan.py, cogvideox.py) do.
"""
from __future__ import annotations

import math
from typing import Callable

import comfy.patcher_extension
import comfy.sample
import comfy.utils
import latent_preview

from ...numina_core.capture import AttentionCapture
from ...numina_core.grid import SamplingProvenance, TokenGrid

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


def sample_until_capture(patched, provenance: SamplingProvenance, positive, negative, latent: dict,
                         samples, step: int, x0_store: dict | None, capture_of: Callable[[], AttentionCapture | None],
                         node: str) -> AttentionCapture:
    """Run ComfyUI's sampler on the patched clone as KSampler would (same noise for the seed) until the
    capture hook raises CaptureComplete at `step`; the hook's capture, or a RuntimeError if it never ran."""
    noise = comfy.sample.prepare_noise(samples, provenance.seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(patched, step + 1, x0_store)
    try:
        comfy.sample.sample(patched, noise, provenance.steps, provenance.cfg, provenance.sampler_name,
                            provenance.scheduler, positive, negative, samples, last_step=step + 1,
                            noise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=provenance.seed)
    except CaptureComplete:
        pass
    capture = capture_of()
    if capture is None:
        raise RuntimeError(f"{node}: the capture step {step} was never evaluated on the positive prompt; "
                           "check that the sampler evaluates every step (not a cached or skipped one)")
    return capture
