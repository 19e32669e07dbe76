"""The testbed's NUMINA arm and studies run the pack's real pipeline on the committed weights (CPU, one
frame, few steps: checks of wiring and shapes, not of accuracy — that is measured on a GPU)."""
import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def session(pack):
    from testbed.evaluate import SamplingSettings, TestbedSession

    return TestbedSession.load(settings=SamplingSettings(steps=4, frames=1))


def test_numina_arm_builds_a_refined_layout_and_guides(session):
    from testbed import numina_arms

    pipeline = numina_arms.Pipeline(session, "improved", {})
    prompt = "three red discs and two blue squares"
    targets, capture = pipeline.capture(prompt, 3, 5.0)
    assert targets.counts == {"discs": 3, "squares": 2}
    assert capture.block == 4 and capture.step == 2  # 2/3 of the testbed's 6 blocks; 60 % of 4 steps, rounded
    assert (capture.geometry.spatial_factor, capture.geometry.temporal_stride) == (2, 1)
    layout = pipeline.countable_layout(capture, targets)
    refined = pipeline.refine.refine_layout(layout, targets.counts, pipeline.config).layout
    assert refined.counts("discs").tolist() == [3] and refined.counts("squares").tolist() == [2]
    video = pipeline.run(prompt, 3, 5.0)
    plain = session.sample(prompt, [3], 5.0)[0]
    assert video.shape == plain.shape == (1, 64, 64, 3)
    assert not torch.equal(video, plain)
    # the run keeps the layout's counts before refinement, which the evaluation stores per video
    assert pipeline.layout_counts == [{noun: layout.counts(noun).tolist() for noun in ("discs", "squares")}]


def test_evaluation_stores_the_layout_counts_of_numina_arms_only(session):
    from testbed import evaluate, numina_arms

    prompts = ["two red discs", "one blue square and three green triangles"]
    layouts: dict = {}
    evaluate.evaluate(session, ["baseline", "numina_improved"], prompts, [5.0], 0, {}, layouts)
    assert list(layouts) == ["numina_improved"]
    stored = layouts["numina_improved"][5.0]
    pipeline = numina_arms.Pipeline(session, "improved", {})
    for i, prompt in enumerate(prompts):
        targets, capture = pipeline.capture(prompt, 1000 * i, 5.0)
        expected = {noun: pipeline.countable_layout(capture, targets).counts(noun).tolist() for noun in targets.counts}
        assert stored[i] == expected


def test_agreement_and_mechanism_studies_report_fractions(session):
    from testbed import numina_arms

    agreement = numina_arms.layout_agreement(session, ["two red discs"], 0, 5.0,
                                             {"reference": {}, "improved": {"preset": "improved"}})
    assert set(agreement) == {"reference", "improved"} and all(0 <= v <= 1 for v in agreement.values())
    checks = numina_arms.mechanism_checks(session, ["two red discs"], 0, 5.0)
    assert checks["added_n"] == 1 and (np.isnan(checks["removed"]) or 0 <= checks["removed"] <= 1)
    # Guidance overrides reach the guided videos: at strength 0 they are the plain video, so nothing moves.
    off = numina_arms.mechanism_checks(session, ["two red discs"], 0, 5.0, guidance={"guidance_strength": 0})
    assert off["added"] == 0.0 and (np.isnan(off["removed"]) or off["removed"] == 0.0)


def test_a_numina_arm_named_by_preset_and_overrides_equals_the_registered_one(session):
    """'numina:<preset>:<JSON>' builds the same arm as the registered name, and bad specs say what is wrong."""
    from testbed import evaluate, numina_arms
    from numina_pack.numina_core.config import ConfigError

    prompt = "two red discs"
    by_spec = evaluate.arm_factory('numina:improved:{"reference_step": 20}')(session)(prompt, 5, 5.0)
    registered = evaluate.arm_factory("numina_improved")(session)(prompt, 5, 5.0)
    assert torch.equal(by_spec, registered)
    off = evaluate.arm_factory('numina:improved:{"guidance_strength": 0}')(session)(prompt, 5, 5.0)
    assert torch.equal(off, session.sample(prompt, [5], 5.0)[0])  # strength 0 is plain sampling
    phrase = evaluate.arm_factory('numina:improved:{"token_scope": "phrase"}')(session)(prompt, 5, 5.0)
    assert torch.equal(phrase, evaluate.arm_factory("numina_improved_phrase")(session)(prompt, 5, 5.0))
    with pytest.raises(ValueError, match="token_scope must be 'noun' or 'phrase'"):
        evaluate.arm_factory('numina:improved:{"token_scope": "colour"}')
    with pytest.raises(ValueError, match="not JSON"):
        evaluate.arm_factory("numina:improved:{strength}")
    with pytest.raises(ValueError, match="JSON object"):
        evaluate.arm_factory("numina:improved:[1]")
    with pytest.raises(ConfigError, match="guidance_strengthx"):
        evaluate.arm_factory('numina:improved:{"guidance_strengthx": 1}')
    with pytest.raises(ValueError, match="unknown arm 'nope:x'.*'numina:…'"):
        evaluate.arm_factory("nope:x")
    assert numina_arms.numina_arm_for_spec("reference")  # overrides are optional


def test_count_verified_arm_specs_share_the_numina_arms_parsing(pack):
    """'verified:<strategy>:<budget>:<preset>:<JSON>' takes the preset and overrides as 'numina:' does (token_scope
    included, an empty preset meaning improved), and its errors name the verified arm."""
    from testbed import evaluate, numina_arms  # noqa: F401 (registers the arms)

    for spec in ["verified:reseed:2", 'verified:reseed:2::{"token_scope": "phrase"}',
                 'verified:reseed:2:improved:{"reference_step": 35}']:
        assert callable(evaluate.arm_factory(spec))
    with pytest.raises(ValueError, match=r"arm 'verified:reseed:2:improved:\{x\}': the overrides are not JSON"):
        evaluate.arm_factory("verified:reseed:2:improved:{x}")
    with pytest.raises(ValueError, match="arm 'verified:.*token_scope must be 'noun' or 'phrase'"):
        evaluate.arm_factory('verified:reseed:2:improved:{"token_scope": 1}')


def test_the_study_command_samples_as_the_server_does_on_any_sampler(pack, tmp_path):
    """`python -m testbed study --sampler uni_pc`: ComfyUI's UniPC leaves autograd on, so outside inference mode the
    capture kept a graph (GPU memory ran out) and the layout could not leave torch."""
    import json

    from testbed.__main__ import main

    out = tmp_path / "study.json"
    assert main(["study", "--device", "cpu", "--steps", "4", "--frames", "1", "--prompts", "1", "--sampler", "uni_pc",
                 "--variants", '{"improved": {"preset": "improved"}}', "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["sampler"] == "uni_pc" and 0 <= report["agreement"]["improved"] <= 1
