"""Random CogVideoX models at the real architectures (2B, 5B, 1.5-5B) or at a tiny size, loaded through
ComfyUI's real state-dict loader and model detection (what the Load Diffusion Model node uses), and a CLIP
carrying ComfyUI's real CogVideoX T5 tokenizer (its vocabulary is shipped with ComfyUI).

Needs a ComfyUI with the native CogVideoX port (0.33: `comfy/ldm/cogvideo`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

TEXT_SLOTS = 226
"""CogVideoX's T5 prompt length: ComfyUI pads to at least 226 tokens."""
TEXT_DIM = 4096
LATENT_CHANNELS = 16


@dataclass(frozen=True)
class CogVideoXShape:
    """The transformer sizes of a released CogVideoX text-to-video checkpoint (head dim 64, which ComfyUI's
    detection assumes; 226 text tokens; spatial patch 2)."""

    heads: int
    layers: int
    patch_size_t: int | None
    time_embed_dim: int = 512
    head_dim: int = 64


VARIANTS = {
    "cogvideox-2b": CogVideoXShape(heads=30, layers=30, patch_size_t=None),
    "cogvideox-5b": CogVideoXShape(heads=48, layers=42, patch_size_t=None),
    "cogvideox1.5-5b": CogVideoXShape(heads=48, layers=42, patch_size_t=2),
}
TINY = {"heads": 2, "layers": 3, "time_embed_dim": 64}
"""The tests' size: 128 wide, 3 blocks (CPU seconds)."""

REAL_LATENTS = {
    # variant: (frames, height, width) of the video its pipeline samples by default
    "cogvideox-2b": (49, 480, 720),
    "cogvideox-5b": (49, 480, 720),
    "cogvideox1.5-5b": (81, 768, 1360),
}


def cogvideox_state_dict(variant: str, seed: int = 0, *, heads: int | None = None, layers: int | None = None,
                         time_embed_dim: int | None = None, dtype: torch.dtype = torch.float32,
                         device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A random state dict with the keys and shapes of `variant` (sizes overridable), in diffusers'/ComfyUI's
    CogVideoX naming, as detection reads it: heads from norm1's width, patch_t from the patch projection's
    rank, rotary embeddings from the absence of a learned `patch_embed.pos_embedding`.

    Weights are N(0, 1/fan_in), biases 0, LayerNorm scales 1. The shapes come from ComfyUI's own module,
    built on the meta device (no memory even at 5B)."""
    import comfy.ldm.cogvideo.model
    import comfy.ops

    shape = VARIANTS[variant]
    heads = heads or shape.heads
    model = comfy.ldm.cogvideo.model.CogVideoXTransformer3DModel(
        num_attention_heads=heads, attention_head_dim=shape.head_dim, in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS, time_embed_dim=time_embed_dim or shape.time_embed_dim,
        text_embed_dim=TEXT_DIM, num_layers=layers or shape.layers, patch_size=2, patch_size_t=shape.patch_size_t,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False, device="meta",
        operations=comfy.ops.disable_weight_init)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("bias"):
            state[name] = torch.zeros(tensor.shape, dtype=dtype, device=device)
        elif tensor.ndim == 1:  # LayerNorm scales
            state[name] = torch.ones(tensor.shape, dtype=dtype, device=device)
        else:
            fan_in = tensor[0].numel()
            weight = torch.randn(tensor.shape, generator=generator, device=device, dtype=dtype)
            state[name] = weight.mul_(fan_in ** -0.5)
    return state


def load_cogvideox(variant: str = "cogvideox-5b", seed: int = 0, *, dtype: torch.dtype | None = None,
                   device: str | torch.device = "cpu", **size):
    """A ModelPatcher from ComfyUI's real loader. At the real size (no `size` given) this is the GPU
    benchmark's model: e.g. `load_cogvideox("cogvideox-5b", dtype=torch.bfloat16, device="cuda")`
    (11 GB of bf16 weights, made on the GPU, so the host needs about as much RAM for ComfyUI's copy)."""
    import comfy.sd

    state = cogvideox_state_dict(variant, seed, dtype=dtype or torch.float32, device=device, **size)
    options = {"dtype": dtype} if dtype is not None else {}
    return comfy.sd.load_diffusion_model_state_dict(state, model_options=options)


def load_tiny_cogvideox(variant: str = "cogvideox-5b", seed: int = 0):
    """The variant's architecture (patching, positional embedding) at the tests' tiny size."""
    return load_cogvideox(variant, seed, **TINY)


def random_conditioning(seed: int, length: int = TEXT_SLOTS) -> list:
    """CONDITIONING as CLIPTextEncode makes it for CogVideoX: [1, 226, 4096] (every slot encoded: T5's
    padding embeddings are not zeroed)."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, length, TEXT_DIM, generator=generator), {}]]


def empty_latent(frames: int = 9, height: int = 64, width: int = 96, batch: int = 1) -> dict:
    """The latent EmptyHunyuanLatentVideo gives (what ComfyUI's CogVideoX workflows use): 16 channels,
    4× temporal and 8× spatial compression."""
    return {"samples": torch.zeros(batch, LATENT_CHANNELS, (frames - 1) // 4 + 1, height // 8, width // 8)}


def real_latent(variant: str) -> dict:
    """The empty latent at the variant's default video size (5B: 720×480×49 → 13×60×90)."""
    return empty_latent(*REAL_LATENTS[variant])


def cogvideox_clip():
    """A real comfy.sd.CLIP carrying ComfyUI's CogVideoX tokenizer (CLIPLoader type 'cogvideox'); no T5-XXL
    weights, so it tokenizes but is never asked to encode."""
    import comfy.sd
    from comfy.text_encoders.cogvideo import CogVideoXTokenizer

    clip = comfy.sd.CLIP(no_init=True)
    clip.tokenizer = CogVideoXTokenizer()
    return clip
