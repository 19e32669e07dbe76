"""NUMINA Count Objects against the real ComfyUI (folder_paths, V3 schema, progress) and the real
transformers GroundingDINO code, on a tiny random checkpoint the test writes into a models folder."""
from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pytest
import torch

from tests.conftest import PACK_MODULE_NAME, REPO_ROOT, import_pack
from devtools.tiny_grounding_dino import write_tiny_grounding_dino

MODEL_NAME = "tiny-gdino"


def import_count_node():
    """The node module inside the pack package; works before the pack's root registers nodes."""
    if PACK_MODULE_NAME not in sys.modules:
        if (REPO_ROOT / "__init__.py").is_file():
            import_pack()
        else:
            package = types.ModuleType(PACK_MODULE_NAME)
            package.__path__ = [str(REPO_ROOT)]
            sys.modules[PACK_MODULE_NAME] = package
    return importlib.import_module(f"{PACK_MODULE_NAME}.nodes.count_objects")


@pytest.fixture(scope="module")
def node_module(comfyui, tmp_path_factory):
    import folder_paths

    module = import_count_node()
    models = tmp_path_factory.mktemp("models") / "grounding-dino"
    write_tiny_grounding_dino(models / MODEL_NAME)
    folder_paths.add_model_folder_path("grounding-dino", str(models), is_default=True)
    yield module
    folder_paths.folder_names_and_paths["grounding-dino"][0].remove(str(models))
    module._loaded.clear()


@pytest.fixture(scope="module")
def frames():
    generator = np.random.default_rng(1)
    return torch.from_numpy(generator.random((6, 48, 80, 3), dtype=np.float32))


def run(node_module, images, nouns="cat: 2, dog: 1", protocol="numina", box=0.32, text=0.25, frames=0,
        merge=0.0, targets=None):
    cls = node_module.NuminaCountObjects
    out = cls.execute(images, nouns, MODEL_NAME, protocol, box, text, frames, merge, targets)
    report_json, acc, tc, preview = out.args
    return json.loads(report_json), acc, tc, preview


def reference_counts(node_module, images, noun, box_threshold):
    """Boxes whose best token probability exceeds the threshold, straight from the model's logits."""
    detector = node_module.load_detector(MODEL_NAME)
    counts = []
    for frame in images:
        array = (frame.numpy() * 255).round().astype(np.uint8)
        inputs = detector.processor(images=[array], text=[f"{noun} ."], return_tensors="pt")
        with torch.no_grad():
            logits = detector.model(**inputs).logits
        counts.append(int((logits.sigmoid().max(dim=-1).values[0] > box_threshold).sum()))
    return counts


def test_schema_lists_local_model_and_documents_every_input(node_module):
    schema = node_module.NuminaCountObjects.define_schema()
    assert schema.node_id == "NuminaCountObjects"
    assert schema.display_name == "NUMINA Count Objects"
    assert schema.category == "NUMINA/eval"
    assert schema.description
    assert all(i.tooltip for i in schema.inputs)
    detector_input = next(i for i in schema.inputs if i.id == "detector")
    assert MODEL_NAME in detector_input.options
    assert "IDEA-Research/grounding-dino-tiny" in detector_input.options
    assert node_module.NODES == [node_module.NuminaCountObjects]


def test_counts_equal_boxes_above_threshold(node_module, frames):
    report, acc, tc, preview = run(node_module, frames)
    assert [f["index"] for f in report["frames"]] == list(range(6))
    for noun in ("cat", "dog"):
        assert [f["counts"][noun] for f in report["frames"]] == reference_counts(node_module, frames, noun, 0.32)
    assert isinstance(acc, float) and isinstance(tc, float)
    counts = [f["counts"] for f in report["frames"]]
    expected_acc = np.mean([((c["cat"] == 2) + (c["dog"] == 1)) / 2 for c in counts])
    assert acc == pytest.approx(expected_acc)
    pairs = [(a[n] == b[n]) for a, b in zip(counts, counts[1:]) for n in ("cat", "dog")]
    assert tc == pytest.approx(np.mean(pairs))
    assert report["detector"].endswith(MODEL_NAME)
    assert tuple(preview.shape) == (6, 48, 80, 3) and preview.dtype == torch.float32
    assert 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    assert not torch.equal(preview, frames), "boxes must be drawn on the preview"


def test_threshold_extremes_give_every_query_or_none(node_module, frames):
    everything, acc_all, tc_all, _ = run(node_module, frames, nouns="cat: 20", protocol="custom", box=0.0)
    assert {f["counts"]["cat"] for f in everything["frames"]} == {20}  # 20 queries in the tiny model
    assert (acc_all, tc_all) == (1.0, 1.0)
    nothing, acc_none, _, _ = run(node_module, frames, nouns="cat: 1", protocol="custom", box=1.0)
    assert {f["counts"]["cat"] for f in nothing["frames"]} == {0}
    assert acc_none == 0.0
    low, _, _, _ = run(node_module, frames, nouns="cat: 1", protocol="custom", box=0.5)
    high, _, _, _ = run(node_module, frames, nouns="cat: 1", protocol="custom", box=0.9)
    assert all(h["counts"]["cat"] <= l["counts"]["cat"] for h, l in zip(high["frames"], low["frames"]))


def test_t2v_compbench_protocol_samples_16_frames(node_module):
    many = torch.rand(40, 32, 32, 3, generator=torch.Generator().manual_seed(3))
    report, _, _, preview = run(node_module, many, nouns="cat: 1", protocol="t2v-compbench")
    indices = [f["index"] for f in report["frames"]]
    assert indices == [int(i) for i in np.linspace(0, 39, 16).astype(int)]
    assert preview.shape[0] == 16
    assert "box threshold 0.4" in report["protocol"] and "IoU > 0.9" in report["protocol"]


def test_targets_input_overrides_nouns(node_module, frames):
    targets = types.SimpleNamespace(counts={"dog": 3})
    report, _, _, _ = run(node_module, frames, nouns="cat: 2", targets=targets)
    assert report["targets"] == {"dog": 3}
    assert set(report["frames"][0]["counts"]) == {"dog"}


@pytest.mark.parametrize("nouns, message", [("cat three", "'nouns'"), ("", "'nouns'"), ("cat: -1", "negative")])
def test_bad_nouns_name_the_input(node_module, frames, nouns, message):
    with pytest.raises(ValueError, match="NUMINA Count Objects") as error:
        run(node_module, frames, nouns=nouns)
    assert message in str(error.value)


def test_missing_local_model_says_where_to_put_it(node_module, frames):
    cls = node_module.NuminaCountObjects
    with pytest.raises(ValueError, match="'detector'.*not found; looked in: .*grounding-dino"):
        cls.execute(frames, "cat: 1", "no-such-model", "numina", 0.32, 0.25, 0, 0.0)


def test_post_process_threshold_argument_follows_the_transformers_version():
    from numina_eval.detection import _post_process

    class OldProcessor:
        def post_process_grounded_object_detection(self, outputs, input_ids, box_threshold=0.25,
                                                   text_threshold=0.25, target_sizes=None):
            return [{"box_threshold": box_threshold, "text_threshold": text_threshold}]

    class NewProcessor:
        def post_process_grounded_object_detection(self, outputs, input_ids=None, threshold=0.25,
                                                   text_threshold=0.25, target_sizes=None, text_labels=None):
            return [{"threshold": threshold, "text_threshold": text_threshold}]

    assert _post_process(OldProcessor(), None, None, 0.4, 0.3, []) == [{"box_threshold": 0.4, "text_threshold": 0.3}]
    assert _post_process(NewProcessor(), None, None, 0.4, 0.3, []) == [{"threshold": 0.4, "text_threshold": 0.3}]
