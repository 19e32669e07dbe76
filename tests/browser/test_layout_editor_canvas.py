"""NUMINA Layout Editor in the real frontend served by the real headless server, on the testbed model: run
once, then with the mouse add an instance (drag), move one (drag) and delete one (right-click) on the
node's canvas, run again, and check that the layout the guided sampler consumed holds exactly what was
drawn, that the counts on the node follow, and that the edits survive a workflow save and reload."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from devtools.server import ComfyServer
from scripts import run_demo
from scripts.run_demo import TESTBED_DECODE, node, pipeline_graph
from tests.unit.test_layout_edits import pixels, rect

STEPS = 4
EDITOR = "NuminaLayoutEditor"
ADD_SIDE = 4  # tokens: the drawn ellipse's box


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    with ComfyServer(tmp_path_factory.mktemp("comfy-browser-editor")) as running:
        yield running


@pytest.fixture(scope="module")
def frontend(start_frontend, server):
    frontend = start_frontend(server)
    yield frontend
    frontend.page.close()


def editor_graph(object_info: dict) -> dict:
    """The demo's NUMINA branch (one frame, four steps) with the Layout Editor between the refiner and the
    guided sampler, the decoded pre-generation under its canvas."""
    reason = run_demo.unavailable_reason(object_info)
    if reason:
        pytest.skip(reason)
    graph = pipeline_graph(object_info, steps=STEPS, frames=1, baseline=False, preset="improved")
    # The capture of the middle block at 40 %: its layout leaves free room on the one-frame test video to add
    # into (the preset's later capture finds more of the model's objects and fills it). No background
    # suppression, so the guided tokens are exactly the edited ones.
    graph["settings"]["inputs"]["overrides"] = json.dumps(
        {"reference_step": 20, "reference_layer_depth": 0.5, "background_suppress_scale": 0})
    for preview in ("pca_preview", "cross_preview", "layout_preview"):
        del graph[preview]
    graph["pre_decode"] = node(TESTBED_DECODE, {"samples": ["capture", 1]})
    graph["editor"] = node(EDITOR, {"layout": ["refiner", 0], "image": ["pre_decode", 0], "edits": "[]"})
    graph["guided"]["inputs"]["layout"] = ["editor", 0]
    return graph


def run_and_wait(frontend, server) -> None:
    frontend.click_run()
    frontend.wait_until_idle(server.url)
    assert not frontend.alerts(), frontend.alerts()


def editor_state(frontend, editor_id: str) -> dict:
    """What the canvas holds: the last run's payload (labels decoded), the stored edits, and the layout the
    canvas draws (base + edits, computed in the page)."""
    return frontend.page.evaluate(
        """id => { const editor = app.graph.getNodeById(id).numinaEditor; const data = editor.data;
           const drawn = editor.current();
           return {grid: data.grid, nouns: data.nouns, edits: editor.edits, stale: drawn.stale,
                   base: Object.fromEntries(data.nouns.map(n => [n, Array.from(data.base[n])])),
                   drawn: Object.fromEntries(data.nouns.map(n => [n, Array.from(drawn.labels[n])])),
                   status: editor.status.textContent}; }""", editor_id)


def output_labels(payload: dict, noun: str) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(payload["result"][noun]), dtype="<i2")
    return raw.reshape(payload["grid"]).astype(np.int32)


def free_box(occupied: np.ndarray, side: int, avoid: set) -> tuple[int, int]:
    """Top-left of a side×side window with no instance and none of the `avoid` pixels, one token from any."""
    height, width = occupied.shape
    for y in range(1, height - side):
        for x in range(1, width - side):
            window = rect(x - 1, y - 1, x + side + 1, y + side + 1)
            if not occupied[y - 1:y + side + 1, x - 1:x + side + 1].any() and not window & avoid:
                return x, y
    raise AssertionError("no free room on the layout")


def drag(frontend, editor_id: str, start: tuple[float, float], end: tuple[float, float], button: str = "left") -> None:
    """Press at token-grid point `start`, move to `end` in steps, release: as an artist drags on the canvas."""
    page = frontend.page
    x0, y0 = page.evaluate("([id, x, y]) => app.graph.getNodeById(id).numinaEditor.tokenToClient(x, y)", [editor_id, *start])
    x1, y1 = page.evaluate("([id, x, y]) => app.graph.getNodeById(id).numinaEditor.tokenToClient(x, y)", [editor_id, *end])
    page.mouse.move(x0, y0)
    page.mouse.down(button=button)
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up(button=button)
    page.wait_for_timeout(200)


def right_click(frontend, editor_id: str, at: tuple[float, float]) -> None:
    x, y = frontend.page.evaluate("([id, x, y]) => app.graph.getNodeById(id).numinaEditor.tokenToClient(x, y)",
                                  [editor_id, *at])
    frontend.page.mouse.click(x, y, button="right")
    frontend.page.wait_for_timeout(200)


def guided_notice(server, frontend) -> str:
    guided = next(n for n in frontend.graph_state() if n["type"] == "NuminaLayoutGuidedSampler")
    prompt_id = frontend.page.evaluate("async () => Object.keys(await (await fetch('/api/history?max_items=1')).json())[0]")
    return server.history(prompt_id)["outputs"][guided["id"]]["text"][0]


def steered_tokens(labels: dict[str, np.ndarray]) -> int:
    """Tokens the guided sampler steers: removed or added for any noun."""
    steered = np.zeros(next(iter(labels.values())).shape, dtype=bool)
    for array in labels.values():
        steered |= (array == -1) | (array >= 100)
    return int(steered.sum())


def test_artist_adds_moves_and_deletes_instances_and_the_guided_run_follows(frontend, server, artifacts):
    frontend.drop_workflow("numina_layout_editor.json", editor_graph(server.object_info()))
    # The same seed on every run, so the second run edits the layout the first one showed.
    frontend.page.evaluate("""() => { for (const n of app.graph._nodes) for (const w of n.widgets || [])
                                        if (w.name === 'control_after_generate') w.value = 'fixed'; }""")
    editor_id = next(n["id"] for n in frontend.graph_state() if n["type"] == EDITOR)
    # Room of its own right of the graph, so no other node covers the canvas in the screenshots.
    frontend.page.evaluate("""id => { const nodes = app.graph._nodes;
        app.graph.getNodeById(id).pos = [Math.max(...nodes.map(n => n.pos[0] + n.size[0])) + 100, 0]; }""", editor_id)
    frontend.frame_nodes([editor_id], min_scale=1.0)
    frontend.screenshot(artifacts / "layout_editor_0_before_run.png")
    assert "Run the graph once" in frontend.text_on_node(editor_id) or frontend.page.evaluate(
        "id => app.graph.getNodeById(id).numinaEditor.data === null", editor_id)

    run_and_wait(frontend, server)
    frontend.page.wait_for_function("id => app.graph.getNodeById(id).numinaEditor.data !== null", arg=editor_id)
    frontend.frame_nodes([editor_id], min_scale=1.0)
    frontend.screenshot(artifacts / "layout_editor_1_first_run.png")
    state = editor_state(frontend, editor_id)
    frames, height, width = state["grid"]
    assert frames == 1 and state["edits"] == []
    noun = state["nouns"][0]
    base = np.array(state["base"][noun], dtype=np.int32).reshape(height, width)
    found = [int(v) for v in np.unique(base) if 0 < v < 100]
    assert len(found) >= 2, f"the first run found too few {noun} to move one and delete another: {np.unique(base)}"
    moved_label, deleted_label = found[0], found[1]
    moved_pixels = pixels(base == moved_label)
    occupied = np.zeros((height, width), dtype=bool)
    for array in state["base"].values():
        occupied |= np.array(array).reshape(height, width) != 0

    # 1 drag: add an ellipse in free room.
    ax, ay = free_box(occupied, ADD_SIDE, set())
    drag(frontend, editor_id, (ax + 0.1, ay + 0.1), (ax + ADD_SIDE - 0.1, ay + ADD_SIDE - 0.1))
    added_pixels = pixels(np.array(editor_state(frontend, editor_id)["drawn"][noun]).reshape(height, width) >= 100) \
        - pixels(base >= 100)
    # 1 drag: move an instance onto other free room (its pixels shifted, the old place removed).
    bx0, by0 = min(x for x, _ in moved_pixels), min(y for _, y in moved_pixels)
    bw = max(x for x, _ in moved_pixels) - bx0 + 1
    bh = max(y for _, y in moved_pixels) - by0 + 1
    tx, ty = free_box(occupied, max(bw, bh), added_pixels)
    dx, dy = tx - bx0, ty - by0
    grab = min(moved_pixels, key=lambda p: (p[1], p[0]))
    drag(frontend, editor_id, (grab[0] + 0.5, grab[1] + 0.5), (grab[0] + 0.5 + dx, grab[1] + 0.5 + dy))
    # 1 right-click: delete another found instance.
    victim = min(pixels(base == deleted_label), key=lambda p: (p[1], p[0]))
    right_click(frontend, editor_id, (victim[0] + 0.5, victim[1] + 0.5))
    frontend.screenshot(artifacts / "layout_editor_2_edited.png")

    state = editor_state(frontend, editor_id)
    assert [(e["op"], e.get("target")) for e in state["edits"]] == [("add", None), ("move", moved_label),
                                                                      ("delete", deleted_label)]
    assert state["edits"][0]["box"] == [ax, ay, ax + ADD_SIDE, ay + ADD_SIDE]
    assert state["stale"] == []
    widget = frontend.page.evaluate("id => app.graph.getNodeById(id).widgets.find(w => w.name === 'edits').value",
                                    editor_id)
    assert json.loads(widget) == state["edits"]

    run_and_wait(frontend, server)
    frontend.frame_nodes([editor_id], min_scale=1.0)
    frontend.screenshot(artifacts / "layout_editor_3_second_run.png")
    outputs = frontend.node_outputs()
    payload = outputs[editor_id]["numina_layout"][0]
    result = output_labels(payload, noun)[0]
    drawn = np.array(editor_state(frontend, editor_id)["drawn"][noun]).reshape(height, width)
    assert np.array_equal(result, drawn), "the node's output differs from what the canvas draws"
    after = {int(v): pixels(result == v) for v in np.unique(result) if v != 0}
    new_labels = sorted(v for v in after if v >= 100 and v > base.max())
    assert len(new_labels) == 2
    assert after[new_labels[0]] == added_pixels and len(added_pixels) == 12  # a 4×4 ellipse of token centres
    assert after[new_labels[1]] == {(x + dx, y + dy) for x, y in moved_pixels}, \
        f"edits {state['edits']}, moved by {(dx, dy)}: {sorted(moved_pixels)} → {sorted(after[new_labels[1]])}"
    assert after[-1] == pixels(base == -1) | moved_pixels | pixels(base == deleted_label)
    assert moved_label not in after and deleted_label not in after
    for label in found[2:]:
        assert after[label] == pixels(base == label)

    counts_before = len([v for v in np.unique(base) if v > 0])
    counts_text = outputs[editor_id]["text"][0]
    assert counts_text.startswith(f"{noun}: {counts_before}")  # one added, one deleted, one moved
    assert f"{noun}: {counts_before}" in frontend.text_on_node(editor_id)
    all_labels = {n: output_labels(payload, n) for n in payload["nouns"]}
    assert f"guiding {steered_tokens(all_labels)} video tokens" in guided_notice(server, frontend)

    # The edits are part of the workflow: saved and loaded again, the canvas keeps them.
    workflow = frontend.page.evaluate("async () => (await app.graphToPrompt()).workflow")
    frontend.page.evaluate("async w => { await app.loadGraphData(w); }", workflow)
    reloaded = frontend.page.evaluate(
        """type => app.graph._nodes.find(n => n.type === type).widgets.find(w => w.name === 'edits').value""", EDITOR)
    assert json.loads(reloaded) == state["edits"]
    assert "3 edit(s) stored in the workflow" in frontend.text_on_node(editor_id)


def test_reset_forgets_the_edits(frontend, artifacts):
    """On the workflow reloaded by the test above (its three edits stored, the canvas waiting for a run)."""
    editor_id = next(n["id"] for n in frontend.graph_state() if n["type"] == EDITOR)
    edits_value = "id => app.graph.getNodeById(id).widgets.find(w => w.name === 'edits').value"
    assert len(json.loads(frontend.page.evaluate(edits_value, editor_id))) == 3
    frontend.frame_nodes([editor_id], min_scale=1.0)
    frontend.page.locator("button[data-role=reset]").first.click()
    assert json.loads(frontend.page.evaluate(edits_value, editor_id)) == []
    assert re.search(r"\b0 edit\(s\)", frontend.text_on_node(editor_id))
    frontend.screenshot(artifacts / "layout_editor_4_reset.png")
