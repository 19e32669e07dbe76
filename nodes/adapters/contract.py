"""The model-adapter contract: what a model family implements so the NUMINA nodes can run on it.

A family's adapter is the only code that knows that family's ComfyUI internals. The nodes ask the
registry (`nodes.adapters.adapter_for`) for the adapter of a MODEL, or the tokenizer of a CLIP, and never
name a family. Adding a family means one adapter module, its entry in `nodes.adapters.ADAPTERS`, and tests.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch

from ...numina_core.capture import AttentionCapture
from ...numina_core.config import NuminaConfig
from ...numina_core.grid import Layout, SamplingProvenance, TokenGrid, VideoGeometry
from ...numina_core.guidance import GuidancePlan, StepMask, build_guidance_plan, plan_to, step_mask
from ...numina_core.token_mapping import PromptTokenizer
from .hooks import PhaseOne, SharedHook, StepOfCall


class GuidanceHook(SharedHook):
    """The state every family's guidance hook keeps: the plan (moved to the sampling device once), the
    schedule's position, and what tests and diagnostics read after sampling."""

    def __init__(self, plan: GuidancePlan, config: NuminaConfig, total_steps: int, first_step: int, node: str):
        self.plan, self.config = plan, config
        self.total_steps, self.first_step = total_steps, first_step
        self.strength, self.node = config.guidance_strength, node
        self._device_plan: GuidancePlan | None = None
        self._step_mask: tuple[tuple, StepMask] | None = None
        self.step_of = StepOfCall()
        self.modulated_calls = 0
        """Attention calls whose rows were modulated."""
        self.collect_diagnostics = False
        self.diagnostics: list[tuple[torch.Tensor, torch.Tensor]] = []
        """(plain, guided) probability mass on the targeted text tokens per modulated row, when collected."""

    def plan_on(self, device: torch.device) -> GuidancePlan:
        if self._device_plan is None or self._device_plan.rows.device != device:
            self._device_plan = plan_to(self.plan, device)
        return self._device_plan

    def step_mask_for(self, plan: GuidancePlan, delta: float, text_tokens: int, dtype: torch.dtype,
                      video_tokens: int | None = None) -> StepMask:
        """The mask of the step at `delta`, built by its first block call and reused by the others (only the
        latest is kept: a step's calls come together)."""
        key = (delta, text_tokens, dtype, video_tokens, plan.rows.device)
        if self._step_mask is None or self._step_mask[0] != key:
            self._step_mask = key, step_mask(plan, delta, self.strength, text_tokens, dtype, video_tokens)
        return self._step_mask[1]


class ModelAdapter(ABC):
    """One model family on ComfyUI. An instance wraps one MODEL; `node` names the node for messages."""

    family: str
    """Name shown to users ("Wan", "CogVideoX")."""

    def __init__(self, model, node: str):
        self.model = model
        self.node = node

    @classmethod
    @abstractmethod
    def handles(cls, model) -> bool:
        """Whether this adapter runs `model` (a ComfyUI MODEL / ModelPatcher)."""

    @classmethod
    @abstractmethod
    def prompt_tokenizer(cls, clip) -> PromptTokenizer | None:
        """The tokenizer of this family's text encoder inside a ComfyUI CLIP, or None if it is not one."""

    @property
    @abstractmethod
    def blocks(self) -> int:
        """Transformer blocks of the model (the capture block is one of them)."""

    @abstractmethod
    def prepare_latent(self, samples: torch.Tensor) -> torch.Tensor:
        """The latent as the sampler will see it (e.g. empty latents given the model's channels), checked
        for shape; a ValueError names the node and input 'latent_image'."""

    @abstractmethod
    def token_grid(self, samples: torch.Tensor) -> TokenGrid:
        """The video-token grid a prepared latent becomes in the model's patch embedding."""

    @abstractmethod
    def geometry(self) -> VideoGeometry:
        """How the token grid lies on the decoded video."""

    @abstractmethod
    def run_phase_one(self, provenance: SamplingProvenance, positive, negative, latent: dict,
                      noun_tokens: dict[str, list[int]], block: int, step: int, config: NuminaConfig,
                      x0_store: dict | None = None,
                      finish: Callable[[AttentionCapture], bool] | None = None) -> PhaseOne:
        """Phase 1: sample as KSampler would (same noise for the seed) up to `step` — on a short schedule when
        config.capture_schedule_steps asks for one — capture block `block` on the positive pass there, and
        stop; or, with `finish`, let finish(capture) decide whether sampling goes on to the end (the video is
        then KSampler's). The clean-video prediction of the last finished step lands in x0_store["x0"]."""

    def capture_attention(self, provenance: SamplingProvenance, positive, negative, latent: dict,
                          noun_tokens: dict[str, list[int]], block: int, step: int, config: NuminaConfig,
                          x0_store: dict | None = None) -> AttentionCapture:
        """Phase 1's capture (run_phase_one without finishing)."""
        return self.run_phase_one(provenance, positive, negative, latent, noun_tokens, block, step, config,
                                  x0_store).capture

    def guided_model(self, layout: Layout, noun_tokens: dict[str, list[int]], config: NuminaConfig, steps: int,
                     first_step: int) -> tuple[object, GuidanceHook | None, str]:
        """Phase 2: (the model to sample with, its hook, a notice). The MODEL itself, unpatched, when there is
        nothing to correct or the strength is 0 (sampling is then exactly KSampler's); else a guided clone."""
        plan = build_guidance_plan(layout, noun_tokens, config)
        if plan.is_empty:
            return self.model, None, "nothing to correct: plain KSampler output"
        if config.guidance_strength <= 0:
            return self.model, None, "strength 0: plain KSampler output"
        clone, hook = self.install_guidance(plan, config, steps, first_step)
        return clone, hook, f"guiding {len(plan.rows)} video tokens on {len(plan.columns)} text tokens"

    @abstractmethod
    def install_guidance(self, plan: GuidancePlan, config: NuminaConfig, steps: int,
                         first_step: int) -> tuple[object, GuidanceHook]:
        """A clone of the MODEL whose attention follows `plan` on the positive pass, and its hook."""

    def check_capture_block(self, block: int) -> None:
        if not 0 <= block < self.blocks:
            raise ValueError(f"{self.node}: capture block {block} does not exist; this {self.family} model has "
                             f"blocks 0–{self.blocks - 1} (NUMINA Settings, input 'capture_block')")
