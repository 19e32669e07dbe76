"""Tiny random Wan models of each family, loaded through ComfyUI's real state-dict loader and model
detection (what the Load Diffusion Model node uses), and a real Wan text tokenizer over a tiny
sentencepiece model trained here (umt5's is not shipped with ComfyUI)."""
from __future__ import annotations

import io
import random

import torch

FAMILIES = {
    # name: (in_dim, out_dim), as detection reads them from the patch embedding and the head
    "wan2.1": (16, 16),
    "wan2.2-5b": (48, 48),
}
TEXT_SLOTS = 512
TEXT_DIM = 4096


def tiny_wan_state_dict(family: str, seed: int = 0, dim: int = 256, layers: int = 3, ffn: int = 512) -> dict:
    """A random Wan state dict (head_dim 128, as detection forces) at a tiny size."""
    import comfy.ldm.wan.model
    import comfy.ops

    in_dim, out_dim = FAMILIES[family]
    model = comfy.ldm.wan.model.WanModel(model_type="t2v", patch_size=(1, 2, 2), dim=dim, ffn_dim=ffn, freq_dim=256,
                                         text_dim=TEXT_DIM, in_dim=in_dim, out_dim=out_dim, num_heads=dim // 128,
                                         num_layers=layers, operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("bias"):
            state[name] = torch.zeros_like(tensor, dtype=torch.float32)
        elif "norm" in name:
            state[name] = torch.ones_like(tensor, dtype=torch.float32)
        else:
            fan_in = tensor[0].numel() if tensor.ndim > 1 else tensor.numel()
            state[name] = torch.randn(tensor.shape, generator=generator) / max(1, fan_in) ** 0.5
    return state


def load_tiny_wan(family: str = "wan2.1", seed: int = 0, **size):
    """A ModelPatcher from ComfyUI's real loader, detected as the family's Wan model."""
    import comfy.sd

    return comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict(family, seed, **size))


def random_conditioning(seed: int, length: int = 16) -> list:
    """CONDITIONING as CLIPTextEncode makes it for Wan: [1, 512, 4096] with zero padding after `length`."""
    generator = torch.Generator().manual_seed(seed)
    context = torch.zeros(1, TEXT_SLOTS, TEXT_DIM)
    context[0, :length] = torch.randn(length, TEXT_DIM, generator=generator)
    return [[context, {}]]


def empty_latent(family: str, frames: int = 9, height: int = 64, width: int = 96) -> dict:
    """The latent EmptyHunyuanLatentVideo (Wan2.1) or Wan22ImageToVideoLatent (5B) would give."""
    if family == "wan2.2-5b":
        return {"samples": torch.zeros(1, 48, (frames - 1) // 4 + 1, height // 16, width // 16)}
    return {"samples": torch.zeros(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)}


def train_spiece_model(sentences: list[str], vocab_size: int = 120) -> bytes:
    import sentencepiece

    rng = random.Random(0)
    words = " ".join(sentences).replace(",", " ").replace(".", " ").split()
    corpus = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)] + sentences
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


def wan_clip(sentences: list[str]):
    """A real comfy.sd.CLIP carrying a real WanT5Tokenizer; no text-encoder weights (umt5-xxl is 5.7 B
    parameters), so it tokenizes but is never asked to encode."""
    import comfy.sd
    from comfy.text_encoders.wan import WanT5Tokenizer

    clip = comfy.sd.CLIP(no_init=True)
    clip.tokenizer = WanT5Tokenizer(tokenizer_data={"spiece_model": train_spiece_model(sentences)})
    return clip
