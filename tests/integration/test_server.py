"""The real headless ComfyUI server (python main.py --cpu) with the pack installed: it loads without
an import error, lists every NUMINA node, serves the example workflows, every example workflow is
well formed against /object_info and passes the server's own validation, and a tiny-model variant
of the pipeline executes through POST /prompt.

One server for the whole module. Empty files named like Comfy-Org's Wan weights sit in its model
folders, so the loaders' file combos list them and the server validates the example graphs whole
(running them then fails at the first loader, as it must: the files are empty)."""
from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from itertools import combinations

import pytest

from scripts.build_example_workflows import (FRONTEND_ONLY_TYPES, IMAGE_PREVIEW_TYPES, THUMBNAIL_SUFFIX, TITLE_HEIGHT,
                                             WORKFLOW_DIR, graph_named, graphs, workflow_to_api)
from scripts import run_demo as testbed_graph
from devtools.server import (MODEL_LOADER_FOLDERS, PACK_FOLDER_NAME, ComfyServer, ComfyServerError,
                             write_empty_model_files)

NUMINA_NODE_IDS = ["NuminaSettings", "NuminaNumeralParser", "NuminaAttentionCaptureKSampler", "NuminaHeadSelector",
                   "NuminaCountableLayout", "NuminaLayoutRefiner", "NuminaLayoutGuidedSampler",
                   "NuminaLayoutToMask", "NuminaMaskToLayout", "NuminaCountObjects"]
EXAMPLES = sorted(path.stem for path in WORKFLOW_DIR.glob("*.json"))
EXPECTED_EXAMPLES = sorted(graph.name for graph in graphs())
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def example(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def server(comfyui, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-server")
    write_empty_model_files(base, [example(name) for name in EXAMPLES])
    with ComfyServer(base) as running:
        yield running


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    return server.object_info()


# -- loading --------------------------------------------------------------------------------------

def test_pack_imports_without_error(server):
    log = server.log_path.read_text(errors="replace")
    import_line = [line for line in log.splitlines() if "seconds" in line and PACK_FOLDER_NAME in line]
    assert import_line, f"the pack does not appear in ComfyUI's custom node import times:\n{server.log_tail()}"
    assert not any("IMPORT FAILED" in line for line in import_line), import_line
    for failure in re.findall(r"Traceback \(most recent call last\):.*?(?=\n\S|\Z)", log, flags=re.S):
        assert PACK_FOLDER_NAME not in failure and "numina" not in failure.lower(), failure
    assert not re.search(rf"Cannot import .*{re.escape(PACK_FOLDER_NAME)}", log)


def test_object_info_lists_every_numina_node(object_info):
    missing = [node_id for node_id in NUMINA_NODE_IDS if node_id not in object_info]
    assert not missing, f"/object_info lacks {missing}"
    for node_id in NUMINA_NODE_IDS:
        info = object_info[node_id]
        assert info["display_name"].startswith("NUMINA "), node_id
        assert info["category"].startswith("NUMINA"), node_id
        assert info["description"].strip(), node_id
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_workflow_templates_lists_the_examples(server):
    """The template browser lists every example under its readable file name, with its .jpg thumbnail."""
    assert EXAMPLES == EXPECTED_EXAMPLES
    assert all(name.startswith("NUMINA ") for name in EXAMPLES), EXAMPLES
    listed = json.loads(server._request("GET", "/api/workflow_templates"))
    assert sorted(listed.get(PACK_FOLDER_NAME, [])) == EXPECTED_EXAMPLES, listed
    for name in EXAMPLES:
        served = server._request("GET", f"/api/workflow_templates/{PACK_FOLDER_NAME}/{urllib.parse.quote(name)}.json")
        assert json.loads(served) == example(name)
        thumbnail = server._request("GET", f"/api/workflow_templates/{PACK_FOLDER_NAME}/"
                                           f"{urllib.parse.quote(name)}{THUMBNAIL_SUFFIX}")
        assert thumbnail[:3] == b"\xff\xd8\xff" and 5_000 < len(thumbnail) < 100_000, (name, len(thumbnail))


# -- example workflows against /object_info -------------------------------------------------------

def inputs_in_widget_order(info: dict) -> list[tuple[str, str, dict, bool]]:
    specs = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            raw = info["input"][section][name]
            kind = "COMBO" if isinstance(raw[0], list) else raw[0]
            options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
            if isinstance(raw[0], list):
                options = {**options, "options": raw[0]}
            specs.append((name, kind, options, section == "required"))
    return specs


def type_accepts(input_type: str, output_type: str) -> bool:
    if "*" in (input_type, output_type) or input_type == output_type:
        return True
    return set(output_type.split(",")) <= set(input_type.split(","))


def widget_problem(kind: str, options: dict, value) -> str | None:
    if kind == "COMBO":
        return None if value in options.get("options", []) else f"{value!r} not in {options.get('options')}"
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}[kind]
    if not isinstance(value, expected) or (kind != "BOOLEAN" and isinstance(value, bool)):
        return f"{value!r} is not {kind}"
    if kind in ("INT", "FLOAT") and not options.get("min", value) <= value <= options.get("max", value):
        return f"{value} outside [{options.get('min')}, {options.get('max')}]"
    return None


def skip_if_this_comfyui_cannot_run(name: str, object_info: dict) -> None:
    reason = graph_named(name).unavailable_reason(object_info)
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("name", EXPECTED_EXAMPLES)
def test_example_workflow_matches_object_info(name, object_info):
    skip_if_this_comfyui_cannot_run(name, object_info)
    workflow = example(name)
    assert workflow["version"] == 0.4
    nodes = {node["id"]: node for node in workflow["nodes"]}
    unknown = {node["type"] for node in nodes.values()} - set(object_info) - FRONTEND_ONLY_TYPES
    assert not unknown, f"{name}: node types that exist neither in ComfyUI core nor in the pack: {unknown}"
    used = {node["type"] for node in nodes.values()}
    numina = ({"NuminaCountVerifiedSampler", "NuminaObjectCounter"} if "NuminaCountVerifiedSampler" in used else
              {"NuminaAttentionCaptureKSampler", "NuminaHeadSelector", "NuminaCountableLayout", "NuminaLayoutRefiner",
               "NuminaLayoutGuidedSampler", "VAEDecode"})
    assert {"NuminaSettings", "NuminaNumeralParser", "SaveAnimatedWEBP", *numina} <= used, used

    for link_id, origin, origin_slot, target, target_slot, link_type in workflow["links"]:
        output_type = object_info[nodes[origin]["type"]]["output"][origin_slot]
        entry = nodes[target]["inputs"][target_slot]
        assert entry["link"] == link_id and link_id in nodes[origin]["outputs"][origin_slot]["links"]
        specs = {spec[0]: spec for spec in inputs_in_widget_order(object_info[nodes[target]["type"]])}
        input_type = specs[entry["name"]][1]
        assert link_type == output_type and type_accepts(input_type, output_type), \
            f"{name}: link {link_id} sends {output_type} into {nodes[target]['type']}.{entry['name']} ({input_type})"

    for node in nodes.values():
        if node["type"] in FRONTEND_ONLY_TYPES:
            continue
        where = f"{name}: node {node['id']} {node['type']}"
        specs = inputs_in_widget_order(object_info[node["type"]])
        linked = {entry["name"] for entry in node["inputs"] if entry.get("link") is not None}
        widget_specs = [s for s in specs if s[1] in WIDGET_TYPES and not s[2].get("forceInput")]
        expected_values = sum(1 + bool(options.get("control_after_generate")) for _, _, options, _ in widget_specs)
        values = list(node["widgets_values"])
        assert len(values) == expected_values, f"{where}: {len(values)} widget values for {expected_values} widgets"
        for input_name, kind, options, required in specs:
            is_widget = (input_name, kind, options, required) in widget_specs
            if not is_widget:
                assert not required or input_name in linked, f"{where}: required input '{input_name}' unconnected"
                continue
            value = values.pop(0)
            if options.get("control_after_generate"):
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
            if input_name not in linked:
                problem = widget_problem(kind, options, value)
                assert problem is None, f"{where}: widget '{input_name}' {problem}"


@pytest.mark.parametrize("name", EXPECTED_EXAMPLES)
def test_server_validates_example_workflow(name, server, object_info):
    """The server's own validation (types, combos, ranges, required inputs) accepts the API export;
    executing it stops at the first loader because the weight files here are empty (or, for the object
    counter, because no detector can be downloaded here, with a message naming its input)."""
    skip_if_this_comfyui_cannot_run(name, object_info)
    graph = workflow_to_api(example(name), object_info)
    prompt_id = server.post_prompt(graph)
    with pytest.raises(ComfyServerError) as failure:
        server.wait(prompt_id, timeout=120)
    error = dict(json.loads(str(failure.value).split(" failed: ", 1)[1]))["execution_error"]
    if error["node_type"] == "NuminaObjectCounter":
        assert "NUMINA Object Counter: input 'detector'" in error["exception_message"], error["exception_message"]
    else:
        assert error["node_type"] in MODEL_LOADER_FOLDERS, error


# -- tiny-model pipeline through POST /prompt ------------------------------------------------------

@pytest.mark.slow
def test_testbed_pipeline_executes(server, object_info):
    reason = testbed_graph.unavailable_reason(object_info)
    if reason:
        pytest.skip(reason)
    # One frame and four steps keep it to seconds on a CPU (five frames cost ~20 s per step).
    graph = testbed_graph.pipeline_graph(object_info, prompt="three red discs and two blue squares", seed=3,
                                         steps=4, frames=1, baseline=False)
    entry = server.wait(server.post_prompt(graph), timeout=180)
    outputs = entry["outputs"]
    saved = outputs[testbed_graph.NUMINA_SAVE]["images"]
    assert len(saved) == 1 and saved[0]["type"] == "output"
    assert server.view(saved[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for preview in testbed_graph.PREVIEWS:
        assert outputs[preview]["images"], f"no images from preview node {preview}"
    counts = outputs[testbed_graph.LAYOUT]["text"][0]
    assert "disc" in counts and "square" in counts, counts


def test_committed_examples_equal_a_fresh_build(object_info):
    """example_workflows/ is what scripts/build_example_workflows.py makes from this server's /object_info:
    run against every supported ComfyUI, this shows one set of files suits them all (a graph that needs a
    newer ComfyUI than this one is compared where it runs)."""
    from scripts.build_example_workflows import build_workflow, render

    stale = [g.name for g in graphs() if g.unavailable_reason(object_info) is None
             if render(build_workflow(g, object_info)) != (WORKFLOW_DIR / f"{g.name}.json").read_text()]
    assert not stale, f"run scripts/build_example_workflows.py: {stale} are stale"


# -- example workflows as the canvas shows them ----------------------------------------------------

def node_box(node: dict) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) on the canvas, title bar included."""
    (x, y), (width, height) = node["pos"], node["size"]
    return x, y - TITLE_HEIGHT, x + width, y + height


def overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", EXPECTED_EXAMPLES)
def test_example_layout_is_tidy(name):
    """No two nodes or groups overlap, every node sits in at most one group, nodes that draw images get
    room for them, and no image is previewed twice (a node showing its own preview feeds no Preview Image)."""
    workflow = example(name)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for a, b in combinations(nodes.values(), 2):
        assert not overlap(node_box(a), node_box(b)), f"{name}: nodes {a['id']} and {b['id']} overlap"
    groups = [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
               g["bounding"][1] + g["bounding"][3]) for g in workflow["groups"]]
    for a, b in combinations(groups, 2):
        assert not overlap(a, b), f"{name}: groups {a} and {b} overlap"
    for node in nodes.values():
        assert sum(overlap(node_box(node), group) for group in groups) <= 1, f"{name}: node {node['id']} in two groups"
        if node["type"] in IMAGE_PREVIEW_TYPES:
            assert node["size"][0] >= 400 and node["size"][1] >= 400, f"{name}: node {node['id']} {node['size']}"
    for _, origin, _, target, _, _ in workflow["links"]:
        if nodes[target]["type"] == "PreviewImage":
            assert nodes[origin]["type"] not in IMAGE_PREVIEW_TYPES, f"{name}: {nodes[origin]['type']} previewed twice"


@pytest.mark.parametrize("name", EXPECTED_EXAMPLES)
def test_example_shares_one_settings_node(name):
    """One NUMINA Settings node, at its defaults (the capture block -1 is the preset's), feeds every NUMINA node
    that takes settings. The A14B template moves the capture before the experts' switch (step 9 of 20 < 10)."""
    from numina_core.config import preset

    workflow = example(name)
    settings = [node for node in workflow["nodes"] if node["type"] == "NuminaSettings"]
    overrides = '{"reference_step": 22}' if "A14B" in name else ""
    assert len(settings) == 1 and settings[0]["widgets_values"] == ["improved", 1.0, -1, overrides], settings
    if overrides:
        assert preset("improved", **json.loads(overrides)).capture_step_for(20) == 9
    fed = {target for link_id, origin, _, target, _, _ in workflow["links"] if origin == settings[0]["id"]}
    takes_settings = {node["id"] for node in workflow["nodes"]
                      if any(entry["name"] == "settings" for entry in node["inputs"])}
    assert fed == takes_settings and fed, (fed, takes_settings)
