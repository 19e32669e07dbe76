"""NUMINA Layout Editor through its execute in the real ComfyUI: a layout the real pipeline found on a tiny
Wan2.1 is edited (delete on all frames, add on one frame), the output holds exactly the drawn
instances, the ui payload carries what the canvas draws, and the guided sampler steers the edited tokens."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image

from devtools.wan_models import empty_latent, load_tiny_wan, random_conditioning
from tests.integration.test_numina_pipeline import PROMPT, SEED, settings
from tests.unit.test_layout_edits import instances, rect

STEPS = 4  # capture and guided run; few steps keep the module near a minute on 2 CPU cores


@pytest.fixture(scope="module")
def modules(pack):
    from numina_pack.nodes import layout_editor, layout_nodes, sampling

    return layout_editor, layout_nodes, sampling


@pytest.fixture(scope="module")
def model(comfyui):
    return load_tiny_wan("wan2.1", seed=0)


@pytest.fixture(scope="module")
def pipeline(modules, model):
    """(targets, the Countable Layout's layout) of the real capture → heads → layout chain."""
    from devtools.wan_models import wan_clip

    _, layout_nodes, sampling = modules
    targets = layout_nodes.NuminaNumeralParser.execute(PROMPT, clip=wan_clip([PROMPT])).args[0]
    capture, _ = sampling.NuminaAttentionCaptureKSampler.execute(
        model, SEED, STEPS, 5.0, "euler", "simple", random_conditioning(1), random_conditioning(2),
        empty_latent("wan2.1"), targets, settings()).args
    heads = layout_nodes.NuminaHeadSelector.execute(capture, settings()).args[0]
    layout = layout_nodes.NuminaCountableLayout.execute(heads, targets, capture, settings()).args[0]
    return targets, layout


def decode(encoded: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype="<i2").reshape(shape).astype(np.int32)


def test_schema_keeps_the_edits_in_a_socketless_string_widget(modules):
    info = modules[0].NuminaLayoutEditor.GET_NODE_INFO_V1()
    assert info["display_name"] == "NUMINA Layout Editor"
    kind, options = info["input"]["optional"]["edits"]
    assert kind == "STRING" and options["default"] == "[]" and options["socketless"] is True
    assert info["input"]["required"]["layout"][0] == "NUMINA_LAYOUT"
    assert info["input"]["optional"]["image"][0] == "IMAGE"
    assert info["output"] == ["NUMINA_LAYOUT", "STRING"]


def test_edits_on_the_real_layout_reach_the_guided_sampler(modules, model, pipeline):
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED

    editor, _, sampling = modules
    targets, layout = pipeline
    noun = layout.nouns[0]
    base = layout.labels[noun]
    found = [int(v) for v in np.unique(base[0]) if 0 < v < FIRST_ADDED]
    assert found, f"the tiny model's layout has no {noun} in frame 0: {layout.summary()}"
    deleted = found[0]
    grid = layout.grid
    edits = [
        {"op": "delete", "id": "d", "noun": noun, "frame": None, "target": deleted},
        {"op": "add", "id": "a", "noun": noun, "frame": 1, "shape": "box", "box": [grid.width - 2, 0, grid.width, 2]},
    ]
    image = torch.rand(9, grid.height * 8, grid.width * 8, 3)
    out = editor.NuminaLayoutEditor.execute(layout, image, json.dumps(edits))
    edited, counts = out.args
    added = max(FIRST_ADDED - 1, int(base.max())) + 1
    for f in range(grid.frames):
        before = instances(base[f])
        expected = {label: px for label, px in before.items() if label != deleted}
        if deleted in before:
            expected[REMOVED] = before.get(REMOVED, set()) | before[deleted]
        after = instances(edited.labels[noun][f])
        if f == 1:
            top_right = rect(grid.width - 2, 0, grid.width, 2)
            expected = {label: px - top_right for label, px in expected.items() if px - top_right}
            expected[added] = top_right
        assert after == expected, f"frame {f}"
    assert counts.splitlines()[0] == f"{noun}: " + " ".join(str(c) for c in edited.counts(noun)) + \
        f" (target {targets.counts[noun]})"
    for other in layout.nouns[1:]:
        assert np.array_equal(edited.labels[other], layout.labels[other])

    payload = out.ui["numina_layout"][0]
    assert payload["grid"] == list(grid.shape) and payload["nouns"] == layout.nouns
    assert np.array_equal(decode(payload["base"][noun], payload["grid"]), base)
    assert np.array_equal(decode(payload["result"][noun], payload["grid"]), edited.labels[noun])
    assert payload["stale"] == [] and out.ui["text"] == (counts,)

    guided_tokens = sum(1 for f in range(grid.frames) for y in range(grid.height) for x in range(grid.width)
                        if any(edited.labels[n][f, y, x] == REMOVED or edited.labels[n][f, y, x] >= FIRST_ADDED
                               for n in edited.nouns))
    guided = sampling.NuminaLayoutGuidedSampler.execute(
        model, SEED, STEPS, 5.0, "euler", "simple", random_conditioning(1), random_conditioning(2),
        empty_latent("wan2.1"), edited, targets, 1.0, settings())
    assert f"guiding {guided_tokens} video tokens" in guided.ui.as_dict()["text"][0]


def test_background_frames_are_one_per_latent_frame_from_the_video(modules, pipeline):
    import folder_paths

    editor = modules[0]
    _, layout = pipeline
    video = torch.zeros(9, layout.grid.height * 8, layout.grid.width * 8, 3)
    for frame in range(9):
        video[frame] = frame / 10
    payload = editor.NuminaLayoutEditor.execute(layout, video, "[]").ui["numina_layout"][0]
    assert len(payload["frames"]) == layout.grid.frames == 3
    shown = [np.asarray(Image.open(f"{folder_paths.get_temp_directory()}/{file['subfolder']}/{file['filename']}"))
             for file in payload["frames"]]
    assert [round(image[0, 0, 0] / 255 * 10) for image in shown] == [0, 1, 5]
    assert shown[0].shape == (layout.grid.height * 8, layout.grid.width * 8, 3)


def test_edits_of_instances_that_no_longer_exist_are_reported_on_the_node(modules, pipeline):
    editor = modules[0]
    _, layout = pipeline
    noun = layout.nouns[0]
    edits = [{"op": "delete", "id": "old", "noun": noun, "frame": None, "target": 98},
             {"op": "move", "id": "m", "noun": "horses", "frame": 0, "target": 1, "box": [0, 0, 1, 1]}]
    out = editor.NuminaLayoutEditor.execute(layout, None, json.dumps(edits))
    edited, counts = out.args
    assert all(np.array_equal(edited.labels[n], layout.labels[n]) for n in layout.nouns)
    assert "2 edit(s) no longer apply" in counts
    assert f"delete instance 98 of '{noun}' in all frames (edit old): that instance no longer exists" in counts
    assert "no noun 'horses'" in counts
    assert out.ui["numina_layout"][0]["stale"] == counts.splitlines()[-2:]
    assert out.ui["numina_layout"][0]["frames"] == []


def test_malformed_edits_name_the_node_and_the_widget(modules, pipeline):
    with pytest.raises(ValueError, match=r"NUMINA Layout Editor: widget 'edits' edit 0 \(add\) needs a box"):
        modules[0].NuminaLayoutEditor.execute(pipeline[1], None, '[{"op": "add", "noun": "cats"}]')
