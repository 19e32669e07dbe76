"""Every example workflow, opened in the real frontend the way an artist opens it (the template browser,
or a file dragged onto the canvas): no missing node, every widget holds a value the widget accepts,
no error dialog or toast; a screenshot of the NUMINA nodes of each.

Empty files named like the templates' model files sit in the server's model folders (as in
tests/integration/test_server.py), so the loader combos list them and a wrong file name is an error."""
from __future__ import annotations

import json
import math

import pytest

from devtools.browser import LOADING_MASK, RUN_BUTTON
from devtools.server import PACK_FOLDER_NAME, ComfyServer, write_empty_model_files
from scripts.build_example_workflows import WORKFLOW_DIR, graph_named

TEMPLATES = sorted(path.stem for path in WORKFLOW_DIR.glob("*.json"))


def template(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-browser-templates")
    write_empty_model_files(base, [template(name) for name in TEMPLATES])
    with ComfyServer(base) as running:
        yield running


@pytest.fixture(scope="module")
def frontend(start_frontend, server):
    frontend = start_frontend(server)
    yield frontend
    frontend.page.close()


def invalid_widget_values(nodes: list[dict]) -> list[str]:
    """'node title (type) widget: why' for every widget whose value the widget itself would not accept."""
    problems = []
    for node in nodes:
        for widget in node["widgets"]:
            where = f"{node['title']} ({node['type']}) {widget['name']} = {widget['value']!r}"
            kind, value = widget["type"], widget["value"]
            if kind == "combo":
                if widget["values"] is not None and value not in widget["values"]:
                    problems.append(f"{where}: not one of {widget['values'][:8]}")
            elif kind in ("number", "slider"):
                if widget["value_kind"] != "number" or not math.isfinite(value):
                    problems.append(f"{where}: not a number")
                elif (widget["min"] is not None and value < widget["min"]) or (
                        widget["max"] is not None and value > widget["max"]):
                    problems.append(f"{where}: outside [{widget['min']}, {widget['max']}]")
            elif kind in ("toggle", "boolean"):
                if widget["value_kind"] != "boolean":
                    problems.append(f"{where}: not true/false")
            elif kind in ("text", "customtext", "string", "markdown") and widget["value_kind"] != "string":
                problems.append(f"{where}: not text")
    return problems


def check_loaded(frontend, name: str) -> list[dict]:
    """The loaded graph holds the template's nodes, all known and with valid values; returns its nodes."""
    expected = template(name)["nodes"]
    nodes = frontend.graph_state()
    assert sorted(node["type"] for node in nodes) == sorted(node["type"] for node in expected)
    missing = sorted({node["type"] for node in nodes if not node["registered"]})
    assert not missing, f"{name}: node types the frontend does not know (missing nodes): {missing}"
    invalid = invalid_widget_values(nodes)
    assert not invalid, f"{name}: widgets holding values they do not accept:\n" + "\n".join(invalid)
    assert frontend.alerts() == [], f"{name}: the frontend raised dialogs or toasts"
    numina = [node for node in nodes if node["type"].startswith("Numina")]
    assert numina, f"{name} has no NUMINA node"
    too_small = [node["title"] for node in numina
                 if node["min_size"] and (node["size"][0] < node["min_size"][0] - 1 or node["size"][1] < node["min_size"][1] - 1)]
    assert not too_small, f"{name}: NUMINA nodes smaller than their content: {too_small}"
    return nodes


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_opens_from_template_browser(server, frontend, artifacts, name):
    reason = graph_named(name).unavailable_reason(server.object_info())
    if reason:
        pytest.skip(reason)
    frontend.open_template(PACK_FOLDER_NAME, name)
    nodes = check_loaded(frontend, name)
    frontend.frame_nodes([node["id"] for node in nodes if node["type"].startswith("Numina")])
    frontend.screenshot(artifacts / f"template_{name}.png")


def test_template_dragged_onto_canvas(frontend, artifacts):
    name = "NUMINA Wan2.1 T2V 1.3B"
    frontend.drop_workflow(f"{name}.json", template(name))
    check_loaded(frontend, name)
    frontend.frame_nodes()
    frontend.screenshot(artifacts / f"dragged_{name}.png")


def test_canvas_takes_clicks_after_workflows_dragged_in_quick_succession(frontend):
    """The frontend's loading mask sticks when a second drop starts within the first one's 150 ms leave
    animation (a PrimeVue BlockUI race): drop_workflow must wait it out, or every later click is eaten."""
    name = "NUMINA Wan2.1 T2V 1.3B"
    for _ in range(3):
        frontend.drop_workflow(f"{name}.json", template(name))
    assert frontend.page.locator(LOADING_MASK).count() == 0
    frontend.page.locator(RUN_BUTTON).first.click(trial=True, timeout=5000)
