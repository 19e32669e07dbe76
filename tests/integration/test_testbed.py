"""The committed testbed weights, loaded through the testbed nodes' real code and sampled with
ComfyUI's stock sampler on CPU, draw what the prompt asks for (checked by the exact counter)."""

import importlib

import pytest
import torch

from testbed import synthetic as sc

STEPS = 8  # single-frame samples at 8 Euler steps keep this file fast on CPU


@pytest.fixture(scope="module")
def nodes(pack):
    return importlib.import_module(f"{pack.__name__}.testbed.nodes")


@pytest.fixture(scope="module")
def model(nodes):
    return nodes.NuminaTestbedModelLoader.execute("testbed_wan_count.safetensors").args[0]


def sample(nodes, model, prompt: str, seed: int, frames: int = 1, cfg: float = 1.0) -> torch.Tensor:
    import comfy.sample

    positive = nodes.NuminaTestbedTextEncode.execute(model, prompt).args[0]
    negative = nodes.NuminaTestbedTextEncode.execute(model, "").args[0]
    latent = nodes.NuminaTestbedEmptyVideo.execute(frames, 1).args[0]["samples"]
    noise = comfy.sample.prepare_noise(latent, seed)
    out = comfy.sample.sample(model, noise, STEPS, cfg, "euler", "simple", positive, negative, latent,
                              disable_pbar=True, seed=seed)
    return nodes.NuminaTestbedDecode.execute({"samples": out}).args[0]


def test_loader_builds_comfyui_wan_in_pixel_space(model):
    from comfy.ldm.wan.model import WanModel

    import comfy.model_patcher

    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    wan = model.model.diffusion_model
    assert isinstance(wan, WanModel)
    assert (wan.dim, wan.num_heads, wan.num_layers, wan.in_dim, wan.out_dim, wan.text_dim) == (384, 3, 6, 3, 3, 64)
    assert model.model.latent_format.latent_channels == 3
    assert model.model.model_sampling.shift == pytest.approx(3.0)
    # trained, not the zero-initialised output head
    assert float(wan.head.head.weight.detach().abs().mean()) > 1e-3


def test_text_encode_slots_padding_and_tokenizer(nodes, model):
    conditioning, tokenizer = nodes.NuminaTestbedTextEncode.execute(model, "three red discs and two blue squares").args
    context = conditioning[0][0]
    assert context.shape == (1, 16, 64)
    assert bool((context[0, :7].abs().sum(-1) > 0).all()) and float(context[0, 7:].abs().sum()) == 0.0
    ids = tokenizer.encode_prompt("three red discs and two blue squares")
    assert len(ids) == 7 and ids[2:3] == tokenizer.encode_words("discs") and ids[6:7] == tokenizer.encode_words("squares")
    assert tokenizer.encode_words("red discs") == ids[1:3]
    empty = nodes.NuminaTestbedTextEncode.execute(model, "").args[0][0][0]
    assert float(empty.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="NUMINA Testbed Text Encode: input 'text'.*cats"):
        nodes.NuminaTestbedTextEncode.execute(model, "three cats")


def test_empty_video_and_decode_shapes(nodes):
    latent = nodes.NuminaTestbedEmptyVideo.execute(5, 2).args[0]["samples"]
    assert latent.shape == (2, 3, 5, 64, 64)
    images = nodes.NuminaTestbedDecode.execute({"samples": latent - 1}).args[0]
    assert images.shape == (10, 64, 64, 3) and float(images.max()) == 0.0
    with pytest.raises(ValueError, match="NUMINA Testbed Decode: input 'samples'"):
        nodes.NuminaTestbedDecode.execute({"samples": torch.zeros(1, 16, 5, 8, 8)})


def test_trained_model_draws_the_requested_category(nodes, model):
    blue = sc.count_objects(sample(nodes, model, "one blue square", seed=0))
    assert blue.tolist() == [[0, 1, 0, 0]]
    yellow = sc.count_objects(sample(nodes, model, "four yellow diamonds", seed=1))
    assert yellow[0, 3] >= 2 and yellow[0, :3].sum() == 0
