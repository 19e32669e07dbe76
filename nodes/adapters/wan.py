"""The Wan adapter: the only code that knows ComfyUI's native Wan internals (Wan2.1, Wan2.2 5B and A14B,
and the project's pixel-space testbed, which is a WanModel too).

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
import comfy.sample

from ...numina_core.capture import AttentionCapture, split_heads, summarize_cross_attention, summarize_self_attention
from ...numina_core.config import NuminaConfig
from ...numina_core.grid import SamplingProvenance, TokenGrid, VideoGeometry
from ...numina_core.guidance import (GuidancePlan, masked_attention, modulated_attention_rows, modulation_delta,
                                     write_assigned_bias)
from ...numina_core.token_mapping import PromptTokenizer, SentencePieceTokenizer
from .contract import GuidanceHook, ModelAdapter
from .hooks import (CaptureComplete, PhaseOne, SharedHook, StepOfCall, add_outermost_wrapper, check_video_tokens,
                    force_step_evaluation, pass_through, positive_rows, run_phase_one, with_override)


class AttentionCaptureHook(SharedHook):
    """Captures block ℓ*'s attention at the capture step on the positive pass, then stops sampling."""

    def __init__(self, grid: TokenGrid, block: int, step: int, noun_tokens: dict[str, list[int]],
                 config: NuminaConfig, text_call: int, node: str, geometry: VideoGeometry,
                 provenance: SamplingProvenance):
        self.grid, self.block, self.step = grid, block, step
        self.geometry, self.provenance = geometry, provenance
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
                check_video_tokens(q.shape[1], self.grid, self.node)
                results["projections"] = summarize_self_attention(
                    q, k, heads, self.grid, row, power_iterations=self.config.pca_power_iterations,
                    oversamples=self.config.pca_oversamples)
            elif len(calls) == self.text_call:
                results["cross"] = summarize_cross_attention(q, k, heads, self.grid, row, self.noun_tokens)
            calls.append(1)
            return plain(*a, **kw)

        extra["original_block"](with_override(args, override))
        self.sigma = float(options["sigmas"].flatten()[0])
        self.capture = AttentionCapture(self.grid, results["projections"], results["cross"], self.step,
                                        self.block, self.sigma, self.geometry, self.provenance)
        raise CaptureComplete


class CrossAttentionGuidanceHook(GuidanceHook):
    """Adds the guidance bias to every block's text cross-attention on the positive pass.

    A plan covering less than `dense_row_fraction` of the video tokens lets the host's attention run on the
    whole batch and recomputes the plan's rows; a larger one (background suppression covers nearly every row)
    computes the positive batch rows once with the bias, and the host's attention only the others."""

    dense_row_fraction = 0.5

    def __init__(self, plan: GuidancePlan, config: NuminaConfig, total_steps: int, first_step: int,
                 text_call: int, node: str):
        super().__init__(plan, config, total_steps, first_step, node)
        self.text_call = text_call

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
            if index != self.text_call:
                return plain(*a, **kw)
            q, k, v = a[0], a[1], a[2]
            heads = kw["heads"] if "heads" in kw else a[3]
            check_video_tokens(q.shape[1], self.plan.grid, self.node)
            plan = self.plan_on(q.device)
            dense = len(plan.rows) >= self.dense_row_fraction * q.shape[1]
            step = self.step_mask_for(plan, delta, k.shape[1], q.dtype, q.shape[1] if dense else None)
            if dense:
                out = None
                for other in (r for r in range(q.shape[0]) if r not in rows):
                    part = plain(q[other:other + 1], k[other:other + 1], v[other:other + 1], *a[3:], **kw)
                    out = part.new_empty((q.shape[0],) + part.shape[1:]) if out is None else out
                    out[other:other + 1] = part
            else:
                out = plain(*a, **kw)
            for row in rows:
                qh, kh, vh = (split_heads(t[row], heads) for t in (q, k, v))
                write_assigned_bias(step, qh, kh, plan)
                if dense:
                    guided = masked_attention(qh, kh, vh, step.mask)
                    out = guided.new_empty((q.shape[0],) + guided.shape) if out is None else out
                    out[row] = guided.to(out.dtype)
                else:
                    out[row, plan.rows] = modulated_attention_rows(qh, kh, vh, plan, step).to(out.dtype)
                if self.collect_diagnostics:
                    self.diagnostics.append(self._noun_mass(qh, kh, plan, step.on_plan_rows().float()))
            self.modulated_calls += 1
            return out

        return extra["original_block"](with_override(args, override))

    @staticmethod
    def _noun_mass(q: torch.Tensor, k: torch.Tensor, plan: GuidancePlan, bias: torch.Tensor):
        """Per modulated row, the head-mean probability on the text tokens that row's bias targets."""
        logits = (q[:, plan.rows].float() @ k.float().transpose(1, 2)) / math.sqrt(q.shape[-1])
        targeted = (bias != 0).float()
        plain = (torch.softmax(logits, -1) * targeted).sum(-1).mean(0)
        guided = (torch.softmax(logits + bias, -1) * targeted).sum(-1).mean(0)
        return plain.cpu(), guided.cpu()


class WanAdapter(ModelAdapter):
    family = "Wan"

    @classmethod
    def handles(cls, model) -> bool:
        return isinstance(model.get_model_object("diffusion_model"), comfy.ldm.wan.model.WanModel)

    @classmethod
    def prompt_tokenizer(cls, clip) -> PromptTokenizer | None:
        """The umt5 sentencepiece tokenizer of Wan's text encoder (CLIPLoader type 'wan')."""
        try:
            return SentencePieceTokenizer(clip.tokenizer.clip_umt5xxl.tokenizer.tokenizer)
        except AttributeError:
            return None

    @property
    def diffusion_model(self) -> comfy.ldm.wan.model.WanModel:
        return self.model.get_model_object("diffusion_model")

    @property
    def blocks(self) -> int:
        return len(self.diffusion_model.blocks)

    def prepare_latent(self, samples: torch.Tensor) -> torch.Tensor:
        samples = comfy.sample.fix_empty_latent_channels(self.model, samples)
        if samples.ndim != 5:
            raise ValueError(f"{self.node}: input 'latent_image' has shape {tuple(samples.shape)}; a Wan video latent "
                             "is [batch, channels, frames, height, width] (use EmptyHunyuanLatentVideo or a Wan "
                             "latent node)")
        return samples

    def token_grid(self, samples: torch.Tensor) -> TokenGrid:
        pt, ph, pw = self.diffusion_model.patch_size
        frames, height, width = samples.shape[2:]
        return TokenGrid(math.ceil(frames / pt), math.ceil(height / ph), math.ceil(width / pw))

    def geometry(self) -> VideoGeometry:
        """VAE stride × patch. Wan2.1 / A14B: (16, 4); Wan2.2 5B: (32, 4); a latent format may state its own
        strides (the testbed's pixel space: (2, 1))."""
        latent_format = self.model.get_model_object("latent_format")
        spatial = getattr(latent_format, "spacial_downscale_ratio", 16 if latent_format.latent_channels == 48 else 8)
        temporal = getattr(latent_format, "temporal_downscale_ratio", 4)
        patch = self.diffusion_model.patch_size
        return VideoGeometry(spatial * patch[1], temporal * patch[0])

    def text_call_index(self) -> int:
        """Which attention call of a block is the text cross-attention (i2v blocks attend to the image first)."""
        cross = self.diffusion_model.blocks[0].cross_attn
        return 2 if isinstance(cross, comfy.ldm.wan.model.WanI2VCrossAttention) else 1

    def run_phase_one(self, provenance: SamplingProvenance, positive, negative, latent: dict,
                      noun_tokens: dict[str, list[int]], block: int, step: int, config: NuminaConfig,
                      x0_store: dict | None = None,
                      finish: Callable[[AttentionCapture], bool] | None = None) -> PhaseOne:
        self.check_capture_block(block)
        samples = self.prepare_latent(latent["samples"])
        hook = AttentionCaptureHook(self.token_grid(samples), block, step, noun_tokens, config, self.text_call_index(),
                                    self.node, self.geometry(), provenance)
        patched = self.model.clone()
        patched.set_model_patch_replace(hook.replace_block, "dit", "double_block", block)
        # Pass-through replacements after ℓ* let ComfyUI free the replaced block's output early.
        for later in range(block + 1, self.blocks):
            patched.set_model_patch_replace(pass_through, "dit", "double_block", later)
        add_outermost_wrapper(patched, force_step_evaluation(step))
        return run_phase_one(patched, provenance, positive, negative, latent, samples, step, x0_store,
                             lambda: hook.capture, self.node, config.capture_schedule_steps, finish)

    def install_guidance(self, plan: GuidancePlan, config: NuminaConfig, steps: int,
                         first_step: int) -> tuple[object, GuidanceHook]:
        hook = CrossAttentionGuidanceHook(plan, config, steps, first_step, self.text_call_index(), self.node)
        clone = self.model.clone()
        for i in range(self.blocks):
            clone.set_model_patch_replace(hook.replace_block, "dit", "double_block", i)
        return clone, hook
