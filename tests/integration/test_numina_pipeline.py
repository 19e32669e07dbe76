"""The six NUMINA nodes on tiny random Wan models, through ComfyUI's real loader, ModelPatcher and samplers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from devtools.wan_models import empty_latent, load_tiny_wan, random_conditioning, wan_clip
from tests.unit.test_capture import align_signs, naive_intra_frame_pca

PROMPT = "three cats and two dogs playing in a garden"
STEPS = 10
SEED = 7


@pytest.fixture(scope="module")
def nodes(pack):
    from numina_pack.nodes import layout_nodes, sampling
    from numina_pack.nodes import adapters

    return layout_nodes, sampling, adapters


@pytest.fixture(scope="module")
def models(comfyui):
    return {"wan2.1": load_tiny_wan("wan2.1", seed=0), "wan2.2-5b": load_tiny_wan("wan2.2-5b", seed=1)}


@pytest.fixture(scope="module")
def targets(nodes):
    layout_nodes, _, _ = nodes
    return layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=wan_clip([PROMPT])).args[0]


def conditioning():
    return random_conditioning(1), random_conditioning(2)


def settings(block=1, **changes):
    """The reference preset reading block `block` of the tiny models' 3."""
    from numina_pack.numina_core.config import preset

    return preset("reference", reference_layer=block, **changes)


def adapter(nodes, model):
    return nodes[2].adapter_for(model, "test")


def run_capture(nodes, model, targets, family="wan2.1", cfg=5.0, config=None, latent=None):
    _, sampling, _ = nodes
    positive, negative = conditioning()
    latent = latent or empty_latent(family)
    return sampling.NuminaAttentionCaptureKSampler.execute(
        model, SEED, STEPS, cfg, "euler", "simple", positive, negative, latent, targets, config or settings()).args


def guided_sample(nodes, model, layout, targets, latent, cfg=5.0, config=None, **advanced):
    return nodes[1].NuminaLayoutGuidedSampler.execute(
        model, SEED, STEPS, cfg, "euler", "simple", *conditioning(), latent, layout, targets, 1.0,
        config or settings(), **advanced).args[0]


def run_chain(nodes, model, targets, family="wan2.1", cfg=5.0, strength=1.0):
    layout_nodes, _, _ = nodes
    config = settings(guidance_strength=strength)
    capture, _ = run_capture(nodes, model, targets, family, cfg, config)
    heads = layout_nodes.NuminaHeadSelector.execute(capture, config).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, config).args[0]
    refined = layout_nodes.NuminaLayoutRefiner.execute(layout, targets, config).args[0]
    guided = guided_sample(nodes, model, refined, targets, empty_latent(family), cfg, config)
    return capture, refined, guided


def plain_ksampler(model, family="wan2.1", cfg=5.0, latent=None):
    import nodes as comfy_nodes

    positive, negative = conditioning()
    return comfy_nodes.KSampler().sample(model, SEED, STEPS, cfg, "euler", "simple", positive, negative,
                                         latent or empty_latent(family), 1.0)[0]["samples"]


class QKRecorder:
    """A test-side recorder, independent of the pack: the q and k of block `block`'s attention calls at
    sampling step `step` on the positive rows."""

    def __init__(self, block: int, step: int):
        self.block, self.step, self.calls = block, step, []

    def __deepcopy__(self, memo):
        return self

    def __call__(self, args, extra):
        options = args["transformer_options"]
        sigma = options["sigmas"][0]
        index = int((options["sample_sigmas"][:-1] - sigma).abs().argmin())
        if index != self.step or 0 not in options["cond_or_uncond"]:
            return extra["original_block"](args)
        row = options["cond_or_uncond"].index(0) * (args["img"].shape[0] // len(options["cond_or_uncond"]))

        def record(func, *a, **kw):
            self.calls.append((a[0][row].detach().clone(), a[1][row].detach().clone(), kw["heads"]))
            return func(*a, **kw)

        return extra["original_block"]({**args, "transformer_options": {**options, "optimized_attention_override": record}})


@pytest.mark.parametrize("family", ["wan2.1", "wan2.2-5b"])
def test_captured_maps_equal_a_recomputation_from_the_blocks_q_and_k(nodes, models, targets, family):
    import comfy.sample

    model = models[family]
    capture, _ = run_capture(nodes, model, targets, family, config=settings(pca_oversamples=64))
    recorder = QKRecorder(block=1, step=capture.step)
    clone = model.clone()
    clone.set_model_patch_replace(recorder, "dit", "double_block", 1)
    positive, negative = conditioning()
    latent = empty_latent(family)["samples"]
    noise = comfy.sample.prepare_noise(latent, SEED)
    comfy.sample.sample(clone, noise, STEPS, 5.0, "euler", "simple", positive, negative, latent,
                        last_step=capture.step + 1, seed=SEED)
    (q_self, k_self, heads), (q_cross, k_cross, _) = recorder.calls[:2]
    grid = capture.grid
    expected = naive_intra_frame_pca(q_self.double().numpy(), k_self.double().numpy(), grid, heads)
    actual = capture.projections.double().numpy()
    np.testing.assert_allclose(align_signs(actual, expected), expected, atol=1e-4 * np.abs(expected).max())
    d = q_cross.shape[-1] // heads
    for noun, columns in targets.token_indices.items():
        for h in range(heads):
            logits = q_cross[:, h * d:(h + 1) * d].double() @ k_cross[:, h * d:(h + 1) * d].double().T / math.sqrt(d)
            probs = torch.softmax(logits, -1)[:, columns].mean(-1).reshape(grid.frames, -1)
            np.testing.assert_allclose(capture.cross_maps[noun][:, h].numpy(), probs.numpy(), atol=1e-5)


@pytest.mark.parametrize("family", ["wan2.1", "wan2.2-5b"])
def test_whole_chain_refines_to_the_targets_and_guides(nodes, models, targets, family):
    capture, refined, guided = run_chain(nodes, models[family], targets, family)
    assert (capture.geometry.spatial_factor, capture.geometry.temporal_stride) == (32 if family == "wan2.2-5b" else 16, 4)
    assert (refined.spatial_factor, refined.temporal_stride) == (capture.geometry.spatial_factor, 4)
    assert refined.provenance == capture.provenance and capture.provenance.prompt == PROMPT
    for noun, count in targets.counts.items():
        assert refined.counts(noun).tolist() == [count] * refined.grid.frames
    plain = plain_ksampler(models[family], family)
    assert guided["samples"].shape == plain.shape
    assert not torch.equal(guided["samples"], plain)  # random layouts never match the targets exactly


def hand_layout(pack, grid):
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED, Layout

    cats = np.zeros(grid.shape, dtype=np.int32)
    cats[:, 2:4, 3:5] = FIRST_ADDED          # an addition in frames without a detected cat: the circle bias
    dogs = np.zeros(grid.shape, dtype=np.int32)
    dogs[:, 0:2, 4:6] = REMOVED              # a removal
    return Layout(grid, {"cats": cats, "dogs": dogs}, {"cats": 1, "dogs": 1})


def test_guidance_raises_added_and_suppresses_removed_attention(nodes, models, targets, pack):
    import nodes as comfy_nodes
    from numina_pack.numina_core.config import preset
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED
    from numina_pack.numina_core.guidance import build_guidance_plan

    model = models["wan2.1"]
    wan = adapter(nodes, model)
    grid = wan.token_grid(empty_latent("wan2.1")["samples"])
    layout = hand_layout(pack, grid)
    config = preset("reference")
    plan = build_guidance_plan(layout, targets.token_indices, config)
    guided, hook, _ = wan.guided_model(layout, targets.token_indices, config, STEPS, 0)
    hook.collect_diagnostics = True
    positive, negative = conditioning()
    comfy_nodes.common_ksampler(guided, SEED, STEPS, 5.0, "euler", "simple", positive, negative,
                                empty_latent("wan2.1"))
    blocks = len(model.get_model_object("diffusion_model").blocks)
    assert hook.modulated_calls == 9 * blocks  # steps 0–8 of 10 (t = 45 and beyond are off)
    rows = plan.rows.numpy()
    hw = grid.tokens_per_frame
    kinds = np.array([layout.labels["cats" if layout.labels["cats"].ravel()[r] >= FIRST_ADDED else "dogs"].ravel()[r]
                      for r in rows])
    added, removed = kinds >= FIRST_ADDED, kinds == REMOVED
    assert added.sum() == 4 * grid.frames and removed.sum() == 4 * grid.frames and hw * grid.frames > len(rows)
    for plain, guided in hook.diagnostics[:blocks]:  # every block of the first step (δ = 1.75)
        assert (guided[added] > plain[added]).all() and (guided[added] / plain[added]).mean() > 2
        assert (guided[removed] < 1e-6 * plain[removed]).all()
    late_plain, late_guided = hook.diagnostics[-1]   # step 8: δ ≈ 0.25, a weaker push
    assert (late_guided[added] > late_plain[added]).all()


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_dense_guidance_path_equals_the_sparse_one(nodes, models, targets, pack, cfg):
    """A plan covering most rows (background suppression) takes the dense path: the positive rows attend once
    with the bias, the host's attention runs only on the others. It must sample what the sparse path (host
    attention on the whole batch, then the plan's rows again) samples, up to float rounding."""
    from numina_pack.nodes.adapters.wan import CrossAttentionGuidanceHook

    model = models["wan2.1"]
    grid = adapter(nodes, model).token_grid(empty_latent("wan2.1")["samples"])
    config = settings(background_suppress_scale=2.0)
    outputs = {}
    try:
        for path, fraction in (("sparse", 2.0), ("dense", 0.0)):
            CrossAttentionGuidanceHook.dense_row_fraction = fraction
            outputs[path] = guided_sample(nodes, model, hand_layout(pack, grid), targets, empty_latent("wan2.1"),
                                          cfg=cfg, config=config)["samples"]
    finally:
        CrossAttentionGuidanceHook.dense_row_fraction = 0.5
    torch.testing.assert_close(outputs["dense"], outputs["sparse"], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(outputs["dense"], plain_ksampler(model, cfg=cfg), atol=1e-3)


@pytest.mark.parametrize("backend", ["attention_pytorch", "attention_split", "attention_basic"])
def test_guidance_is_the_same_whatever_attention_backend_the_host_runs(nodes, models, targets, pack, monkeypatch,
                                                                       backend):
    """The bias never goes to the host's attention function (Sage and flash take none): the modulated
    rows are attended again with SDPA (sparse path), or the positive rows with the bias while the host takes the
    others (dense path). So a guided run samples the same on every ComfyUI backend, up to float rounding, as on
    sub-quadratic attention (what ComfyUI picks on these CPU runs), and still differs from plain sampling there."""
    import comfy.ldm.modules.attention as attention
    import comfy.ldm.wan.model as wan_model

    model = models["wan2.1"]
    grid = adapter(nodes, model).token_grid(empty_latent("wan2.1")["samples"])
    configs = {"sparse": settings(), "dense": settings(background_suppress_scale=2.0)}
    assert wan_model.optimized_attention is attention.attention_sub_quad
    on_sub_quad = {path: guided_sample(nodes, model, hand_layout(pack, grid), targets, empty_latent("wan2.1"),
                                       config=config)["samples"] for path, config in configs.items()}
    host, host_calls = getattr(attention, backend), []

    def counted_host(*args, **kwargs):
        host_calls.append(backend)
        return host(*args, **kwargs)

    monkeypatch.setattr(wan_model, "optimized_attention", counted_host)
    plain = plain_ksampler(model)
    assert host_calls  # the model really runs on the backend
    for path, config in configs.items():
        guided = guided_sample(nodes, model, hand_layout(pack, grid), targets, empty_latent("wan2.1"),
                               config=config)["samples"]
        torch.testing.assert_close(guided, on_sub_quad[path], rtol=1e-4, atol=1e-4)
        assert not torch.allclose(guided, plain, atol=1e-3)


def test_nothing_to_correct_or_zero_strength_equals_ksampler_bit_for_bit(nodes, models, targets, pack):
    from numina_pack.numina_core.grid import Layout

    model = models["wan2.1"]
    grid = adapter(nodes, model).token_grid(empty_latent("wan2.1")["samples"])
    cats = np.zeros(grid.shape, dtype=np.int32)
    cats[:, 0, 0], cats[:, 2, 2], cats[:, 0, 4] = 1, 2, 3
    dogs = np.zeros(grid.shape, dtype=np.int32)
    dogs[:, 3, 0], dogs[:, 3, 5] = 1, 2
    matching = Layout(grid, {"cats": cats, "dogs": dogs}, dict(targets.counts))
    plain = plain_ksampler(model)
    for layout, strength in [(matching, 1.0), (hand_layout(pack, grid), 0.0)]:
        out = guided_sample(nodes, model, layout, targets, empty_latent("wan2.1"),
                            config=settings(guidance_strength=strength))
        assert torch.equal(out["samples"], plain)


def test_phase_one_finishes_the_video_when_nothing_needs_correcting(nodes, models, targets, pack):
    """Strength 0 (nothing will be steered): the capture node samples on to the end and the guided sampler returns
    that video, bit for bit KSampler's, without sampling again; a hand-edited layout of the same capture is still
    guided; with the option off the capture stops at t* and carries no video."""
    layout_nodes, sampling, _ = nodes
    model = models["wan2.1"]
    plain = plain_ksampler(model)
    config = settings(guidance_strength=0.0)
    capture, pre = run_capture(nodes, model, targets, config=config)
    assert capture.provenance.finished is not None
    assert torch.equal(capture.provenance.finished.samples, plain)
    assert not torch.equal(pre["samples"], plain)  # the pre-generation is still the capture step's prediction
    heads = layout_nodes.NuminaHeadSelector.execute(capture, config).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, config).args[0]
    result = sampling.NuminaLayoutGuidedSampler.execute(
        model, SEED, STEPS, 5.0, "euler", "simple", *conditioning(), empty_latent("wan2.1"), layout, targets, 1.0,
        config)
    assert result.args[0]["samples"] is capture.provenance.finished.samples
    assert "the first pass already finished this video" in result.ui.as_dict()["text"][0]
    edited = hand_layout(pack, layout.grid)
    edited.provenance = layout.provenance
    guided = guided_sample(nodes, model, edited, targets, empty_latent("wan2.1"), config=settings())
    assert not torch.equal(guided["samples"], plain)
    other_latent = empty_latent("wan2.1")
    other_latent["samples"] = other_latent["samples"] + 0.5
    resampled = guided_sample(nodes, model, layout, targets, other_latent, config=config)["samples"]
    assert resampled is not capture.provenance.finished.samples
    stopped, _ = run_capture(nodes, model, targets, config=settings(guidance_strength=0.0,
                                                                    finish_when_nothing_to_correct=False))
    assert stopped.provenance.finished is None


def model_state(model) -> str:
    return repr(sorted(model.model_options.get("transformer_options", {}).keys())) + repr(
        {k: sorted(v) for k, v in model.model_options.get("transformer_options", {}).get("patches_replace", {}).items()}
    ) + repr({k: sorted(v) for k, v in model.wrappers.items() if v})


def test_model_is_cloned_never_mutated_after_normal_failed_and_interrupted_runs(nodes, targets, pack, comfyui):
    import comfy.model_management
    from numina_pack.numina_core.targets import NuminaTargets

    model = load_tiny_wan("wan2.1", seed=3)
    before_state, before_output = model_state(model), plain_ksampler(model)
    run_chain(nodes, model, targets)
    broken = NuminaTargets(PROMPT, {"cats": 3}, {"cats": [600]})  # beyond the 512 text slots
    with pytest.raises(ValueError, match="outside the 512 text slots"):
        run_capture(nodes, model, broken)
    import comfy.utils

    def server_progress_hook(value, total, preview, node_id=None):  # what ComfyUI's server installs
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(server_progress_hook)
    comfy.model_management.interrupt_current_processing(True)
    try:
        for phase in ("capture", "chain"):
            with pytest.raises(comfy.model_management.InterruptProcessingException):
                run_capture(nodes, model, targets) if phase == "capture" else run_chain(nodes, model, targets)
            comfy.model_management.interrupt_current_processing(True)
    finally:
        comfy.model_management.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(None)
    assert model_state(model) == before_state
    assert "patches_replace" not in model.model_options.get("transformer_options", {})
    assert torch.equal(plain_ksampler(model), before_output)


def test_cfg_one_has_no_negative_pass_and_still_works(nodes, models, targets):
    capture, refined, guided = run_chain(nodes, models["wan2.1"], targets, cfg=1.0)
    assert capture.projections.shape[1] == 2 and set(capture.cross_maps) == {"cats", "dogs"}
    assert not torch.equal(guided["samples"], plain_ksampler(models["wan2.1"], cfg=1.0))


def test_a_short_phase_one_evaluates_its_sigmas_of_the_run_then_captures(nodes, models, targets):
    import comfy.samplers
    from numina_pack.numina_core.schedule import short_capture_schedule

    model = models["wan2.1"].clone()
    positive_sigmas = []

    def record(apply_model, args):
        if 0 in args["cond_or_uncond"]:
            positive_sigmas.append(float(args["timestep"][0]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    model.set_model_unet_function_wrapper(record)
    capture, _ = run_capture(nodes, model, targets, config=settings(capture_schedule_steps=3))
    full = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", STEPS)
    expected = short_capture_schedule(full, capture.step, 3)[:-1]
    assert capture.step == 4 and len(expected) == 4  # 3 of the run's 4 steps to sigma(4), then the capture there
    np.testing.assert_allclose(positive_sigmas, expected.tolist(), rtol=1e-6)
    assert positive_sigmas[-1] == pytest.approx(float(full[capture.step]))


def test_easycache_never_skips_the_capture_step(nodes, models, targets):
    from comfy_extras.nodes_easycache import EasyCacheNode

    cached = EasyCacheNode.execute(models["wan2.1"], 3.0, 0.0, 1.0, False).args[0]
    capture, _ = run_capture(nodes, cached, targets, config=settings(reference_step=30))
    assert capture.step == 6 and capture.cross_maps["cats"].abs().sum() > 0
    assert not torch.equal(plain_ksampler(cached), plain_ksampler(models["wan2.1"]))  # EasyCache did skip steps


def test_two_chained_experts_see_one_global_progress(nodes, models, targets, pack):
    import nodes as comfy_nodes
    from numina_pack.numina_core.config import preset
    from numina_pack.numina_core.guidance import build_guidance_plan

    high, low = models["wan2.1"], load_tiny_wan("wan2.1", seed=5)
    layout = hand_layout(pack, adapter(nodes, high).token_grid(empty_latent("wan2.1")["samples"]))
    (high_guided, high_hook, _), (low_guided, low_hook, _) = (
        adapter(nodes, expert).guided_model(layout, targets.token_indices, preset("reference"), STEPS, start)
        for expert, start in ((high, 0), (low, 5)))
    hooks = [high_hook, low_hook]
    positive, negative = conditioning()
    first = comfy_nodes.common_ksampler(high_guided, SEED, STEPS, 5.0, "euler", "simple",
                                        positive, negative, empty_latent("wan2.1"), start_step=None, last_step=5)[0]
    comfy_nodes.common_ksampler(low_guided, SEED, STEPS, 5.0, "euler", "simple", positive,
                                negative, first, disable_noise=True, start_step=5, last_step=None)
    blocks = len(high.get_model_object("diffusion_model").blocks)
    assert hooks[0].modulated_calls == 5 * blocks        # global steps 0–4
    assert hooks[1].modulated_calls == 4 * blocks        # global steps 5–8; step 9 (t = 45) is off


@pytest.mark.parametrize("case,message", [
    ("noun_missing", "NUMINA Numeral Parser: noun 'horses' is not in the prompt"),
    ("count_zero", "NUMINA Numeral Parser: count of 'cats' is 0"),
    ("bad_json", "NUMINA Numeral Parser: input 'counts_override' is not valid JSON"),
    ("batch_two", "NUMINA Attention Capture KSampler: input 'latent_image' has batch size 2"),
    ("grid_mismatch", "NUMINA Layout-Guided Sampler: input 'layout' is on a 3×4×6 token grid"),
    ("mask_size", "NUMINA Mask to Layout: input 'mask' is 7×9; it must be the token grid 4×6"),
    ("not_wan", "NUMINA Attention Capture KSampler: input 'model' is a"),
    ("block_range", "NUMINA Attention Capture KSampler: capture block 7 does not exist; this Wan model has blocks 0–2"),
    ("bad_override", "NUMINA Settings: input 'overrides': unknown field"),
])
def test_bad_input_names_the_node_and_the_input(nodes, models, targets, pack, case, message):
    layout_nodes, sampling, _ = nodes
    model = models["wan2.1"]
    grid = adapter(nodes, model).token_grid(empty_latent("wan2.1")["samples"])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        if case == "noun_missing":
            layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=wan_clip([PROMPT]), counts_override='{"horses": 2}')
        elif case == "count_zero":
            layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=wan_clip([PROMPT]), counts_override='{"cats": 0}')
        elif case == "bad_json":
            layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=wan_clip([PROMPT]), counts_override="{cats: 3")
        elif case == "batch_two":
            latent = {"samples": torch.zeros(2, 16, 3, 8, 12)}
            run_capture(nodes, model, targets, latent=latent)
        elif case == "grid_mismatch":
            guided_sample(nodes, model, hand_layout(pack, grid), targets, empty_latent("wan2.1", height=96))
        elif case == "mask_size":
            layout_nodes.NuminaMaskToLayout.execute(torch.zeros(3, 7, 9), hand_layout(pack, grid), "cats")
        elif case == "not_wan":
            import comfy.model_patcher
            import comfy.supported_models
            import comfy.model_base

            config = comfy.supported_models.SD15({"image_size": 32, "use_spatial_transformer": True, "context_dim": 32, "model_channels": 32, "num_res_blocks": 1,
                                                  "channel_mult": [1], "transformer_depth": [1],
                                                  "transformer_depth_output": [1, 1], "transformer_depth_middle": 0, "num_head_channels": 8,
                                                  "in_channels": 4, "out_channels": 4,
                                                  "use_linear_in_transformer": False, "adm_in_channels": None,
                                                  "use_temporal_attention": False})
            sd_model = comfy.model_patcher.ModelPatcher(comfy.model_base.BaseModel(config), torch.device("cpu"),
                                                        torch.device("cpu"))
            run_capture(nodes, sd_model, targets)
        elif case == "block_range":
            run_capture(nodes, model, targets, config=settings(block=7))
        elif case == "bad_override":
            from numina_pack.nodes.settings import NuminaSettings

            NuminaSettings.execute("reference", 1.0, -1, '{"no_such_field": 1}')


def test_no_numeral_passes_through_with_a_notice(nodes, models):
    layout_nodes, sampling, _ = nodes
    prompt = "cats playing in a garden"
    targets = layout_nodes.NuminaNumeralParser.execute(prompt, clip=wan_clip([prompt])).args[0]
    assert targets.is_empty and "no numeral found" in targets.summary()
    capture, _ = run_capture(nodes, models["wan2.1"], targets)
    assert capture.heads == 0 and capture.cross_maps == {}
    heads = layout_nodes.NuminaHeadSelector.execute(capture, settings()).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, settings()).args[0]
    refined, _, _, _, summary = layout_nodes.NuminaLayoutRefiner.execute(layout, targets, settings()).args
    assert refined.nouns == [] and "nothing to correct" in summary.lower()
    guided = guided_sample(nodes, models["wan2.1"], refined, targets, empty_latent("wan2.1"))
    assert torch.equal(guided["samples"], plain_ksampler(models["wan2.1"]))


def test_wan22_5b_with_a_start_image_frame_uses_per_frame_timesteps(nodes, models, targets):
    """Wan22ImageToVideoLatent with a start image sets noise_mask 0 on the first latent frame; the model then
    gets per-frame timesteps. Capture and guidance still locate the step and the rows."""
    layout_nodes, sampling, _ = nodes
    latent = empty_latent("wan2.2-5b")
    mask = torch.ones(1, 1, latent["samples"].shape[2], 1, 1)
    mask[:, :, 0] = 0.0
    latent["noise_mask"] = mask
    capture, _ = run_capture(nodes, models["wan2.2-5b"], targets, "wan2.2-5b", latent=latent)
    heads = layout_nodes.NuminaHeadSelector.execute(capture, settings()).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, settings()).args[0]
    refined = layout_nodes.NuminaLayoutRefiner.execute(layout, targets, settings()).args[0]
    guided = guided_sample(nodes, models["wan2.2-5b"], refined, targets, latent)["samples"]
    plain = plain_ksampler(models["wan2.2-5b"], "wan2.2-5b", latent=latent)
    assert torch.equal(guided[:, :, 0], plain[:, :, 0])  # the start frame is not resampled
    assert not torch.equal(guided, plain)


def test_fp8_weights_work(nodes, targets, comfyui):
    import comfy.sd

    from devtools.wan_models import tiny_wan_state_dict

    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("wan2.1", seed=9),
                                                     model_options={"dtype": torch.float8_e4m3fn})
    assert model.model.diffusion_model.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    capture, refined, guided = run_chain(nodes, model, targets)
    assert torch.isfinite(guided["samples"]).all() and capture.cross_maps["cats"].isfinite().all()


def test_a_lora_patched_model_keeps_its_lora_under_numina(nodes, targets, comfyui):
    import comfy.sd

    base = load_tiny_wan("wan2.1", seed=11)
    generator = torch.Generator().manual_seed(0)
    lora = {"diffusion_model.blocks.0.self_attn.q.lora_A.weight": torch.randn(4, 256, generator=generator),
            "diffusion_model.blocks.0.self_attn.q.lora_B.weight": torch.randn(256, 4, generator=generator)}
    with_lora, _ = comfy.sd.load_lora_for_models(base, None, lora, 1.0, 0)
    assert list(with_lora.patches) == ["diffusion_model.blocks.0.self_attn.q.weight"]
    capture_plain, _ = run_capture(nodes, base, targets)
    capture_lora, _ = run_capture(nodes, with_lora, targets)
    assert not torch.allclose(capture_plain.projections, capture_lora.projections)  # the LoRA is in effect
    _, _, guided = run_chain(nodes, with_lora, targets)
    assert not torch.equal(guided["samples"], plain_ksampler(with_lora))
    assert with_lora.patches and "patches_replace" not in with_lora.model_options.get("transformer_options", {})


def test_chained_guided_samplers_mirror_ksampler_advanced(nodes, models, targets, pack):
    """Wan2.2 A14B's two experts: with strength 0 the two chained Layout-Guided Samplers equal ComfyUI's two
    chained KSamplerAdvanced bit for bit; with guidance on, both experts change the result."""
    import nodes as comfy_nodes

    high, low = models["wan2.1"], load_tiny_wan("wan2.1", seed=5)
    layout = hand_layout(pack, adapter(nodes, high).token_grid(empty_latent("wan2.1")["samples"]))
    positive, negative = conditioning()
    advanced = comfy_nodes.KSamplerAdvanced()
    first = advanced.sample(high, "enable", SEED, STEPS, 5.0, "euler", "simple", positive, negative,
                            empty_latent("wan2.1"), 0, 5, "enable")[0]
    expected = advanced.sample(low, "disable", SEED, STEPS, 5.0, "euler", "simple", positive, negative, first, 5,
                               10000, "disable")[0]["samples"]

    def chain(strength):
        config = settings(guidance_strength=strength)
        out = guided_sample(nodes, high, layout, targets, empty_latent("wan2.1"), config=config, add_noise=True,
                            start_at_step=0, end_at_step=5, return_with_leftover_noise=True)
        return guided_sample(nodes, low, layout, targets, out, config=config, add_noise=False, start_at_step=5,
                             end_at_step=10000, return_with_leftover_noise=False)["samples"]

    assert torch.equal(chain(0.0), expected)
    assert not torch.equal(chain(1.0), expected)
