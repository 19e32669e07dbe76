"""The testbed model: ComfyUI's own ``WanModel`` working directly in pixel space.

No VAE: the "latent" is the RGB video in [-1, 1] (3 channels, 5 frames of 64×64), patchified
(1, 2, 2) into 5×32×32 tokens. The text encoder is a learned embedding per vocabulary word
(``numina_core.synthetic.VOCABULARY``); word i of the prompt fills context slot i of 16,
the rest are zeros. Rectified flow exactly as Wan: x_t = (1−σ)·x0 + σ·ε, the model predicts
ε − x0 at timestep 1000·σ, which is what ComfyUI's ``ModelType.FLOW`` samplers expect.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.supported_models
import comfy.utils
from comfy.ldm.wan.model import WanModel
from . import synthetic

VOCABULARY = synthetic.VOCABULARY

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "testbed_wan_count.safetensors"

FRAMES = 5
SIZE = 64
CHANNELS = 3
CONTEXT_SLOTS = 16
TEXT_DIM = 64
# Sampling shift of ComfyUI's flow schedule; training draws σ from the same shifted distribution.
SAMPLING_SHIFT = 3.0
DEFAULT_CFG = 5.0
WORD_EMBEDDING_KEY = "text.word_embedding"

UNET_CONFIG: dict = {
    "image_model": "wan2.1",
    "model_type": "t2v",
    "patch_size": (1, 2, 2),
    "text_len": CONTEXT_SLOTS,
    "in_dim": CHANNELS,
    "out_dim": CHANNELS,
    "dim": 384,
    "ffn_dim": 1536,
    "freq_dim": 256,
    "text_dim": TEXT_DIM,
    "num_heads": 3,
    "num_layers": 6,
    "eps": 1e-6,
    "qk_norm": True,
    "cross_attn_norm": True,
}


class PixelRGB(comfy.latent_formats.LatentFormat):
    """Identity 'latent' format: the latent is the RGB video in [-1, 1]."""

    latent_channels = CHANNELS
    latent_dimensions = 3
    spacial_downscale_ratio = 1  # the names newer ComfyUI gives a latent format's strides
    temporal_downscale_ratio = 1
    latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    latent_rgb_factors_bias = [0.0, 0.0, 0.0]


class TestbedWanT2V(comfy.supported_models.WAN21_T2V):
    """ComfyUI model config of the testbed: Wan 2.1 t2v code path, pixel-space latent format."""

    unet_config = {"image_model": "wan2.1", "model_type": "t2v", "in_dim": CHANNELS, "text_dim": TEXT_DIM}
    sampling_settings = {"shift": SAMPLING_SHIFT}
    latent_format = PixelRGB
    memory_usage_factor = 0.2

    def __init__(self, unet_config: dict):
        super().__init__(unet_config)
        self.memory_usage_factor = 0.2
        # Set by load_testbed_model: the learned per-word text embedding [vocabulary, TEXT_DIM].
        self.word_embedding: torch.Tensor | None = None

    def get_model(self, state_dict, prefix="", device=None):
        return comfy.model_base.WAN21(self, device=device)

    def clip_target(self, state_dict={}):  # noqa: B006 - ComfyUI's signature
        return None


def build_wan(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> WanModel:
    """A freshly initialised testbed ``WanModel`` (Wan's initialisation, applied by hand)."""
    config = {k: v for k, v in UNET_CONFIG.items() if k != "image_model"}
    model = WanModel(**config, device=device, dtype=dtype, operations=comfy.ops.disable_weight_init)
    init_wan_weights(model)
    return model


@torch.no_grad()
def init_wan_weights(model: WanModel) -> None:
    """Wan's initialisation: Xavier linears with zero bias, small-normal embeddings, zero output head.

    ``comfy.ops.disable_weight_init`` skips every layer's own reset, so all of it is done here.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)):
            if module.weight is not None:
                torch.nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                torch.nn.init.zeros_(module.bias)
    conv = model.patch_embedding
    torch.nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
    torch.nn.init.zeros_(conv.bias)
    for sequence in (model.text_embedding, model.time_embedding, model.time_projection):
        for module in sequence.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.02)
    for block in model.blocks:
        block.modulation.copy_(torch.randn_like(block.modulation) / math.sqrt(model.dim))
    model.head.modulation.copy_(torch.randn_like(model.head.modulation) / math.sqrt(model.dim))
    torch.nn.init.zeros_(model.head.head.weight)


def new_word_embedding(device: torch.device | str = "cpu") -> torch.nn.Embedding:
    """The learned text encoder: one TEXT_DIM vector per vocabulary word; padding (id 0) stays zero."""
    embedding = torch.nn.Embedding(len(VOCABULARY), TEXT_DIM, padding_idx=0, device=device)
    with torch.no_grad():
        embedding.weight.normal_(std=1.0)
        embedding.weight[0].zero_()
    return embedding


def token_slots(prompt_ids: list[list[int]], device: torch.device | str = "cpu") -> torch.Tensor:
    """[B, CONTEXT_SLOTS] long: word ids in slots 0.., padding (0) after; raises if a prompt is too long."""
    out = torch.zeros(len(prompt_ids), CONTEXT_SLOTS, dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        if len(ids) > CONTEXT_SLOTS:
            raise ValueError(f"prompt has {len(ids)} words; the testbed model takes at most {CONTEXT_SLOTS}")
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out.to(device)


def encode_text(prompt: str, word_embedding: torch.Tensor) -> torch.Tensor:
    """[1, CONTEXT_SLOTS, TEXT_DIM] context for ``prompt`` (empty prompt: all zeros)."""
    slots = token_slots([VOCABULARY.encode(prompt)])
    context = word_embedding.float()[slots]
    return context * (slots[..., None] != 0)


def load_testbed_model(path: str | Path = DEFAULT_WEIGHTS) -> comfy.model_patcher.ModelPatcher:
    """Loads testbed weights into a ComfyUI ``ModelPatcher`` the stock samplers can drive.

    The word embedding is kept on the model config (``model.model.model_config.word_embedding``),
    where the testbed text-encode node finds it.
    """
    state_dict = comfy.utils.load_torch_file(str(path), safe_load=True)
    if WORD_EMBEDDING_KEY not in state_dict:
        raise ValueError(f"{path} is not a NUMINA testbed checkpoint (no '{WORD_EMBEDDING_KEY}' tensor)")
    word_embedding = state_dict.pop(WORD_EMBEDDING_KEY).float()
    config = TestbedWanT2V(dict(UNET_CONFIG))
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    unet_dtype = comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(state_dict),
        supported_dtypes=config.supported_inference_dtypes,
        weight_dtype=comfy.utils.weight_dtype(state_dict),
    )
    manual_cast = comfy.model_management.unet_manual_cast(unet_dtype, load_device, config.supported_inference_dtypes)
    config.set_inference_dtype(unet_dtype, manual_cast)
    config.word_embedding = word_embedding
    model = config.get_model(state_dict).to(offload_device)
    model.load_model_weights(state_dict, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


class TestbedTokenizer:
    """Word-level tokenizer of the testbed: word i of the prompt is context column i."""

    def encode_prompt(self, prompt: str) -> list[int]:
        """Column ids of the prompt: position i is the id in context slot i (padding not included)."""
        return VOCABULARY.encode(prompt)

    def encode_words(self, text: str) -> list[int]:
        """Ids of ``text`` (a noun or phrase), to search for in :meth:`encode_prompt`'s result."""
        return VOCABULARY.encode(text)

    def decode(self, ids: list[int]) -> list[str]:
        return [VOCABULARY.words[i] for i in ids]
