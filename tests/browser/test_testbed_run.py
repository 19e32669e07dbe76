"""The NUMINA pipeline on the tiny testbed model, run from the frontend's Run button: the graph comes from
scripts/run_demo.py (API format, dropped on the canvas as an artist drops a saved API workflow), and
the test reads what the frontend then shows on the NUMINA nodes: the counts they report (ui text in
app.nodeOutputs) and their preview images drawn on the node. Screenshots before and after the run.

One frame and four steps keep the run under a minute on 2 CPU cores."""
from __future__ import annotations

import re

import pytest

from devtools.server import ComfyServer
from scripts import run_demo

PROMPT = "three red discs and two blue squares"
REQUESTED = {"discs": 3, "squares": 2}
PARSER, LAYOUT, REFINER = "NuminaNumeralParser", "NuminaCountableLayout", "NuminaLayoutRefiner"


def numbered(graph: dict) -> dict:
    """The API graph with the numeric node ids the frontend gives nodes (names kept as titles)."""
    ids = {name: str(index) for index, name in enumerate(graph, start=1)}

    def link(value):
        return [ids[value[0]], value[1]] if isinstance(value, list) and len(value) == 2 and value[0] in ids else value

    return {ids[name]: {"class_type": node["class_type"], "inputs": {k: link(v) for k, v in node["inputs"].items()},
                        "_meta": {"title": name}}
            for name, node in graph.items()}


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    with ComfyServer(tmp_path_factory.mktemp("comfy-browser-testbed")) as running:
        reason = run_demo.unavailable_reason(running.object_info())
        if reason:
            pytest.skip(reason)
        yield running


@pytest.fixture(scope="module")
def run(start_frontend, server, artifacts):
    """Load the testbed pipeline, press Run, wait; returns the frontend and the node ids per class."""
    frontend = start_frontend(server, viewport={"width": 2400, "height": 1300})  # the whole graph at a readable scale
    graph = numbered(run_demo.pipeline_graph(server.object_info(), prompt=PROMPT, steps=4, frames=1,
                                             baseline=False, preset="improved"))
    frontend.drop_workflow("numina_testbed_api.json", graph)
    # The frontend loads seed widgets as 'randomize'; fixed keeps the run the one the graph describes.
    frontend.page.evaluate("""() => { for (const node of app.graph._nodes) for (const w of node.widgets || [])
                                        if (w.name === 'control_after_generate') w.value = 'fixed';
                                      app.graph.arrange(40); }""")
    frontend.frame_nodes()
    frontend.screenshot(artifacts / "testbed_before_run.png")
    frontend.click_run()
    frontend.wait_until_idle(server.url)
    ids = {}
    for node_id, node in graph.items():
        ids.setdefault(node["class_type"], node_id)
    frontend.page.wait_for_function(
        """ids => ids.every(id => { const node = app.graph.getNodeById(id);
                                    return node.imgs && node.imgs.length && node.imgs.every(i => i.complete && i.naturalWidth); })""",
        arg=[ids[LAYOUT], ids[REFINER]], timeout=30_000)
    frontend.page.evaluate("() => app.graph.arrange(40)")  # previews made the nodes taller: lay out again
    frontend.frame_nodes()
    frontend.screenshot(artifacts / "testbed_after_run.png")
    frontend.frame_nodes([ids[LAYOUT], ids[REFINER]], min_scale=1.0)
    frontend.screenshot(artifacts / "testbed_numina_nodes.png")
    yield frontend, ids
    frontend.page.close()


def count_report(text: str) -> dict[str, dict[str, list[int]]]:
    """{noun: {'target': [3], 'found': [per frame], 'now': [per frame]}} from the nodes' report lines
    ('discs: target 3 · found 4 · now 3 · removed 1 in frame 0')."""
    report = {}
    for line in text.splitlines():
        noun, _, rest = line.partition(": ")
        fields = dict(part.split(" ", 1) for part in rest.split(" · ") if " " in part)
        if {"target", "found"} <= fields.keys():
            report[noun] = {key: [int(n) for n in fields[key].split()] for key in ("target", "found", "now") if key in fields}
    return report


def test_run_button_executes_the_pipeline(run):
    frontend, ids = run
    history = frontend.page.evaluate("async () => (await fetch('/api/history')).json()")
    assert len(history) == 1, "one Run press queues one prompt"
    entry = next(iter(history.values()))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert {node["class_type"] for node in entry["prompt"][2].values()} >= {PARSER, LAYOUT, REFINER}
    assert frontend.alerts() == [], "the frontend raised dialogs or toasts during the run"


def test_numina_nodes_report_counts_and_show_previews(run):
    frontend, ids = run
    outputs = frontend.node_outputs()
    parser_text = outputs[ids[PARSER]]["text"][0]
    for noun, count in REQUESTED.items():
        assert f"{noun}: {count}" in parser_text, parser_text
    layout_text, refiner_text = outputs[ids[LAYOUT]]["text"][0], outputs[ids[REFINER]]["text"][0]
    layout_report = count_report(layout_text)
    assert {noun: counts["target"] for noun, counts in layout_report.items()} == \
        {noun: [count] for noun, count in REQUESTED.items()}, layout_text
    assert all(len(counts["found"]) == 1 and counts["found"][0] >= 0 for counts in layout_report.values()), layout_text
    refiner_report = count_report(refiner_text)
    assert {noun: counts["now"] for noun, counts in refiner_report.items()} == \
        {noun: [count] for noun, count in REQUESTED.items()}, f"the refined layout holds the requested counts: {refiner_text}"
    assert {noun: counts["found"] for noun, counts in refiner_report.items()} == \
        {noun: counts["found"] for noun, counts in layout_report.items()}, "the refiner starts from the layout's counts"
    for class_type in (LAYOUT, REFINER):
        shown = frontend.page.evaluate("id => app.graph.getNodeById(id).imgs.map(i => i.naturalWidth)", ids[class_type])
        assert len(shown) == len(outputs[ids[class_type]]["images"]) and all(width > 0 for width in shown), \
            f"{class_type} shows its preview images on the node"


def test_counts_are_drawn_on_the_numina_nodes(run, artifacts):
    frontend, ids = run
    outputs = frontend.node_outputs()
    for class_type in (LAYOUT, REFINER):
        shown = frontend.text_on_node(ids[class_type])
        for line in outputs[ids[class_type]]["text"][0].splitlines():
            assert line in shown, f"{class_type} does not show {line!r}; it shows {shown!r}"
    frontend.frame_nodes([ids[LAYOUT], ids[REFINER]])
    frontend.screenshot(artifacts / "testbed_counts_on_nodes.png")
