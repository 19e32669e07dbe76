"""The only code that knows ComfyUI's native Wan internals.

Both phases hook a *clone* of the MODEL through ComfyUI's extension points:
* a block replacement (`patches_replace["dit"][("double_block", i)]`) that puts a block-scoped
  `optimized_attention_override` into a copy of `transformer_options` and calls the original block;
* inside it, Wan's attention calls arrive in order: self-attention first, then cross-attention (two calls
  for i2v blocks: image context, then text). The override sees q, k, v exactly as the kernel would.
The positive prompt's batch rows come from `cond_or_uncond`; the sampling step from `sample_sigmas`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

import comfy.ldm.wan.model
import comfy.patcher_extension
import comfy.sample
import comfy.utils
import latent_preview

from ...numina_core.capture import AttentionCapture, split_heads, summarize_cross_attention, summarize_self_attention
from ...numina_core.config import NuminaConfig
from ...numina_core.grid import Layout, TokenGrid
from ...numina_core.guidance import (GuidancePlan, build_guidance_plan, cross_attention_bias, modulated_attention_rows,
                                     modulation_delta, plan_to)

WRAPPER_KEY = "numina"


class CaptureComplete(Exception):
    """Raised right after the capture so phase 1 stops there (the rest of the step is not needed)."""


class _SharedHook:
    """ModelPatcher.clone() deep-copies model_options; a hook must stay one object so that what it
    records is seen by the node that installed it."""

    def __deepcopy__(self, memo):
        return self


def wan_diffusion_model(model, node: str) -> comfy.ldm.wan.model.WanModel:
    """The WanModel inside a MODEL, or a ValueError naming the node and input to fix."""
    diffusion_model = model.get_model_object("diffusion_model")
    if not isinstance(diffusion_model, comfy.ldm.wan.model.WanModel):
        raise ValueError(f"{node}: input 'model' is a {type(diffusion_model).__name__}; NUMINA works on ComfyUI's "
                         "native Wan models (Wan2.1, Wan2.2) loaded with the Load Diffusion Model node")
    return diffusion_model


def token_grid(model, latent: torch.Tensor, node: str) -> TokenGrid:
    """The token grid a [B, C, T, H, W] latent becomes in the model's patch embedding."""
    diffusion_model = wan_diffusion_model(model, node)
    if latent.ndim != 5:
        raise ValueError(f"{node}: input 'latent_image' has shape {tuple(latent.shape)}; a Wan video latent is "
                         "[batch, channels, frames, height, width] (use EmptyHunyuanLatentVideo or a Wan latent node)")
    pt, ph, pw = diffusion_model.patch_size
    frames, height, width = latent.shape[2:]
    return TokenGrid(math.ceil(frames / pt), math.ceil(height / ph), math.ceil(width / pw))


def video_geometry(model) -> tuple[int, int]:
    """(pixels per token side, video frames per latent frame after the first): VAE stride × patch.
    Wan2.1 / A14B: (16, 4); Wan2.2 5B: (32, 4); a latent format may state its own strides."""
    diffusion_model = model.get_model_object("diffusion_model")
    latent_format = model.get_model_object("latent_format")
    spatial = getattr(latent_format, "spacial_downscale_ratio", 16 if latent_format.latent_channels == 48 else 8)
    temporal = getattr(latent_format, "temporal_downscale_ratio", 4)
    return spatial * diffusion_model.patch_size[1], temporal * diffusion_model.patch_size[0]


def text_call_index(diffusion_model: comfy.ldm.wan.model.WanModel) -> int:
    """Which attention call of a block is the text cross-attention (i2v blocks attend to the image first)."""
    cross = diffusion_model.blocks[0].cross_attn
    return 2 if isinstance(cross, comfy.ldm.wan.model.WanI2VCrossAttention) else 1


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


def _with_override(args: dict, override: Callable) -> dict:
    options = dict(args["transformer_options"])
    previous = options.get("optimized_attention_override")

    def chained(func, *a, **kw):
        def plain(*pa, **pkw):
            return previous(func, *pa, **pkw) if previous is not None else func(*pa, **pkw)
        return override(plain, *a, **kw)

    options["optimized_attention_override"] = chained
    return {**args, "transformer_options": options}


def _pass_through(args: dict, extra: dict) -> dict:
    return extra["original_block"](args)


def _check_tokens(q: torch.Tensor, grid: TokenGrid, node: str) -> None:
    if q.shape[1] != grid.tokens:
        raise ValueError(f"{node}: the model sees {q.shape[1]} video tokens but the layout grid {grid} has "
                         f"{grid.tokens}; the latent's size must match the one the layout was captured with")


class AttentionCaptureHook(_SharedHook):
    """Captures block ℓ*'s attention at the capture step on the positive pass, then stops sampling."""

    def __init__(self, grid: TokenGrid, block: int, step: int, noun_tokens: dict[str, list[int]],
                 config: NuminaConfig, text_call: int, node: str):
        self.grid, self.block, self.step = grid, block, step
        self.noun_tokens, self.config, self.text_call, self.node = noun_tokens, config, text_call, node
        self.capture: AttentionCapture | None = None
        self.sigma = float("nan")
        self.step_of = StepOfCall()

    def replace_block(self, args: dict, extra: dict) -> dict:
        options = args["transformer_options"]
        step, exact = self.step_of(options)
        if self.capture is not None or step != self.step or not exact or 0 not in options.get("cond_or_uncond", [0]):
            return extra["original_block"](args)
        row = positive_rows(options, args["img"].shape[0])[0]
        calls: list[int] = []
        results: dict = {}

        def override(plain, *a, **kw):
            q, k = a[0], a[1]
            heads = kw["heads"] if "heads" in kw else a[3]
            if len(calls) == 0:
                _check_tokens(q, self.grid, self.node)
                results["projections"] = summarize_self_attention(
                    q, k, heads, self.grid, row, power_iterations=self.config.pca_power_iterations,
                    oversamples=self.config.pca_oversamples)
            elif len(calls) == self.text_call:
                results["cross"] = summarize_cross_attention(q, k, heads, self.grid, row, self.noun_tokens)
            calls.append(1)
            return plain(*a, **kw)

        extra["original_block"](_with_override(args, override))
        self.sigma = float(options["sigmas"].flatten()[0])
        self.capture = AttentionCapture(self.grid, results["projections"], results["cross"], self.step,
                                        self.block, self.sigma)
        raise CaptureComplete

    def force_capture_step(self, executor, *args, **kwargs):
        """DIFFUSION_MODEL wrapper, outermost: EasyCache must never skip the capture step."""
        options = args[-1] if isinstance(args[-1], dict) else kwargs.get("transformer_options", {})
        holder = options.get("easycache")
        if holder is not None and current_step(options) == (self.step, True):
            holder.cumulative_change_rate = math.inf
            holder.skip_current_step = False
        return executor(*args, **kwargs)


class CrossAttentionGuidanceHook(_SharedHook):
    """Adds the guidance bias to every block's text cross-attention on the positive pass."""

    def __init__(self, plan: GuidancePlan, config: NuminaConfig, total_steps: int, first_step: int,
                 strength: float, text_call: int, node: str):
        self.plan, self.config = plan, config
        self.total_steps, self.first_step = total_steps, first_step
        self.strength, self.text_call, self.node = strength, text_call, node
        self._device_plan: GuidancePlan | None = None
        self.step_of = StepOfCall()
        self.modulated_calls = 0
        self.collect_diagnostics = False
        self.diagnostics: list[tuple[torch.Tensor, torch.Tensor]] = []
        """(plain, guided) probability mass on the nouns' tokens per modulated row, when collected."""

    def plan_on(self, device: torch.device) -> GuidancePlan:
        if self._device_plan is None or self._device_plan.rows.device != device:
            self._device_plan = plan_to(self.plan, device)
        return self._device_plan

    def replace_block(self, args: dict, extra: dict) -> dict:
        options = args["transformer_options"]
        if 0 not in options.get("cond_or_uncond", [0]):
            return extra["original_block"](args)
        local_step, _ = self.step_of(options)
        delta = modulation_delta(self.first_step + local_step, self.total_steps, self.config)
        if delta is None:
            return extra["original_block"](args)
        rows = positive_rows(options, args["img"].shape[0])
        calls: list[int] = []

        def override(plain, *a, **kw):
            index = len(calls)
            calls.append(1)
            out = plain(*a, **kw)
            if index != self.text_call:
                return out
            q, k, v = a[0], a[1], a[2]
            heads = kw["heads"] if "heads" in kw else a[3]
            _check_tokens(q, self.plan.grid, self.node)
            plan = self.plan_on(q.device)
            for row in rows:
                qh, kh, vh = (split_heads(t[row], heads) for t in (q, k, v))
                bias = cross_attention_bias(qh, kh, plan, delta, self.strength)
                out[row, plan.rows] = modulated_attention_rows(qh, kh, vh, plan, bias).to(out.dtype)
                if self.collect_diagnostics:
                    self.diagnostics.append(self._noun_mass(qh, kh, plan, bias))
            self.modulated_calls += 1
            return out

        return extra["original_block"](_with_override(args, override))


    @staticmethod
    def _noun_mass(q: torch.Tensor, k: torch.Tensor, plan: GuidancePlan, bias: torch.Tensor):
        """Per modulated row, the head-mean probability on the text tokens that row's bias targets."""
        logits = (q[:, plan.rows].float() @ k.float().transpose(1, 2)) / math.sqrt(q.shape[-1])
        targeted = (bias != 0).float()
        plain = (torch.softmax(logits, -1) * targeted).sum(-1).mean(0)
        guided = (torch.softmax(logits + bias, -1) * targeted).sum(-1).mean(0)
        return plain.cpu(), guided.cpu()


def install_capture(model, hook: AttentionCaptureHook):
    """A clone of `model` with the capture hook on block ℓ* (and pass-through replacements after it, which
    lets ComfyUI free the replaced block's output early)."""
    clone = model.clone()
    blocks = len(wan_diffusion_model(model, hook.node).blocks)
    if not 0 <= hook.block < blocks:
        raise ValueError(f"{hook.node}: input 'block' is {hook.block}; this model has blocks 0–{blocks - 1}")
    clone.set_model_patch_replace(hook.replace_block, "dit", "double_block", hook.block)
    for i in range(hook.block + 1, blocks):
        clone.set_model_patch_replace(_pass_through, "dit", "double_block", i)
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, hook.force_capture_step)
    # Outermost, so that it runs before an EasyCache wrapper decides to skip the step.
    others = clone.wrappers[comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL]
    clone.wrappers[comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL] = {WRAPPER_KEY: others.pop(WRAPPER_KEY), **others}
    return clone


def install_guidance(model, hook: CrossAttentionGuidanceHook):
    """A clone of `model` with the guidance hook on every block."""
    clone = model.clone()
    for i in range(len(wan_diffusion_model(model, hook.node).blocks)):
        clone.set_model_patch_replace(hook.replace_block, "dit", "double_block", i)
    return clone


def capture_attention(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive,
                      negative, latent: dict, noun_tokens: dict[str, list[int]], block: int, step: int,
                      config: NuminaConfig, node: str, x0_store: dict | None = None) -> AttentionCapture:
    """Phase 1: sample like KSampler (same noise for the seed) up to `step`, capture block `block` there on
    the positive pass, and stop. The clean-video prediction of the last finished step lands in x0_store."""
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    grid = token_grid(model, samples, node)
    hook = AttentionCaptureHook(grid, block, step, noun_tokens, config,
                                text_call_index(wan_diffusion_model(model, node)), node)
    patched = install_capture(model, hook)
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(patched, step + 1, x0_store)
    try:
        comfy.sample.sample(patched, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                            last_step=step + 1, noise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    except CaptureComplete:
        pass
    if hook.capture is None:
        raise RuntimeError(f"{node}: the capture step {step} was never evaluated on the positive prompt; "
                           "check that the sampler evaluates every step (not a cached or skipped one)")
    hook.capture.info["spatial_factor"], hook.capture.info["temporal_stride"] = video_geometry(model)
    return hook.capture


def guided_model(model, layout: Layout, noun_tokens: dict[str, list[int]], config: NuminaConfig, steps: int,
                 first_step: int, strength: float, node: str) -> tuple[object, CrossAttentionGuidanceHook | None, str]:
    """Phase 2: the model to sample with — a guided clone, or the MODEL itself when there is nothing to
    correct or strength is 0 (then sampling is exactly KSampler's) — its hook, and a notice for the user."""
    missing = [noun for noun in layout.nouns if noun not in noun_tokens]
    if missing:
        raise ValueError(f"{node}: input 'targets' has no token columns for {missing}; connect the targets the "
                         "layout was built from")
    plan = build_guidance_plan(layout, noun_tokens, config)
    if plan.is_empty:
        return model, None, "nothing to correct: plain KSampler output"
    if strength <= 0:
        return model, None, "strength 0: plain KSampler output"
    hook = CrossAttentionGuidanceHook(plan, config, steps, first_step, strength,
                                      text_call_index(wan_diffusion_model(model, node)), node)
    return install_guidance(model, hook), hook, f"guiding {len(plan.rows)} video tokens on {len(plan.columns)} text tokens"
