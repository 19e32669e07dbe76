"""Count-verified NUMINA: NUMINA Object Counter (a GroundingDINO counter to plug in) and NUMINA Count-Verified
Sampler (generate with NUMINA, count, try again within a budget of videos, keep the best).

A NUMINA_COUNTER is any object with `count(images, nouns) -> {noun: [count per counted frame]}`, `images` an
IMAGE [frames, H, W, 3] of one video. The testbed provides an exact one (testbed/nodes.py).
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import comfy.model_management
import comfy.utils
import nodes as comfy_nodes
import torch
from comfy_api.v0_0_2 import io, ui

from ..numina_core.capture import AttentionCapture
from ..numina_core.grid import SamplingProvenance
from ..numina_core.identify import identify
from ..numina_core import verify
from ..numina_eval.counting import CountProtocol
from ..numina_eval.detection import GroundingDinoDetector
from .adapters import adapter_for
from .common import CATEGORY, NuminaTargetsType, config_from, require_targets, settings_input
from .count_objects import NuminaCountObjects, load_detector, protocol_from_inputs
from .sampling import require_single_video, sampler_inputs

NuminaCounterType = io.Custom("NUMINA_COUNTER")

COUNTER_NODE = "NUMINA Object Counter"
VERIFIED_NODE = "NUMINA Count-Verified Sampler"
DETECTOR_INPUTS = ("detector", "protocol", "box_threshold", "text_threshold", "frames", "merge_iou")
"""The Count Objects inputs that choose and tune the detector; the Object Counter takes the same ones."""


@dataclass
class DetectorCounter:
    """Counts with GroundingDINO under a protocol (which frames, which thresholds), as Count Objects does."""

    detector: GroundingDinoDetector
    protocol: CountProtocol

    def count(self, images: torch.Tensor, nouns: Sequence[str]) -> dict[str, list[int]]:
        frames = [f for f in images[..., :3].cpu().float().numpy()]
        self.detector.to(comfy.model_management.get_torch_device())
        try:
            _, frame_counts, _ = self.detector.count(frames, list(nouns), self.protocol)
        finally:
            self.detector.to("cpu")
        return {noun: [c.get(noun, 0) for c in frame_counts] for noun in nouns}


class NuminaObjectCounter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        count_inputs = NuminaCountObjects.define_schema().inputs
        return io.Schema(
            node_id="NuminaObjectCounter",
            display_name=COUNTER_NODE,
            category=f"{CATEGORY}/eval",
            description="The object detector of NUMINA Count Objects, with the same settings, as a counter for the "
                        "Count-Verified Sampler: it counts each noun in every frame of each try.",
            inputs=[i for i in count_inputs if i.id in DETECTOR_INPUTS],
            outputs=[NuminaCounterType.Output(display_name="counter")],
        )

    @classmethod
    def execute(cls, detector: str, protocol: str, box_threshold: float, text_threshold: float, frames: int,
                merge_iou: float) -> io.NodeOutput:
        chosen = protocol_from_inputs(protocol, box_threshold, text_threshold, frames, merge_iou, COUNTER_NODE)
        return io.NodeOutput(DetectorCounter(load_detector(detector, COUNTER_NODE), chosen))  # loads now: a missing model fails here


def decode_video(vae, samples: torch.Tensor) -> torch.Tensor:
    """One video latent → IMAGE [frames, H, W, 3], as VAE Decode does (video VAEs return [B, F, H, W, 3])."""
    images = vae.decode(samples)
    return images.reshape(-1, *images.shape[-3:]) if images.ndim == 5 else images


class NuminaCountVerifiedSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaCountVerifiedSampler",
            display_name=VERIFIED_NODE,
            category=f"{CATEGORY}/guidance",
            description="Makes the video with NUMINA, counts what it drew, and if a count is wrong tries again, up to "
                        "'budget' videos; returns the best try (right counts in every frame, else the closest, else "
                        "the first). Shows every try's counts. Budget 1 is one NUMINA video.",
            inputs=sampler_inputs() + [
                NuminaTargetsType.Input("targets", tooltip="What the prompt asks for (NUMINA Numeral Parser)."),
                io.Vae.Input("vae", tooltip="The video's VAE, to decode each try for counting."),
                NuminaCounterType.Input("counter", tooltip="What counts the objects (NUMINA Object Counter)."),
                io.Int.Input("budget", default=3, min=1, max=64,
                             tooltip="Most videos to make. It stops at the first one with the right counts."),
                io.Combo.Input("strategy", options=list(verify.STRATEGIES), default=verify.RESEED,
                               tooltip="reseed: each new try is NUMINA with the next seed. retarget: after a wrong "
                                       "try, first try the same seed again, aiming past the miscount (drew 4 of 3 → "
                                       "aim at 2), then the next seed."),
                settings_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The best try."),
                io.Image.Output(display_name="IMAGE", tooltip="The best try, decoded (no need to decode it again)."),
            ],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, targets,
                vae, counter, budget, strategy, settings=None) -> io.NodeOutput:
        node = VERIFIED_NODE
        config = config_from(settings)
        require_targets(targets, node)
        require_single_video(latent_image, node)
        if not callable(getattr(counter, "count", None)):
            raise ValueError(f"{node}: input 'counter' must come from NUMINA Object Counter (or a testbed counter)")
        adapter = adapter_for(model, node)
        adapter.prepare_latent(latent_image["samples"])
        if targets.is_empty:
            latent = comfy_nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                                 latent_image)[0]
            return io.NodeOutput(latent, decode_video(vae, latent["samples"]),
                                 ui=ui.PreviewText("No number in the prompt, so there is nothing to count: this is "
                                                   "one plain KSampler video."))
        block = config.capture_block_for(adapter.blocks)
        adapter.check_capture_block(block)
        capture_step = config.capture_step_for(steps)
        captures: dict[int, AttentionCapture] = {}  # a retargeted try reuses its seed's capture
        bar = comfy.utils.ProgressBar(budget)

        def generate(trial: verify.Try) -> tuple[dict, torch.Tensor]:
            comfy.model_management.throw_exception_if_processing_interrupted()
            if trial.seed not in captures:
                provenance = SamplingProvenance(targets.prompt, trial.seed, int(steps), float(cfg), sampler_name,
                                                scheduler, uuid.uuid4().hex)
                captures[trial.seed] = adapter.capture_attention(provenance, positive, negative, latent_image,
                                                                 targets.token_indices, block, capture_step, config)
            layout = identify(captures[trial.seed], trial.layout_targets, config).refined
            guided, _, _ = adapter.guided_model(layout, targets.token_indices, config, steps, 0)
            latent = comfy_nodes.common_ksampler(guided, trial.seed, steps, cfg, sampler_name, scheduler, positive,
                                                 negative, latent_image)[0]
            return latent, decode_video(vae, latent["samples"])

        def count(result: tuple[dict, torch.Tensor]) -> dict[str, list[int]]:
            return counter.count(result[1], list(targets.counts))

        next_try = strategy_for(strategy, seed, targets.counts, node)
        verification = verify.verify_counts(targets.counts, budget, next_try, generate, count,
                                            on_attempt=lambda a: bar.update_absolute(a.index + 1, budget))
        latent, images = verification.best_result
        report = verify.verification_report(verification, targets.counts, budget)
        return io.NodeOutput(latent, images, ui=ui.PreviewText(report))


def strategy_for(name: str, seed: int, counts: dict[str, int], node: str) -> verify.NextTry:
    try:
        return verify.strategy(name, int(seed), counts)
    except ValueError as error:
        raise ValueError(f"{node}: input 'strategy': {error}") from None


NODES = [NuminaObjectCounter, NuminaCountVerifiedSampler]
