"""Phase 1 and phase 2 samplers: NUMINA Attention Capture KSampler and NUMINA Layout-Guided Sampler."""
from __future__ import annotations

import dataclasses
import logging
import uuid

import comfy.model_management
import comfy.samplers
import nodes as comfy_nodes
import torch
from comfy_api.v0_0_2 import io, ui

from ..numina_core.capture import AttentionCapture
from ..numina_core.grid import FinishedRun, Layout, SamplingProvenance
from ..numina_core.guidance import build_guidance_plan
from ..numina_core.identify import identify
from ..numina_core.preview import count_report
from ..numina_core.targets import NuminaTargets
from .adapters import adapter_for
from .common import (CATEGORY, NuminaCaptureType, NuminaLayoutType, NuminaTargetsType, config_from,
                     require_targets, settings_input)

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
                       tooltip="How closely the video follows the prompt, as in KSampler."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="Sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Noise schedule."),
        io.Conditioning.Input("positive", tooltip="The prompt's conditioning (the counted nouns come from this prompt)."),
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
            description="First pass of NUMINA: starts the video like a KSampler, stops early (60 % of the way, in "
                        "6 quick steps by default), and remembers where the model was about to draw each counted "
                        "object; on the run's own steps it finishes the video when nothing needs correcting. Use "
                        "the same seed, steps, cfg, sampler and scheduler as in the Layout-Guided Sampler.",
            inputs=sampler_inputs() + [
                NuminaTargetsType.Input("targets", tooltip="What the prompt asks for (NUMINA Numeral Parser)."),
                settings_input(),
            ],
            outputs=[
                NuminaCaptureType.Output(display_name="capture"),
                io.Latent.Output(display_name="pre_generation",
                                 tooltip="What the video would have looked like at the point where the first pass "
                                         "stopped (decode it to see it)."),
            ],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, targets,
                settings=None) -> io.NodeOutput:
        node = CAPTURE_NODE
        config = config_from(settings)
        require_targets(targets, node)
        require_single_video(latent_image, node)
        adapter = adapter_for(model, node)
        samples = adapter.prepare_latent(latent_image["samples"])
        grid = adapter.token_grid(samples)
        block = config.capture_block_for(adapter.blocks)
        adapter.check_capture_block(block)
        step = config.capture_step_for(steps)
        provenance = SamplingProvenance(targets.prompt, int(seed), int(steps), float(cfg), sampler_name, scheduler,
                                        uuid.uuid4().hex)
        if targets.is_empty:
            notice = ("No number in the prompt, so there is nothing to count: nothing was captured and the "
                      "guided sampler will draw exactly what a plain KSampler draws.")
            log.warning("%s: %s", node, notice)
            empty = AttentionCapture.empty(grid, step, block, adapter.geometry(), provenance)
            return io.NodeOutput(empty, {"samples": torch.zeros_like(samples)}, ui=ui.PreviewText(notice))
        x0, at_capture = {}, {}
        finish = None
        if config.finish_when_nothing_to_correct and not 0 < config.capture_schedule_steps < step:
            def finish(capture: AttentionCapture) -> bool:
                at_capture["x0"] = x0.get("x0")  # the pre-generation: sampling on would overwrite it
                return nothing_to_correct(capture, targets, config)
        phase_one = adapter.run_phase_one(provenance, positive, negative, latent_image, targets.token_indices,
                                          block, step, config, x0, finish)
        capture = phase_one.capture
        pre = at_capture["x0"] if "x0" in at_capture else x0.get("x0")
        pre = (samples if pre is None else pre).to(comfy.model_management.intermediate_device())
        text = (f"First pass stopped at step {step + 1} of {steps} to see where {', '.join(targets.counts)} would "
                f"be drawn (block {block}).")
        if phase_one.samples is not None:
            finished = FinishedRun(phase_one.samples, latent_fingerprint(latent_image["samples"]))
            capture = dataclasses.replace(capture, provenance=dataclasses.replace(provenance, finished=finished))
            text = (f"First pass looked at step {step + 1} of {steps} (block {block}): the counts need no correction, "
                    "so it finished the video; the Layout-Guided Sampler returns it unless the layout is edited.")
        return io.NodeOutput(capture, {"samples": pre}, ui=ui.PreviewText(text))


def nothing_to_correct(capture: AttentionCapture, targets: NuminaTargets, config) -> bool:
    """Whether the guided run would be plain sampling: its refined layout gives an empty guidance plan, or
    guidance strength is 0."""
    if config.guidance_strength <= 0:
        return True
    refined = identify(capture, targets.counts, config).refined
    return build_guidance_plan(refined, targets.token_indices, config).is_empty


def latent_fingerprint(samples: torch.Tensor) -> tuple:
    """(shape, sum, sum of squares) of a latent: tells the latent a finished run came from apart from others."""
    values = samples.double()
    return tuple(samples.shape), float(values.sum()), float((values * values).sum())


class NuminaLayoutGuidedSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutGuidedSampler",
            display_name=GUIDED_NODE,
            category=f"{CATEGORY}/guidance",
            description="Second pass of NUMINA: makes the video again from the same seed while nudging the model to "
                        "draw the objects to add and to leave out the ones crossed out. With nothing to correct, or "
                        "strength 0, the result is exactly a plain KSampler's. The node says which it did.",
            inputs=sampler_inputs() + [
                NuminaLayoutType.Input("layout", tooltip="The refined layout (Layout Refiner or Mask to Layout)."),
                NuminaTargetsType.Input("targets", tooltip="The same targets the layout was built for."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="As in KSampler."),
                settings_input(),
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
                targets, denoise, settings=None, add_noise=True, start_at_step=0, end_at_step=10000,
                return_with_leftover_noise=False) -> io.NodeOutput:
        node = GUIDED_NODE
        config = config_from(settings)
        require_targets(targets, node)
        require_single_video(latent_image, node)
        check_same_run(layout, targets, seed, steps, cfg, sampler_name, scheduler, add_noise, node)
        adapter = adapter_for(model, node)
        grid = adapter.token_grid(adapter.prepare_latent(latent_image["samples"]))
        if layout.grid != grid:
            raise ValueError(f"{node}: input 'layout' is on a {layout.grid} token grid but 'latent_image' makes "
                             f"{grid}; capture and guide with the same latent size")
        missing = [noun for noun in layout.nouns if noun not in targets.token_indices]
        if missing:
            raise ValueError(f"{node}: input 'targets' has no token columns for {missing}; connect the targets the "
                             "layout was built from")
        sampler_model, hook, notice = adapter.guided_model(layout, targets.token_indices, config, steps,
                                                           start_at_step)
        finished = layout.provenance.finished if layout.provenance is not None else None
        if (hook is None and finished is not None and denoise == 1.0 and add_noise and start_at_step == 0
                and end_at_step >= steps and finished.source == latent_fingerprint(latent_image["samples"])):
            notice += "; the first pass already finished this video"
            log.info("%s: %s", node, notice)
            return io.NodeOutput({**latent_image, "samples": finished.samples},
                                 ui=ui.PreviewText(guidance_report(layout, notice)))
        log.info("%s: %s", node, notice)
        report = guidance_report(layout, notice)
        out = comfy_nodes.common_ksampler(
            sampler_model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            denoise=denoise, disable_noise=not add_noise,
            start_step=start_at_step if start_at_step > 0 else None,
            last_step=end_at_step if end_at_step < steps else None,
            force_full_denoise=not return_with_leftover_noise if end_at_step < steps else False)[0]
        return io.NodeOutput(out, ui=ui.PreviewText(report))


def guidance_report(layout: Layout, notice: str) -> str:
    """What the guided sampler shows: whether it steered at all, and the counts it steered toward."""
    if not layout.nouns:
        return "No counted nouns: this is exactly a plain KSampler's result."
    lead = (f"Steered toward the layout ({notice})." if notice.startswith("guiding")
            else f"Not steered ({notice}): this is exactly a plain KSampler's result.")
    return lead + "\n" + count_report(layout, layout)


def check_same_run(layout: Layout, targets: NuminaTargets, seed: int, steps: int, cfg: float, sampler_name: str,
                   scheduler: str, add_noise: bool, node: str) -> None:
    """Refuse to guide a run other than the one the layout was captured in (other noise or other steps would
    steer a different video), or with targets of another prompt (other token columns). A sampler that adds no
    noise (the second Wan2.2 A14B expert) continues the first one's noise, so its seed does not matter."""
    provenance = layout.provenance
    if provenance is None:
        return
    if provenance.prompt != targets.prompt:
        raise ValueError(f"{node}: inputs 'layout' and 'targets' come from different prompts "
                         f"({provenance.prompt!r} vs {targets.prompt!r}); connect the Numeral Parser that fed the capture")
    mismatches = provenance.mismatches(int(seed), int(steps), float(cfg), sampler_name, scheduler)
    if not add_noise:
        mismatches = [m for m in mismatches if not m.startswith("seed ")]
    if mismatches:
        raise ValueError(f"{node}: this run differs from the capture the layout came from: "
                         + ", ".join(mismatches) + "; use the Attention Capture KSampler's seed, steps, cfg, "
                         "sampler and scheduler here")


NODES = [NuminaAttentionCaptureKSampler, NuminaLayoutGuidedSampler]
