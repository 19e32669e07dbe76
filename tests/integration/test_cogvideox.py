"""NUMINA on tiny random CogVideoX models (5B's and 1.5-5B's architectures) through ComfyUI's real loader,
model detection, ModelPatcher and samplers. Needs a ComfyUI with the native CogVideoX port (0.33)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from devtools.cogvideox_models import (TEXT_SLOTS, cogvideox_clip, empty_latent, load_tiny_cogvideox,
                                       random_conditioning)
from tests.unit.test_capture import align_signs

PROMPT = "three cats and two dogs playing in a garden"
STEPS = 10
SEED = 7
BLOCK = 1
VARIANTS = ["cogvideox-5b", "cogvideox1.5-5b"]


@pytest.fixture(scope="module")
def cogvideo(comfyui):
    if not (comfyui / "comfy" / "ldm" / "cogvideo" / "model.py").is_file():
        pytest.skip(f"the ComfyUI checkout at {comfyui} has no native CogVideoX (comfy/ldm/cogvideo: ComfyUI ≥ 0.33)")
    return comfyui


@pytest.fixture(scope="module")
def models(cogvideo):
    return {variant: load_tiny_cogvideox(variant, seed=i) for i, variant in enumerate(VARIANTS)}


@pytest.fixture(scope="module")
def adapters(pack):
    from numina_pack.nodes import adapters

    return adapters


@pytest.fixture(scope="module")
def targets(pack, cogvideo):
    from numina_pack.nodes.layout_nodes import NuminaNumeralParser

    return NuminaNumeralParser.execute(PROMPT, clip=cogvideox_clip()).args[0]


def settings(block: int = BLOCK, **changes):
    from numina_pack.numina_core.config import preset

    return preset("reference", reference_layer=block, **changes)


def conditioning():
    return random_conditioning(1), random_conditioning(2)


def plain_ksampler(model, cfg: float = 5.0) -> torch.Tensor:
    import nodes as comfy_nodes

    return comfy_nodes.common_ksampler(model, SEED, STEPS, cfg, "euler", "simple", *conditioning(),
                                       empty_latent())[0]["samples"]


def provenance():
    from numina_pack.numina_core.grid import SamplingProvenance

    return SamplingProvenance(PROMPT, SEED, STEPS, 5.0, "euler", "simple")


class JointQKRecorder:
    """Test-side, independent of the pack: q and k of block `block`'s joint attention at step `step` on the
    positive rows. CogVideoX calls attention once per block in order, so call n is block n mod blocks."""

    def __init__(self, block: int, step: int, blocks: int):
        self.block, self.step, self.blocks, self.calls, self.seen = block, step, blocks, [], 0

    def __deepcopy__(self, memo):
        return self

    def __call__(self, func, *a, **kw):
        options = kw["transformer_options"]
        block, self.seen = self.seen % self.blocks, self.seen + 1
        step = int((options["sample_sigmas"][:-1] - options["sigmas"][0]).abs().argmin())
        order = options["cond_or_uncond"]
        if block == self.block and step == self.step and 0 in order:
            row = order.index(0) * (a[0].shape[0] // len(order))
            self.calls.append((a[0][row].double(), a[1][row].double(), kw["heads"]))
        return func(*a, **kw)


def joint_probabilities(q: torch.Tensor, k: torch.Tensor, heads: int, h: int) -> torch.Tensor:
    """Float64 softmax over ALL keys of the joint sequence for the video queries of head h: [L, T + L]."""
    d = q.shape[-1] // heads
    logits = q[TEXT_SLOTS:, h * d:(h + 1) * d] @ k[:, h * d:(h + 1) * d].T / math.sqrt(d)
    return torch.softmax(logits, -1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_captured_maps_equal_a_float64_recomputation_from_the_blocks_q_and_k(adapters, models, targets, variant):
    import comfy.sample

    model = models[variant]
    adapter = adapters.adapter_for(model, "test")
    assert type(adapter).__name__ == "CogVideoXAdapter"
    capture = adapter.capture_attention(provenance(), *conditioning(), empty_latent(), targets.token_indices, BLOCK, 4,
                                        settings(pca_oversamples=64))
    recorder = JointQKRecorder(BLOCK, capture.step, adapter.blocks)
    clone = model.clone()
    clone.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = recorder
    latent = empty_latent()["samples"]
    comfy.sample.sample(clone, comfy.sample.prepare_noise(latent, SEED), STEPS, 5.0, "euler", "simple", *conditioning(),
                        latent, last_step=capture.step + 1, seed=SEED)
    (q, k, heads), = recorder.calls
    grid = capture.grid
    hw = grid.tokens_per_frame
    assert q.shape[0] == TEXT_SLOTS + grid.tokens
    for h in range(heads):
        joint = joint_probabilities(q, k, heads, h)
        text_share = joint[:, :TEXT_SLOTS].sum(-1)
        for noun, columns in targets.token_indices.items():
            # renormalised over the text keys: the joint probability divided by the row's text share
            expected = (joint[:, columns] / text_share[:, None]).mean(-1).reshape(grid.frames, hw)
            np.testing.assert_allclose(capture.cross_maps[noun][:, h].numpy(), expected.numpy(), rtol=1e-4, atol=1e-7)
        for f in range(grid.frames):
            video = slice(TEXT_SLOTS + f * hw, TEXT_SLOTS + (f + 1) * hw)
            block = joint[f * hw:(f + 1) * hw, video]
            block = block / block.sum(-1, keepdim=True)    # intra-frame: the frame's own keys only
            u, s, _ = torch.linalg.svd(block - block.mean(0, keepdim=True))
            expected = (u[:, :3] * s[:3]).numpy()
            actual = capture.projections[f, h].double().numpy()
            np.testing.assert_allclose(align_signs(actual, expected), expected, atol=1e-4 * np.abs(expected).max())


def test_t5_prompt_tokenizer_gives_the_columns_comfyui_encodes(adapters, cogvideo):
    from numina_pack.numina_core.token_mapping import map_nouns_to_tokens

    clip = cogvideox_clip()
    tokenizer = adapters.tokenizer_for(clip, "test")
    prompt = "three (cats:1.2) and two dogs near air-balloons"
    columns = map_nouns_to_tokens(prompt, ["cats", "dogs", "balloons"], tokenizer)
    encoded = clip.tokenizer.tokenize_with_weights(prompt)["t5xxl"][0]  # what CLIPTextEncode encodes
    assert len(encoded) == TEXT_SLOTS
    pieces = tokenizer.pieces
    assert [pieces.convert_ids_to_tokens(encoded[c][0]) for c in columns["cats"] + columns["dogs"]] == ["▁cats", "▁dogs"]
    assert encoded[columns["cats"][0]][1] == pytest.approx(1.2)
    assert "".join(pieces.convert_ids_to_tokens(encoded[c][0]) for c in columns["balloons"]) == "balloons"
    assert tokenizer.encode_prompt(prompt) == [t for t, _ in encoded[:len(tokenizer.encode_prompt(prompt))]]
    from numina_pack.nodes.adapters.wan import WanAdapter

    assert WanAdapter.prompt_tokenizer(clip) is None


@pytest.mark.parametrize("variant,grid,geometry", [("cogvideox-5b", (3, 4, 6), (16, 4)),
                                                   ("cogvideox1.5-5b", (2, 4, 6), (16, 8))])
def test_grid_and_geometry_follow_the_patching(adapters, models, variant, grid, geometry):
    adapter = adapters.adapter_for(models[variant], "test")
    samples = adapter.prepare_latent(empty_latent()["samples"])  # 3 latent frames: 1.5 pads to 4, 2 token frames
    assert adapter.token_grid(samples).shape == grid
    assert (adapter.geometry().spatial_factor, adapter.geometry().temporal_stride) == geometry
    assert adapter.blocks == 3


def hand_layout(grid):
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED, Layout

    cats = np.zeros(grid.shape, dtype=np.int32)
    cats[:, 2:4, 3:5] = FIRST_ADDED          # an addition in frames without a detected cat: the circle bias
    dogs = np.zeros(grid.shape, dtype=np.int32)
    dogs[:, 0:2, 0:2] = REMOVED              # a removal
    return Layout(grid, {"cats": cats, "dogs": dogs}, {"cats": 1, "dogs": 1})


@pytest.mark.parametrize("variant", VARIANTS)
def test_guidance_raises_added_and_suppresses_removed_joint_attention(adapters, models, targets, variant):
    import nodes as comfy_nodes
    from numina_pack.numina_core.grid import FIRST_ADDED

    model = models[variant]
    adapter = adapters.adapter_for(model, "test")
    layout = hand_layout(adapter.token_grid(empty_latent()["samples"]))
    guided, hook, notice = adapter.guided_model(layout, targets.token_indices, settings(), STEPS, 0)
    assert guided is not model and "guiding" in notice
    hook.collect_diagnostics = True
    comfy_nodes.common_ksampler(guided, SEED, STEPS, 5.0, "euler", "simple", *conditioning(), empty_latent())
    assert hook.modulated_calls == 9 * adapter.blocks  # steps 0–8 of 10 (t = 45 and beyond are off)
    added = torch.from_numpy(layout.labels["cats"].ravel()[hook.plan.rows.numpy()] >= FIRST_ADDED)
    removed = ~added
    assert added.sum() == removed.sum() == 4 * layout.grid.frames
    for plain, boosted in hook.diagnostics[:adapter.blocks]:  # every block of the first step (δ = 1.75)
        assert (boosted[added] > 2 * plain[added]).all()
        assert (boosted[removed] < 1e-6 * plain[removed]).all()
    late_plain, late_boosted = hook.diagnostics[-1]           # step 8: δ ≈ 0.25, a weaker push
    assert (late_boosted[added] > late_plain[added]).all()
    assert not torch.equal(late_boosted, late_plain)


def test_guidance_changes_only_the_positive_video_rows_inside_the_joint_softmax(adapters, models, targets):
    """One block call on random q, k, v: the negative batch row, the text rows and the unmodulated video rows
    are the host kernel's output bit for bit; the modulated rows are softmax(s + [B_text, 0])·v in float64."""
    from comfy.ldm.modules.attention import optimized_attention
    from numina_pack.nodes.adapters.cogvideox import JointAttentionGuidanceHook
    from numina_pack.numina_core.guidance import build_guidance_plan, cross_attention_bias
    from numina_pack.numina_core.capture import split_heads

    adapter = adapters.adapter_for(models["cogvideox-5b"], "test")
    grid = adapter.token_grid(empty_latent()["samples"])
    plan = build_guidance_plan(hand_layout(grid), targets.token_indices, settings())
    hook = JointAttentionGuidanceHook(plan, settings(), STEPS, 0, "test")
    heads, d = 2, 64
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, TEXT_SLOTS + grid.tokens, heads * d, generator=generator) for _ in range(3))
    options = {"cond_or_uncond": [1, 0]}
    plain = optimized_attention(q, k, v, heads=heads)
    out = hook.attend(1.75, 0, TEXT_SLOTS, options, lambda *a, **kw: optimized_attention(*a, **kw), q, k, v,
                      heads=heads)
    modulated = TEXT_SLOTS + plan.rows
    untouched = torch.ones(out.shape[1], dtype=torch.bool)
    untouched[modulated] = False
    assert torch.equal(out[0], plain[0]) and torch.equal(out[1, untouched], plain[1, untouched])
    qh, kh, vh = (split_heads(t[1].double(), heads) for t in (q, k, v))
    bias = cross_attention_bias(qh[:, TEXT_SLOTS:], kh[:, :TEXT_SLOTS], plan, 1.75).double()
    logits = qh[:, modulated] @ kh.transpose(1, 2) / math.sqrt(d)
    logits[:, :, :TEXT_SLOTS] += bias
    expected = (torch.softmax(logits, -1) @ vh).transpose(0, 1).reshape(len(plan.rows), -1)
    np.testing.assert_allclose(out[1, modulated].numpy(), expected.numpy(), atol=1e-5)
    assert not torch.allclose(out[1, modulated], plain[1, modulated], atol=1e-3)


def test_modulated_rows_do_not_depend_on_how_they_are_chunked(adapters):
    """One row per SDPA call, a few rows, or all rows in one call: the same softmax(s + [B_text, 0])·v."""
    from numina_pack.nodes.adapters.cogvideox import joint_modulated_rows

    generator = torch.Generator().manual_seed(3)
    heads, text, video, d = 2, 6, 40, 16
    q_video = torch.randn(heads, video, d, generator=generator)
    k, v = (torch.randn(heads, text + video, d, generator=generator) for _ in range(2))
    rows = torch.tensor([0, 3, 4, 17, 39])
    text_bias = torch.randn(len(rows), text, generator=generator)
    whole = joint_modulated_rows(q_video, k, v, rows, text_bias, chunk_bytes=1 << 30)
    logits = q_video[:, rows] @ k.transpose(1, 2) / math.sqrt(d)
    logits[:, :, :text] += text_bias
    expected = (torch.softmax(logits, -1) @ v).transpose(0, 1).reshape(len(rows), -1)
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=1e-5)
    for chunk_bytes in (1, 2 * heads * (text + video) * 4):
        torch.testing.assert_close(joint_modulated_rows(q_video, k, v, rows, text_bias, chunk_bytes=chunk_bytes),
                                   whole, atol=1e-6, rtol=1e-6)


def test_strength_zero_or_nothing_to_correct_equals_ksampler_bit_for_bit(adapters, models, targets):
    import nodes as comfy_nodes
    from numina_pack.numina_core.grid import Layout

    model = models["cogvideox-5b"]
    adapter = adapters.adapter_for(model, "test")
    grid = adapter.token_grid(empty_latent()["samples"])
    cats = np.zeros(grid.shape, dtype=np.int32)
    cats[:, 0, 0], cats[:, 2, 2], cats[:, 0, 4] = 1, 2, 3
    dogs = np.zeros(grid.shape, dtype=np.int32)
    dogs[:, 3, 0], dogs[:, 3, 5] = 1, 2
    matching = Layout(grid, {"cats": cats, "dogs": dogs}, dict(targets.counts))
    reference = comfy_nodes.KSampler().sample(model, SEED, STEPS, 5.0, "euler", "simple", *conditioning(),
                                              empty_latent(), 1.0)[0]["samples"]
    for layout, strength in [(matching, 1.0), (hand_layout(grid), 0.0)]:
        sampler_model, hook, _ = adapter.guided_model(layout, targets.token_indices,
                                                      settings(guidance_strength=strength), STEPS, 0)
        assert sampler_model is model and hook is None
        assert torch.equal(plain_ksampler(sampler_model), reference)


def model_state(model) -> str:
    return repr(sorted(model.model_options.get("transformer_options", {}).items(), key=str)) + repr(
        {k: sorted(v) for k, v in model.wrappers.items() if v})


def test_the_model_is_never_mutated(adapters, targets, cogvideo):
    model = load_tiny_cogvideox("cogvideox-5b", seed=3)
    before_state, before_output = model_state(model), plain_ksampler(model)
    adapter = adapters.adapter_for(model, "test")
    adapter.capture_attention(provenance(), *conditioning(), empty_latent(), targets.token_indices, BLOCK, 4, settings())
    with pytest.raises(ValueError, match=f"outside the {TEXT_SLOTS} text slots"):
        adapter.capture_attention(provenance(), *conditioning(), empty_latent(), {"cats": [300]}, BLOCK, 4, settings())
    layout = hand_layout(adapter.token_grid(empty_latent()["samples"]))
    guided, _, _ = adapter.guided_model(layout, targets.token_indices, settings(), STEPS, 0)
    guided_output = plain_ksampler(guided)
    assert model_state(model) == before_state
    assert torch.equal(plain_ksampler(model), before_output)
    assert not torch.equal(guided_output, before_output)


def test_easycache_never_skips_the_capture_step(adapters, models, targets):
    from comfy_extras.nodes_easycache import EasyCacheNode

    cached = EasyCacheNode.execute(models["cogvideox-5b"], 3.0, 0.0, 1.0, False).args[0]
    capture = adapters.adapter_for(cached, "test").capture_attention(
        provenance(), *conditioning(), empty_latent(), targets.token_indices, BLOCK, 6, settings())
    assert capture.step == 6 and capture.cross_maps["cats"].abs().sum() > 0
    assert not torch.equal(plain_ksampler(cached), plain_ksampler(models["cogvideox-5b"]))  # EasyCache did skip


@pytest.mark.parametrize("variant,temporal_stride", [("cogvideox-5b", 4), ("cogvideox1.5-5b", 8)])
def test_the_six_nodes_refine_to_the_targets_and_guide(pack, models, variant, temporal_stride):
    from numina_pack.nodes import layout_nodes, sampling

    model = models[variant]
    targets = layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=cogvideox_clip()).args[0]
    assert targets.counts == {"cats": 3, "dogs": 2}
    config = settings()
    run = (SEED, STEPS, 5.0, "euler", "simple", *conditioning(), empty_latent())
    capture, pre_generation = sampling.NuminaAttentionCaptureKSampler.execute(model, *run, targets, config).args
    assert capture.block == BLOCK and pre_generation["samples"].shape == empty_latent()["samples"].shape
    heads = layout_nodes.NuminaHeadSelector.execute(capture, config).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, config).args[0]
    refined = layout_nodes.NuminaLayoutRefiner.execute(layout, targets, config).args[0]
    assert (refined.spatial_factor, refined.temporal_stride) == (16, temporal_stride)
    for noun, count in targets.counts.items():
        assert refined.counts(noun).tolist() == [count] * refined.grid.frames
    guided = sampling.NuminaLayoutGuidedSampler.execute(model, *run, refined, targets, 1.0, config).args[0]["samples"]
    off = sampling.NuminaLayoutGuidedSampler.execute(model, *run, refined, targets, 1.0,
                                                     settings(guidance_strength=0.0)).args[0]["samples"]
    plain = plain_ksampler(model)
    assert torch.equal(off, plain)
    assert guided.shape == plain.shape and not torch.equal(guided, plain)
