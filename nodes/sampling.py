"""Phase 1 and phase 2 samplers: NUMINA Attention Capture KSampler and NUMINA Layout-Guided Sampler."""
from __future__ import annotations

import logging

import comfy.model_management
import comfy.sample
import comfy.samplers
import nodes as comfy_nodes
import torch
from comfy_api.latest import io, ui

from ..numina_core.capture import AttentionCapture
from ..numina_core.targets import NuminaTargets
from .adapters import wan
from .common import (CATEGORY, NuminaCaptureType, NuminaLayoutType, NuminaTargetsType, build_config,
                     overrides_input, preset_input)

log = logging.getLogger("numina")

CAPTURE_NODE = "NUMINA Attention Capture KSampler"
GUIDED_NODE = "NUMINA Layout-Guided Sampler"


def sampler_inputs() -> list:
    """The KSampler inputs, with the same names, defaults and ranges as ComfyUI's KSampler."""
    return [
        io.Model.Input("model", tooltip="A native Wan model (Load Diffusion Model). It is cloned, never changed."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed. Use the same seed in both NUMINA samplers: phase 2 regenerates "
                             "from the same noise."),
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps of the whole run."),
        io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale. NUMINA reads and steers only the positive pass."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="Sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Noise schedule."),
        io.Conditioning.Input("positive", tooltip="The prompt's conditioning (its nouns are counted)."),
        io.Conditioning.Input("negative", tooltip="The negative prompt's conditioning."),
        io.Latent.Input("latent_image", tooltip="The empty video latent (batch size 1)."),
    ]


def require_single_video(latent: dict, node: str) -> None:
    if latent["samples"].shape[0] != 1:
        raise ValueError(f"{node}: input 'latent_image' has batch size {latent['samples'].shape[0]}; NUMINA builds "
                         "one layout per video, so use batch size 1 (queue several seeds instead)")


class NuminaAttentionCaptureKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaAttentionCaptureKSampler",
            display_name=CAPTURE_NODE,
            category=f"{CATEGORY}/capture",
            description="Phase 1 of NUMINA: samples like KSampler only up to the capture step, records one block's "
                        "self- and cross-attention on the positive pass (compact per-head summaries), and stops.",
            inputs=sampler_inputs() + [
                NuminaTargetsType.Input("targets", tooltip="Counted nouns and their token columns (Numeral Parser)."),
                io.Int.Input("capture_block", default=15, min=0, max=99,
                             tooltip="0-based transformer block whose attention is read (reference: 15)."),
                io.Int.Input("capture_step", default=-1, min=-1, max=10000,
                             tooltip="0-based step to capture at; -1 takes the preset's point on sampling progress "
                                     "(step 20 of 50, i.e. 40 %)."),
                preset_input(),
                overrides_input(),
            ],
            outputs=[
                NuminaCaptureType.Output(display_name="capture"),
                io.Latent.Output(display_name="pre_generation",
                                 tooltip="The model's clean-video prediction at the last step before the capture "
                                         "(decode it to see what would have been drawn)."),
            ],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, targets,
                capture_block, capture_step, preset, overrides=None) -> io.NodeOutput:
        node = CAPTURE_NODE
        config = build_config(node, preset, overrides, reference_layer=capture_block)
        require_single_video(latent_image, node)
        samples = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        grid = wan.token_grid(model, samples, node)
        if not isinstance(targets, NuminaTargets):
            raise ValueError(f"{node}: input 'targets' must come from NUMINA Numeral Parser")
        step = config.capture_step_for(steps) if capture_step < 0 else capture_step
        if step >= steps:
            raise ValueError(f"{node}: input 'capture_step' is {step} but the run has only {steps} steps")
        if targets.is_empty:
            log.warning("%s: no counted nouns; nothing captured (guidance will pass through).", node)
            empty = AttentionCapture(grid, torch.zeros(grid.frames, 0, grid.tokens_per_frame, 3), {}, step, capture_block)
            empty.info["spatial_factor"], empty.info["temporal_stride"] = wan.video_geometry(model)
            return io.NodeOutput(empty, {"samples": torch.zeros_like(samples)},
                                 ui=ui.PreviewText("no counted nouns: nothing captured"))
        x0 = {}
        capture = wan.capture_attention(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                        latent_image, targets.token_indices, capture_block, step, config, node, x0)
        capture.info.update(steps=steps, prompt=targets.prompt)
        pre = x0.get("x0", samples)
        pre = pre.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(capture, {"samples": pre},
                             ui=ui.PreviewText(f"captured block {capture_block} at step {step} of {steps} "
                                               f"(σ = {capture.sigma:.4f}), grid {grid}, {capture.heads} heads"))


class NuminaLayoutGuidedSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutGuidedSampler",
            display_name=GUIDED_NODE,
            category=f"{CATEGORY}/guidance",
            description="Phase 2 of NUMINA: a KSampler that regenerates from the same seed's noise while steering every "
                        "block's cross-attention on the positive pass toward the refined layout (suppress removed "
                        "instances, draw added ones). With nothing to correct, or strength 0, it is exactly KSampler.",
            inputs=sampler_inputs() + [
                NuminaLayoutType.Input("layout", tooltip="The refined layout (Layout Refiner or Mask to Layout)."),
                NuminaTargetsType.Input("targets", tooltip="The same targets the layout was built for (token columns)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Multiplies the guidance bias; 0 turns guidance off (plain KSampler output)."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="As in KSampler."),
                preset_input(),
                overrides_input(),
                io.Boolean.Input("add_noise", default=True, optional=True,
                                 tooltip="As in KSamplerAdvanced; turn off for the second (low-noise) expert of Wan2.2 A14B."),
                io.Int.Input("start_at_step", default=0, min=0, max=10000, optional=True,
                             tooltip="As in KSamplerAdvanced. Guidance follows the global step, so two chained samplers "
                                     "(Wan2.2 A14B experts) see one sampling progress."),
                io.Int.Input("end_at_step", default=10000, min=0, max=10000, optional=True,
                             tooltip="As in KSamplerAdvanced."),
                io.Boolean.Input("return_with_leftover_noise", default=False, optional=True,
                                 tooltip="As in KSamplerAdvanced; turn on for the first (high-noise) expert."),
            ],
            outputs=[io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, layout,
                targets, strength, denoise, preset, overrides=None, add_noise=True, start_at_step=0,
                end_at_step=10000, return_with_leftover_noise=False) -> io.NodeOutput:
        node = GUIDED_NODE
        config = build_config(node, preset, overrides)
        require_single_video(latent_image, node)
        samples = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        grid = wan.token_grid(model, samples, node)
        if layout.grid != grid:
            raise ValueError(f"{node}: input 'layout' is on a {layout.grid} token grid but 'latent_image' makes "
                             f"{grid}; capture and guide with the same latent size")
        sampler_model, _, notice = wan.guided_model(model, layout, targets.token_indices, config, steps, start_at_step,
                                                    strength, node)
        log.info("%s: %s", node, notice)
        out = comfy_nodes.common_ksampler(
            sampler_model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            denoise=denoise, disable_noise=not add_noise,
            start_step=start_at_step if start_at_step > 0 else None,
            last_step=end_at_step if end_at_step < steps else None,
            force_full_denoise=not return_with_leftover_noise if end_at_step < steps else False)[0]
        return io.NodeOutput(out, ui=ui.PreviewText(notice))


NODES = [NuminaAttentionCaptureKSampler, NuminaLayoutGuidedSampler]
