"""The CogVideoX adapter: the only code that knows ComfyUI's native CogVideoX port (ComfyUI ≥ 0.33,
`comfy/ldm/cogvideo`; CogVideoX-2B, 5B and 1.5-5B text-to-video).

**Hook.** `CogVideoXTransformer3DModel` has no `patches_replace["dit"]` block replacement and sets no
`block_index`, but every block calls `optimized_attention(..., transformer_options=...)` exactly once, in
block order, with the model call's own `transformer_options`. So a DIFFUSION_MODEL wrapper (registered on a
*clone* of the MODEL) puts into a copy of that call's `transformer_options` an `optimized_attention_override`
that numbers the attention calls: call i is block i. The override sees q, k, v exactly as the kernel would
(after the per-head LayerNorm, RoPE on the video part). The positive rows come from `cond_or_uncond`, the
sampling step from `sample_sigmas`, the text length from the wrapper's `context` argument.

**Joint attention.** A CogVideoX block runs ONE softmax over the keys [text (T = 226); video (L)] for every
query, text and video alike; Wan has a separate video→video self-attention and a video→text cross-attention
whose softmax runs over the 512 text slots only. How NUMINA's quantities map onto the joint softmax:

* self-attention maps: the video-query → video-key block, per frame, renormalised over the frame's own keys
  (intra-frame). Renormalising removes the text keys and the other frames alike, so this is *exactly* the
  quantity Wan's capture computes (`summarize_self_attention` on q, k of the video tokens).
* cross-attention maps: the video-query → text-key block, **renormalised over the text keys**:
  r_h(p) = mean_{j∈K} softmax_{j'∈text}(s_h(p, j')). In the joint softmax the noun's probability is
  r_h(p)·m_h(p), where m_h(p) = Σ_text / Σ_all is the share of row p that goes to text at all; m_h(p)
  is the same for every noun, varies from pixel to pixel with how much that pixel attends to the video
  instead, and is small (226 text keys against 17 550 video keys at 720×480×49). Renormalising divides it
  out, so the maps answer "which noun does this pixel read" as Wan's do, and the thresholds tuned on Wan
  (peak ratios) keep their meaning; the joint probability would mix that with "how much does this pixel
  read text". It is also cheaper: it needs only q_video·k_textᵀ, never the L×L block. (The joint
  value is recoverable: the tests check r·m against a float64 joint softmax.)
* guidance: the bias B (same formulas as Wan: suppress −s·δ, circle +c·δ, reference δ·ā − mean_h s_h) is
  added to the logits of the modulated video rows on the noun's text columns **inside the joint softmax**
  (one softmax over text and video keys, as the model computes it). A logit bias b multiplies the column's
  odds as in Wan, p' = p·eᵇ/(1 − p + p·eᵇ), but p is now the joint probability and the mass a positive bias
  gains is taken mostly from video keys (in Wan: from the other text slots), so at equal δ the output row
  mixes in more of the noun's value vector at the expense of the row's video context; suppression drives the
  noun's columns to ~0 in both. Text rows (the text stream also queries the video) and the negative pass
  are left untouched, as is every unmodulated video row (the host kernel's output).
* the reference rule ā (mean logit of the frame's smallest detected instance on the noun's tokens) is a
  logit, not a probability, so it transfers unchanged.

Where the backend cannot take a bias, the modulated rows are recomputed with PyTorch's SDPA over all keys of
the joint sequence, in row chunks of ROW_CHUNK_BYTES (on CUDA a whole layout's rows usually fit one call).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import torch

import comfy.patcher_extension
import comfy.sample

try:
    from comfy.ldm.cogvideo.model import CogVideoXTransformer3DModel
    from comfy.text_encoders.cogvideo import CogVideoXT5Tokenizer
except ImportError:  # ComfyUI before 0.33 has no native CogVideoX: the adapter then handles nothing
    CogVideoXTransformer3DModel = CogVideoXT5Tokenizer = None

from ...numina_core.capture import AttentionCapture, split_heads, summarize_cross_attention, summarize_self_attention
from ...numina_core.config import NuminaConfig
from ...numina_core.grid import SamplingProvenance, TokenGrid, VideoGeometry
from ...numina_core.guidance import GuidancePlan, masked_attention, modulation_delta, write_assigned_bias
from ...numina_core.token_mapping import PromptTokenizer
from .contract import GuidanceHook, ModelAdapter
from .hooks import (CaptureComplete, PhaseOne, SharedHook, StepOfCall, add_outermost_wrapper, check_video_tokens,
                    force_step_evaluation, positive_rows, run_phase_one, with_override)

WRAPPER_KEY = "numina_cogvideox"
ROW_CHUNK_BYTES = 256 * 1024 * 1024
"""Working memory of one chunk of recomputed rows: on CUDA their additive mask (SDPA's memory-efficient kernel
takes it without materializing the logits), elsewhere their fp32 logits over all heads and keys (the math
kernel materializes them). On CUDA a whole layout's rows fit one call: many small calls each re-read every key
and leave most of the GPU idle (2.2× plain sampling for CogVideoX-5B at 81-row chunks, issue 12)."""


class T5PromptTokenizer:
    """`PromptTokenizer` over ComfyUI's CogVideoX T5 tokenizer: the prompt's ids are exactly those ComfyUI
    encodes (its own weight parsing, no BOS, EOS, padding to 226 removed); words are encoded by the same
    Hugging Face T5 tokenizer without EOS."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pieces = tokenizer.tokenizer
        self.special_ids = set(self.pieces.all_special_ids)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Raises ValueError for a prompt naming a textual-inversion embedding (its columns are vectors)."""
        ids = [token for batch in self.tokenizer.tokenize_with_weights(prompt) for token, _ in batch]
        if not all(isinstance(token, int) for token in ids):
            raise ValueError("the prompt uses a textual-inversion embedding ('embedding:…'); its token columns "
                             "cannot be known, remove it from the prompt")
        while ids and ids[-1] == self.tokenizer.pad_token:
            ids.pop()
        return ids

    def encode_words(self, text: str) -> list[int]:
        return list(self.pieces(text)["input_ids"][:-1])

    def decode_piece(self, token_id: int) -> str:
        if token_id in self.special_ids:
            return ""
        return self.pieces.convert_ids_to_tokens(token_id).replace("\u2581", " ")


def joint_attention_wrapper(attend: Callable, wants_call: Callable[[dict], object]):
    """A DIFFUSION_MODEL wrapper for CogVideoXTransformer3DModel.forward(x, timestep, context, ofs,
    transformer_options). When `wants_call(transformer_options)` returns a state (not None), the model call
    runs with an override that hands every joint-attention call to
    `attend(state, block, text_length, transformer_options, plain, *args, **kwargs)`."""

    def wrapper(executor, x, timestep, context, ofs, transformer_options, **kwargs):
        state = wants_call(transformer_options)
        if state is None:
            return executor(x, timestep, context, ofs, transformer_options, **kwargs)
        blocks = itertools.count()
        text_length = context.shape[1]

        def override(plain, *a, **kw):
            return attend(state, next(blocks), text_length, transformer_options, plain, *a, **kw)

        options = with_override({"transformer_options": transformer_options}, override)["transformer_options"]
        return executor(x, timestep, context, ofs, options, **kwargs)

    return wrapper


def heads_of(args: tuple, kwargs: dict) -> int:
    return kwargs["heads"] if "heads" in kwargs else args[3]


class JointAttentionCaptureHook(SharedHook):
    """Captures block ℓ*'s joint attention at the capture step on the positive pass, then stops sampling."""

    def __init__(self, grid: TokenGrid, block: int, step: int, noun_tokens: dict[str, list[int]],
                 config: NuminaConfig, node: str, geometry: VideoGeometry, provenance: SamplingProvenance):
        self.grid, self.block, self.step = grid, block, step
        self.noun_tokens, self.config, self.node = noun_tokens, config, node
        self.geometry, self.provenance = geometry, provenance
        self.capture: AttentionCapture | None = None
        self.step_of = StepOfCall()

    def wants_call(self, options: dict):
        step, exact = self.step_of(options)
        if self.capture is not None or step != self.step or not exact or 0 not in options.get("cond_or_uncond", [0]):
            return None
        return True

    def attend(self, _, block: int, text_length: int, options: dict, plain, *a, **kw):
        if block != self.block or self.capture is not None:  # a model call re-run after the capture passes through
            return plain(*a, **kw)
        q, k = a[0], a[1]
        heads = heads_of(a, kw)
        check_video_tokens(q.shape[1] - text_length, self.grid, self.node)
        row = positive_rows(options, q.shape[0])[0]
        q_video, k_video, k_text = q[:, text_length:], k[:, text_length:], k[:, :text_length]
        projections = summarize_self_attention(q_video, k_video, heads, self.grid, row,
                                               power_iterations=self.config.pca_power_iterations,
                                               oversamples=self.config.pca_oversamples)
        cross = summarize_cross_attention(q_video, k_text, heads, self.grid, row, self.noun_tokens)
        sigma = float(options["sigmas"].flatten()[0])
        self.capture = AttentionCapture(self.grid, projections, cross, self.step, self.block, sigma,
                                        self.geometry, self.provenance)
        raise CaptureComplete  # the rest of this model call is not needed


def joint_modulated_rows(q_video: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor,
                         text_bias: torch.Tensor, chunk_bytes: int = ROW_CHUNK_BYTES) -> torch.Tensor:
    """softmax(q·kᵀ/√d + [text_bias, 0])·v for the video rows `rows`: [R, N_h·d] in q's dtype.

    q_video: [N_h, L, d] video queries; k, v: [N_h, T + L, d], the joint keys and values (text first);
    text_bias: [R, T] on the text columns, nothing on the video columns. Chunked over rows."""
    heads, _, head_dim = q_video.shape
    text_length, keys = text_bias.shape[1], k.shape[1]
    row_bytes = keys * q_video.element_size() if q_video.is_cuda else heads * keys * 4
    chunk = max(1, chunk_bytes // row_bytes)
    out = torch.empty(len(rows), heads * head_dim, dtype=q_video.dtype, device=q_video.device)
    for start in range(0, len(rows), chunk):
        stop = min(len(rows), start + chunk)
        bias = torch.zeros(stop - start, keys, dtype=q_video.dtype, device=q_video.device)
        bias[:, :text_length] = text_bias[start:stop]
        out[start:stop] = masked_attention(q_video[:, rows[start:stop]], k, v, bias)
    return out


def joint_noun_mass(q_video: torch.Tensor, k: torch.Tensor, rows: torch.Tensor, text_bias: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per modulated row, the head-mean joint-softmax probability on the text columns its bias targets,
    without and with the bias: (plain [R], guided [R]) on the CPU."""
    head_dim = q_video.shape[-1]
    logits = (q_video[:, rows].float() @ k.float().transpose(1, 2)) / math.sqrt(head_dim)   # [N_h, R, T + L]
    bias = torch.zeros_like(logits[0])
    bias[:, :text_bias.shape[1]] = text_bias
    targeted = (bias != 0).float()
    plain = (torch.softmax(logits, -1) * targeted).sum(-1).mean(0)
    guided = (torch.softmax(logits + bias, -1) * targeted).sum(-1).mean(0)
    return plain.cpu(), guided.cpu()


class JointAttentionGuidanceHook(GuidanceHook):
    """Adds the guidance bias to every block's video→text logits inside the joint softmax, positive pass only."""

    def wants_call(self, options: dict) -> float | None:
        """δ of this model call, or None when it is not modulated (negative-only call, guidance off)."""
        if 0 not in options.get("cond_or_uncond", [0]):
            return None
        local_step, _ = self.step_of(options)
        return modulation_delta(self.first_step + local_step, self.total_steps, self.config)

    def attend(self, delta: float, block: int, text_length: int, options: dict, plain, *a, **kw):
        out = plain(*a, **kw)
        q, k, v = a[0], a[1], a[2]
        heads = heads_of(a, kw)
        check_video_tokens(q.shape[1] - text_length, self.plan.grid, self.node)
        plan = self.plan_on(q.device)
        step = self.step_mask_for(plan, delta, text_length, q.dtype)
        for row in positive_rows(options, q.shape[0]):
            qh, kh, vh = (split_heads(t[row], heads) for t in (q, k, v))
            q_video = qh[:, text_length:]
            write_assigned_bias(step, q_video, kh[:, :text_length], plan)
            rows = joint_modulated_rows(q_video, kh, vh, plan.rows, step.mask)
            out[row, text_length + plan.rows] = rows.to(out.dtype)
            if self.collect_diagnostics:
                self.diagnostics.append(joint_noun_mass(q_video, kh, plan.rows, step.mask.float()))
        self.modulated_calls += 1
        return out


class CogVideoXAdapter(ModelAdapter):
    family = "CogVideoX"

    @classmethod
    def handles(cls, model) -> bool:
        return CogVideoXTransformer3DModel is not None and isinstance(model.get_model_object("diffusion_model"),
                                                                      CogVideoXTransformer3DModel)

    @classmethod
    def prompt_tokenizer(cls, clip) -> PromptTokenizer | None:
        """The T5-XXL tokenizer of CogVideoX's text encoder (CLIPLoader type 'cogvideox', or a checkpoint's)."""
        if CogVideoXT5Tokenizer is None:
            return None
        outer = getattr(clip, "tokenizer", None)
        inner = outer if isinstance(outer, CogVideoXT5Tokenizer) else getattr(outer, "clip_t5xxl", None)
        return T5PromptTokenizer(inner) if isinstance(inner, CogVideoXT5Tokenizer) else None

    @property
    def diffusion_model(self):
        return self.model.get_model_object("diffusion_model")

    @property
    def blocks(self) -> int:
        return len(self.diffusion_model.blocks)

    @property
    def temporal_patch(self) -> int:
        """Latent frames per token frame: 1 (CogVideoX 1.0), 2 (1.5)."""
        return self.diffusion_model.patch_size_t or 1

    def prepare_latent(self, samples: torch.Tensor) -> torch.Tensor:
        samples = comfy.sample.fix_empty_latent_channels(self.model, samples)
        if samples.ndim != 5:
            raise ValueError(f"{self.node}: input 'latent_image' has shape {tuple(samples.shape)}; a CogVideoX "
                             "latent is [batch, 16, frames, height, width] (use EmptyHunyuanLatentVideo)")
        return samples

    def token_grid(self, samples: torch.Tensor) -> TokenGrid:
        """ComfyUI pads the latent up to whole patches (1.5: an odd frame count gets one more frame)."""
        patch = self.diffusion_model.patch_size
        frames, height, width = samples.shape[2:]
        return TokenGrid(math.ceil(frames / self.temporal_patch), math.ceil(height / patch), math.ceil(width / patch))

    def geometry(self) -> VideoGeometry:
        """VAE stride × patch: (16, 4) for CogVideoX 1.0, (16, 8) for 1.5, whose first token frame covers
        latent frames 0–1 (video frames 0–4) and is shown at video frame 0."""
        latent_format = self.model.get_model_object("latent_format")
        spatial = getattr(latent_format, "spacial_downscale_ratio", 8)
        temporal = getattr(latent_format, "temporal_downscale_ratio", 4)
        return VideoGeometry(spatial * self.diffusion_model.patch_size, temporal * self.temporal_patch)

    def run_phase_one(self, provenance: SamplingProvenance, positive, negative, latent: dict,
                      noun_tokens: dict[str, list[int]], block: int, step: int, config: NuminaConfig,
                      x0_store: dict | None = None,
                      finish: Callable[[AttentionCapture], bool] | None = None) -> PhaseOne:
        self.check_capture_block(block)
        samples = self.prepare_latent(latent["samples"])
        hook = JointAttentionCaptureHook(self.token_grid(samples), block, step, noun_tokens, config, self.node,
                                         self.geometry(), provenance)
        patched = self.model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                                     joint_attention_wrapper(hook.attend, hook.wants_call))
        add_outermost_wrapper(patched, force_step_evaluation(step))
        return run_phase_one(patched, provenance, positive, negative, latent, samples, step, x0_store,
                             lambda: hook.capture, self.node, config.capture_schedule_steps, finish)

    def install_guidance(self, plan: GuidancePlan, config: NuminaConfig, steps: int,
                         first_step: int) -> tuple[object, GuidanceHook]:
        hook = JointAttentionGuidanceHook(plan, config, steps, first_step, self.node)
        clone = self.model.clone()
        clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                                   joint_attention_wrapper(hook.attend, hook.wants_call))
        return clone, hook
