"""Count-verified NUMINA on the real ComfyUI and the committed testbed weights (CPU, one frame, three steps:
wiring, the equivalences and the reports, not accuracy — the GPU evaluation measures that)."""
from __future__ import annotations

import importlib
import re

import pytest
import torch

PROMPT = "three red discs and two blue squares"
STEPS = 3


@pytest.fixture(scope="module")
def session(pack):
    from testbed.evaluate import SamplingSettings, TestbedSession

    return TestbedSession.load(settings=SamplingSettings(steps=STEPS, frames=1))


@pytest.fixture(scope="module")
def modules(pack):
    def load(name: str):
        return importlib.import_module(f"{pack.__name__}.{name}")

    return {name: load(name) for name in ("nodes.count_verified", "nodes.sampling", "numina_core.config",
                                          "numina_core.identify", "numina_core.targets", "testbed.nodes")}


def graph_inputs(session, modules, prompt: str = PROMPT, seed: int = 3) -> dict:
    """The Count-Verified Sampler's inputs as a testbed graph wires them (Testbed VAE, Testbed Counter)."""
    from testbed.model import TestbedTokenizer

    testbed_nodes = modules["testbed.nodes"]
    return {"model": session.model, "seed": seed, "steps": STEPS, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": session.conditioning(prompt), "negative": session.conditioning(""),
            "latent_image": {"samples": torch.zeros(1, 3, 1, 64, 64)},
            "targets": modules["numina_core.targets"].build_targets(prompt, TestbedTokenizer()),
            "vae": testbed_nodes.NuminaTestbedVAE.execute().args[0],
            "counter": testbed_nodes.NuminaTestbedCounter.execute().args[0],
            "settings": modules["numina_core.config"].preset("improved", reference_layer=3)}


def verified(modules, inputs: dict, budget: int, strategy: str = "reseed"):
    out = modules["nodes.count_verified"].NuminaCountVerifiedSampler.execute(**inputs, budget=budget,
                                                                             strategy=strategy)
    latent, images = out.args
    return latent, images, out.ui.as_dict()["text"][0]


def guided_sampler_output(modules, inputs: dict):
    """What Capture KSampler → identify (Head Selector, Countable Layout, Layout Refiner) → Layout-Guided Sampler
    make from the same inputs."""
    sampling = modules["nodes.sampling"]
    shared = {k: v for k, v in inputs.items() if k not in ("vae", "counter")}
    capture = sampling.NuminaAttentionCaptureKSampler.execute(**shared).args[0]
    targets, config = inputs["targets"], inputs["settings"]
    layout = modules["numina_core.identify"].identify(capture, targets.counts, config).refined
    return sampling.NuminaLayoutGuidedSampler.execute(**{**shared, "layout": layout, "denoise": 1.0}).args[0]


def test_budget_one_is_the_guided_samplers_video(session, modules):
    inputs = graph_inputs(session, modules)
    latent, images, report = verified(modules, inputs, budget=1)
    expected = guided_sampler_output(modules, inputs)
    assert torch.equal(latent["samples"], expected["samples"])
    assert images.shape == (1, 64, 64, 3)
    assert torch.equal(images, inputs["vae"].decode(expected["samples"])[0])
    assert report.splitlines()[0].startswith("try 1: seed 3: discs ")
    assert len(report.splitlines()) == 2


def test_nothing_to_correct_is_exactly_ksampler(session, modules):
    import nodes as comfy_nodes

    inputs = graph_inputs(session, modules)
    inputs["settings"] = modules["numina_core.config"].preset("improved", reference_layer=3, guidance_strength=0.0)
    latent, _, _ = verified(modules, inputs, budget=1)
    plain = comfy_nodes.common_ksampler(session.model, 3, STEPS, 5.0, "euler", "simple", inputs["positive"],
                                        inputs["negative"], inputs["latent_image"])[0]
    assert torch.equal(latent["samples"], plain["samples"])


def test_tries_until_exact_or_budget_and_returns_the_reported_best(session, modules):
    inputs = graph_inputs(session, modules, seed=11)
    latent, images, report = verified(modules, inputs, budget=3, strategy="retarget")
    lines = report.splitlines()
    tries = [re.match(r"try (\d): seed (\d+)", line) for line in lines[:-1]]
    assert all(tries) and [int(t[1]) for t in tries] == list(range(1, len(tries) + 1)) and 1 <= len(tries) <= 3
    assert int(tries[0][2]) == 11 and all(11 <= int(t[2]) <= 13 for t in tries)
    exact = [line.endswith("→ exact") for line in lines[:-1]]
    assert exact.count(True) <= 1 and (len(tries) == 3 or exact[-1])  # stops at the first exact try
    kept = int(re.search(r"kept try (\d)", lines[-1])[1])
    counts = inputs["counter"].count(images, ["discs", "squares"])
    kept_line = lines[kept - 1]
    assert f"discs {counts['discs'][0]} of 3 · squares {counts['squares'][0]} of 2" in kept_line
    assert torch.equal(images, inputs["vae"].decode(latent["samples"])[0])


def test_prompt_without_a_number_makes_one_plain_video(session, modules):
    import nodes as comfy_nodes

    inputs = graph_inputs(session, modules, prompt="red discs")
    latent, _, report = verified(modules, inputs, budget=3)
    plain = comfy_nodes.common_ksampler(session.model, 3, STEPS, 5.0, "euler", "simple", inputs["positive"],
                                        inputs["negative"], inputs["latent_image"])[0]
    assert torch.equal(latent["samples"], plain["samples"]) and report.startswith("No number in the prompt")


def test_testbed_counter_counts_exactly_and_names_unknown_nouns(modules):
    from testbed import synthetic as sc

    video = torch.full((2, 64, 64, 3), 0.0)
    video[:, 5:12, 5:12, 0] = 1.0                     # one red blob in both frames
    video[1, 30:40, 30:40, 2] = 1.0                   # one blue square in the second frame
    counter = modules["testbed.nodes"].TestbedExactCounter()
    assert counter.count(video, ["discs", "square"]) == {"discs": [1, 1], "square": [0, 1]}
    assert sc.count_objects(video)[:, 0].tolist() == [1, 1]
    with pytest.raises(ValueError, match="not 'cats'"):
        counter.count(video, ["cats"])


def test_verified_arm_with_budget_one_is_the_numina_arm_and_reports_videos(session, capsys):
    from testbed import numina_arms

    arm = numina_arms.verified_arm("probe", 1, "reseed")(session)
    video = arm(PROMPT, 3, 5.0)
    assert torch.equal(video, numina_arms.Pipeline(session, "improved", {}).run(PROMPT, 3, 5.0))
    assert "# probe cfg 5: prompt 1: 1 videos, 1 captures; mean 1.000 videos" in capsys.readouterr().out
    from testbed import evaluate

    phrase = evaluate.arm_factory('verified:reseed:1:improved:{"token_scope": "phrase"}')(session)(PROMPT, 3, 5.0)
    assert torch.equal(phrase, numina_arms.Pipeline(session, "improved", {}, "phrase").run(PROMPT, 3, 5.0))


def test_verified_arms_run_a_few_prompts_within_budget(session, capsys):
    from testbed import evaluate, numina_arms  # noqa: F401 (registers the arms)

    prompts = ["two red discs", "one blue square and three green triangles"]
    results = evaluate.evaluate(session, ["numina_verified_3"], prompts, [5.0], 0)
    printed = capsys.readouterr().out
    metrics = results["numina_verified_3"][5.0]
    assert 0.0 <= metrics.count_acc <= 1.0 and metrics.n_prompts == 2
    per_prompt = re.findall(r"# numina_verified_3 cfg 5: prompt (\d): (\d) videos, (\d) captures; mean ([\d.]+)",
                            printed)
    assert [int(p[0]) for p in per_prompt] == [1, 2]
    videos = [int(p[1]) for p in per_prompt]
    assert all(1 <= v <= 3 for v in videos) and [int(p[2]) for p in per_prompt] == videos  # reseed: a capture a try
    assert float(per_prompt[-1][3]) == pytest.approx(sum(videos) / 2, abs=1e-3)


def test_object_counter_counts_as_count_objects_does(modules, tmp_path):
    """Both nodes on a tiny random GroundingDINO (devtools): the counter's counts per frame are Count Objects'."""
    import json

    import folder_paths
    import numpy as np

    from devtools.tiny_grounding_dino import write_tiny_grounding_dino

    count_objects = importlib.import_module(modules["nodes.count_verified"].__package__ + ".count_objects")
    models = tmp_path / "grounding-dino"
    write_tiny_grounding_dino(models / "tiny-gdino")
    folder_paths.add_model_folder_path("grounding-dino", str(models), is_default=True)
    try:
        frames = torch.from_numpy(np.random.default_rng(2).random((3, 48, 80, 3), dtype=np.float32))
        settings = ("tiny-gdino", "custom", 0.2, 0.25, 2, 0.0)  # 2 of the 3 frames, a low box threshold
        counter = modules["nodes.count_verified"].NuminaObjectCounter.execute(*settings).args[0]
        counted = counter.count(frames, ["cat", "dog"])
        report = json.loads(count_objects.NuminaCountObjects.execute(frames, "cat: 1, dog: 2", *settings).args[0])
        assert counted == {noun: [f["counts"][noun] for f in report["frames"]] for noun in ("cat", "dog")}
        assert len(counted["cat"]) == 2
    finally:
        folder_paths.folder_names_and_paths["grounding-dino"][0].remove(str(models))
        count_objects._loaded.clear()
