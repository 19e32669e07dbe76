"""The artist's loop through the real headless ComfyUI on the testbed model (layout → Layout to Mask → Mask to
Layout → refiner → guided sampler): every NUMINA node puts its counts or its notice into the run's result
(/history, what the frontend shows on the node), a prompt without a number says so, and a Mask Editor edit saved
into the input folder comes back as a removal in the frame it was made in."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from devtools.server import ComfyServer
from scripts.run_demo import TESTBED_DECODE, TESTBED_EMPTY, TESTBED_ENCODE, TESTBED_LOADER, first_option, node, \
    weights_input

PROMPT = "three red discs and two blue squares"
NO_NUMERAL_PROMPT = "red discs and blue squares"
NUMINA_NODES = ["settings", "parser", "capture", "heads", "layout", "refiner", "guided", "to_mask", "from_mask"]


def artist_graph(info: dict, prompt: str, edited_image: str = "") -> dict:
    sampling = {"seed": 0, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
                "positive": ["positive", 0], "negative": ["negative", 0], "latent_image": ["empty", 0],
                "model": ["loader", 0]}
    weights = first_option(info[TESTBED_LOADER], weights_input(info))
    return {
        "loader": node(TESTBED_LOADER, {weights_input(info): weights}),
        "positive": node(TESTBED_ENCODE, {"model": ["loader", 0], "text": prompt}),
        "negative": node(TESTBED_ENCODE, {"model": ["loader", 0], "text": ""}),
        "empty": node(TESTBED_EMPTY, {"frames": 2, "batch_size": 1}),
        "settings": node("NuminaSettings", {"preset": "reference", "strength": 1.0, "capture_block": 3}),
        "parser": node("NuminaNumeralParser", {"prompt": prompt, "tokenizer": ["positive", 1]}),
        "capture": node("NuminaAttentionCaptureKSampler", {**sampling, "targets": ["parser", 0],
                                                             "settings": ["settings", 0]}),
        "heads": node("NuminaHeadSelector", {"capture": ["capture", 0], "settings": ["settings", 0]}),
        "layout": node("NuminaCountableLayout", {"heads": ["heads", 0], "targets": ["parser", 0],
                                                 "capture": ["capture", 0], "settings": ["settings", 0]}),
        "refiner": node("NuminaLayoutRefiner", {"layout": ["from_mask", 0], "targets": ["parser", 0],
                                                "settings": ["settings", 0]}),
        "to_mask": node("NuminaLayoutToMask", {"layout": ["layout", 0], "noun": "", "image": edited_image}),
        "from_mask": node("NuminaMaskToLayout", {"mask": ["to_mask", 0], "base_layout": ["layout", 0], "noun": ""}),
        "guided": node("NuminaLayoutGuidedSampler", {**sampling, "layout": ["refiner", 0], "targets": ["parser", 0],
                                                     "denoise": 1.0, "settings": ["settings", 0]}),
        "decode": node(TESTBED_DECODE, {"samples": ["guided", 0]}),
        "save": node("PreviewImage", {"images": ["decode", 0]}),
    }


def node_text(outputs: dict, node_id: str) -> str:
    assert node_id in outputs, f"node {node_id} put nothing into the run's result"
    return "\n".join(outputs[node_id].get("text", []))


@pytest.fixture(scope="module")
def server(comfyui, tmp_path_factory):
    with ComfyServer(tmp_path_factory.mktemp("artist")) as running:
        info = running.object_info()
        if TESTBED_LOADER not in info or not first_option(info[TESTBED_LOADER], weights_input(info)):
            pytest.skip("the testbed nodes or weights are not available")
        yield running, info


@pytest.fixture(scope="module")
def counted_run(server):
    running, info = server
    return running.wait(running.post_prompt(artist_graph(info, PROMPT)), timeout=600)["outputs"]


def test_every_numina_node_shows_its_counts_on_the_node(counted_run):
    texts = {name: node_text(counted_run, name) for name in NUMINA_NODES}
    assert texts["settings"].startswith("preset reference")
    assert texts["parser"].splitlines()[:2] == ["discs: 3", "squares: 2"]
    assert "discs, squares" in texts["capture"]
    for name in ("layout", "refiner", "guided", "from_mask"):
        lines = texts[name].splitlines()
        assert any(line.startswith("discs: target 3 · found ") for line in lines), (name, texts[name])
        assert any(line.startswith("squares: target 2 · found ") for line in lines), (name, texts[name])
    refined = next(line for line in texts["refiner"].splitlines() if line.startswith("discs:"))
    assert "now 3 3" in refined                      # the refiner reaches the target in both frames
    assert texts["guided"].startswith(("Steered toward the layout", "Not steered"))
    assert "Open in MaskEditor" in texts["to_mask"]
    assert "No change: the layout is exactly the one you started from." in texts["from_mask"]
    assert len(counted_run["layout"]["images"]) == 2       # one picture per layout frame
    assert len(counted_run["to_mask"]["images"]) == 1      # the edit sheet the Mask Editor opens


def test_a_prompt_without_a_number_says_so_on_the_nodes(server):
    running, info = server
    graph = artist_graph(info, NO_NUMERAL_PROMPT)
    del graph["to_mask"], graph["from_mask"]          # there is nothing to edit without counted nouns
    graph["refiner"]["inputs"]["layout"] = ["layout", 0]
    outputs = running.wait(running.post_prompt(graph), timeout=600)["outputs"]
    assert node_text(outputs, "parser").startswith("No number in the prompt")
    assert node_text(outputs, "capture").startswith("No number in the prompt")
    assert "plain KSampler" in node_text(outputs, "guided")


def test_a_mask_editor_edit_comes_back_as_a_change_in_its_frame(server, counted_run):
    """Erase the first object of frame 1 on the edit sheet (or, where the first pass found none, paint one),
    save it where the Mask Editor saves, and run again with its name in Layout to Mask's 'image'."""
    running, info = server
    with Image.open(io.BytesIO(running.view(counted_run["to_mask"]["images"][0]))) as sheet:
        rgba = np.array(sheet.convert("RGBA"))
    painted = rgba[..., 3] < 128
    if painted.any():
        components = ndimage.label(painted)[0]
        rgba[..., 3][components == components[painted][0]] = 255      # the eraser over one whole object
        expected = r"removed \d in frame 1\b"
    else:
        height, width = rgba.shape[:2]
        rgba[30:30 + height // 4, 8:8 + width // 8, 3] = 0            # a new object in frame 1's tile
        expected = r"added 1 in frame 1\b"
    clipspace = running.base_dir / "input" / "clipspace"
    clipspace.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba).save(clipspace / "clipspace-mask-1.png")
    graph = artist_graph(info, PROMPT, "clipspace/clipspace-mask-1.png [input]")
    outputs = running.wait(running.post_prompt(graph), timeout=600)["outputs"]
    assert node_text(outputs, "to_mask").startswith("Your edit:")
    edited = next(line for line in node_text(outputs, "from_mask").splitlines() if line.startswith("discs:"))
    assert re.search(expected, edited), edited
