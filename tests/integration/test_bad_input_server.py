"""Issue 8: bad input never reaches a bare Python error or a silent wrong result, through the REAL headless
ComfyUI on the testbed model. Every case is the six-node pipeline of scripts/run_demo.py (1 frame, 2 steps)
plus the few nodes that carry the bad input, posted to POST /prompt on one server: ComfyUI caches the unchanged
pipeline between prompts, so only the new nodes run. A refused case must give the user a message naming the
node (display name) and the input to fix, whether ComfyUI refuses it at validation (400, node_errors) or the
node raises while running (history: execution_error). Edge inputs that are not errors must give the right
result: strength 0 and a prompt without numerals equal a plain KSampler bit for bit, weighted numerals count,
counts beyond what fits report the shortfall on the node."""
from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from numina_core.config import PRESETS

from devtools.server import ComfyServer
from numina_core.config import config_field_names
from scripts.run_demo import TESTBED_DECODE, TESTBED_EMPTY, TESTBED_ENCODE, TESTBED_LOADER, first_option, node, \
    pipeline_graph, weights_input

PROMPT = "three red discs and two blue squares"
NO_NUMERAL_PROMPT = "red discs and blue squares"
STEPS = 2  # the pipeline's capture and guided runs; each step is seconds on CPU at 1 frame
SEED = 0
INCOMPLETE_DETECTOR = "dino-without-weights"
MODELS = "<models folder>"  # stands for the server's models folder in expected messages

SETTINGS = "NUMINA Settings"
PARSER = "NUMINA Numeral Parser"
CAPTURE = "NUMINA Attention Capture KSampler"
HEADS = "NUMINA Head Selector"
LAYOUT = "NUMINA Countable Layout"
REFINER = "NUMINA Layout Refiner"
GUIDED = "NUMINA Layout-Guided Sampler"
TO_MASK = "NUMINA Layout to Mask"
FROM_MASK = "NUMINA Mask to Layout"
EDITOR = "NUMINA Layout Editor"
COUNT = "NUMINA Count Objects"


# -- graphs ---------------------------------------------------------------------------------------

def base_graph(info: dict) -> dict:
    """The demo pipeline (improved preset) with its plain KSampler baseline, same seed and inputs."""
    return pipeline_graph(info, PROMPT, seed=SEED, steps=STEPS, frames=1, preset="improved",
                          filename_prefix="bad_input")


def sampling(**changes) -> dict:
    """The KSampler inputs of the base pipeline's samplers, some changed."""
    inputs = {"model": ["loader", 0], "seed": SEED, "steps": STEPS, "cfg": 5.0, "sampler_name": "euler",
              "scheduler": "simple", "positive": ["positive", 0], "negative": ["negative", 0],
              "latent_image": ["empty", 0]}
    return {**inputs, **changes}


def settings_node(overrides: str = "", strength: float = 1.0, capture_block: int = -1) -> dict:
    return node("NuminaSettings", {"preset": "improved", "strength": strength, "capture_block": capture_block,
                                   "overrides": overrides})


def bad_settings(overrides: str) -> dict:
    """A second Settings node read by a second Head Selector on the base capture (the base stays cached)."""
    return {"case_settings": settings_node(overrides),
            "case_heads": node("NuminaHeadSelector", {"capture": ["capture", 0], "settings": ["case_settings", 0]}),
            "case_show": node("PreviewImage", {"images": ["case_heads", 1]})}


def parser_node(prompt: str = PROMPT, counts_override: str = "") -> dict:
    return node("NuminaNumeralParser", {"prompt": prompt, "tokenizer": ["positive", 1],
                                        "counts_override": counts_override})


def parsed(prompt: str = PROMPT, counts_override: str = "") -> dict:
    """A second Numeral Parser whose summary is shown (PreviewAny pulls it)."""
    return {"case_parser": parser_node(prompt, counts_override),
            "case_show": node("PreviewAny", {"source": ["case_parser", 1]})}


def guided(**changes) -> dict:
    """A second guided sampler on the base layout, some of its inputs changed, decoded and shown."""
    inputs = {**sampling(), "layout": ["refiner", 0], "targets": ["parser", 0], "denoise": 1.0,
              "settings": ["settings", 0]}
    return {"case_guided": node("NuminaLayoutGuidedSampler", {**inputs, **changes}),
            "case_decode": node(TESTBED_DECODE, {"samples": ["case_guided", 0]}),
            "case_show": node("PreviewImage", {"images": ["case_decode", 0]})}


def captured(**changes) -> dict:
    """A second capture, some of its inputs changed, read by a Head Selector whose preview is shown."""
    inputs = {**sampling(), "targets": ["parser", 0], "settings": ["settings", 0]}
    return {"case_capture": node("NuminaAttentionCaptureKSampler", {**inputs, **changes}),
            "case_heads": node("NuminaHeadSelector", {"capture": ["case_capture", 0]}),
            "case_show": node("PreviewImage", {"images": ["case_heads", 1]})}


def edited(edits: str) -> dict:
    return {"case_editor": node("NuminaLayoutEditor", {"layout": ["layout", 0], "edits": edits}),
            "case_show": node("PreviewAny", {"source": ["case_editor", 1]})}


def to_mask(layout: str = "layout", noun: str = "", image: str = "") -> dict:
    return {"case_to_mask": node("NuminaLayoutToMask", {"layout": [layout, 0], "noun": noun, "image": image}),
            "case_show": node("PreviewImage", {"images": ["case_to_mask", 1]})}


def no_numeral_branch(steps: int = 1) -> dict:
    """The pipeline on a prompt without numerals, and a plain KSampler on it (1 step: nothing is captured)."""
    plain = sampling(steps=steps, positive=["plain_positive", 0])
    return {
        "plain_positive": node(TESTBED_ENCODE, {"model": ["loader", 0], "text": NO_NUMERAL_PROMPT}),
        "plain_parser": parser_node(NO_NUMERAL_PROMPT),
        "plain_capture": node("NuminaAttentionCaptureKSampler", {**plain, "targets": ["plain_parser", 0],
                                                                   "settings": ["settings", 0]}),
        "plain_heads": node("NuminaHeadSelector", {"capture": ["plain_capture", 0], "settings": ["settings", 0]}),
        "plain_layout": node("NuminaCountableLayout", {"heads": ["plain_heads", 0], "targets": ["plain_parser", 0],
                                                       "capture": ["plain_capture", 0], "settings": ["settings", 0]}),
        "plain_refiner": node("NuminaLayoutRefiner", {"layout": ["plain_layout", 0], "targets": ["plain_parser", 0],
                                                      "settings": ["settings", 0]}),
        "plain_guided": node("NuminaLayoutGuidedSampler", {**plain, "layout": ["plain_refiner", 0],
                                                           "targets": ["plain_parser", 0], "denoise": 1.0,
                                                           "settings": ["settings", 0]}),
        "plain_guided_decode": node(TESTBED_DECODE, {"samples": ["plain_guided", 0]}),
        "plain_guided_save": node("SaveImage", {"images": ["plain_guided_decode", 0],
                                                "filename_prefix": "bad_input/no_numeral_guided"}),
        "plain_ksampler": node("KSampler", {**plain, "denoise": 1.0}),
        "plain_ksampler_decode": node(TESTBED_DECODE, {"samples": ["plain_ksampler", 0]}),
        "plain_ksampler_save": node("SaveImage", {"images": ["plain_ksampler_decode", 0],
                                                  "filename_prefix": "bad_input/no_numeral_ksampler"}),
    }


# -- the server and how a case ends ----------------------------------------------------------------

@dataclass
class Outcome:
    """How ComfyUI answered a graph: refused at validation, failed while running, or finished."""
    validation: dict | None = None
    execution_error: dict | None = None
    outputs: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def server(comfyui, tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    # A detector folder that lists in Count Objects (config files present) but has no weights.
    detector = base / "models" / "grounding-dino" / INCOMPLETE_DETECTOR
    detector.mkdir(parents=True)
    (detector / "config.json").write_text(json.dumps({"model_type": "grounding-dino"}))
    (detector / "preprocessor_config.json").write_text("{}")
    with ComfyServer(base) as running:
        info = running.object_info()
        if TESTBED_LOADER not in info or not first_option(info[TESTBED_LOADER], weights_input(info)):
            pytest.skip("the testbed nodes or weights are not available")
        yield running, info


def submit(server: ComfyServer, graph: dict, timeout: float = 600.0) -> Outcome:
    """POST /prompt; a 400 answer is the validation outcome, else wait for the history entry."""
    request = urllib.request.Request(server.url + "/prompt", method="POST",
                                     data=json.dumps({"prompt": graph, "client_id": server.client_id}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.read()
        return Outcome(validation=json.loads(error.read()))
    # ComfyUI still runs the outputs that validate and lists the refused nodes in the 200 answer.
    validation = answer if answer.get("node_errors") else None
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.history(prompt_id)
        if entry is not None and entry.get("status", {}).get("completed") is not None:
            errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
            return Outcome(validation, errors[0] if errors else None, entry["outputs"])
        time.sleep(0.1)
    raise AssertionError(f"prompt not finished after {timeout} s:\n{server.log_tail()}")


def run_case(server, extra: dict, **replaced: dict) -> Outcome:
    """The base pipeline (its nodes replaced where given) plus the case's nodes."""
    running, info = server
    return submit(running, {**base_graph(info), **replaced, **extra})


def node_text(outcome: Outcome, node_id: str) -> str:
    assert outcome.execution_error is None and outcome.validation is None, (outcome.execution_error,
                                                                            outcome.validation)
    return "\n".join(outcome.outputs[node_id].get("text", []))


def saved_pixels(server, outcome: Outcome, node_id: str) -> bytes:
    """The decoded pixels of a SaveImage node's frames (the PNG files also carry the graph as metadata)."""
    running, _ = server
    return b"".join(np.asarray(Image.open(io.BytesIO(running.view(f)))).tobytes()
                    for f in outcome.outputs[node_id]["images"])


@pytest.fixture(scope="module")
def base_run(server) -> Outcome:
    outcome = run_case(server, {})
    assert outcome.execution_error is None and outcome.validation is None
    return outcome


# -- refused at execution: the node raises a message naming itself and the input -----------------------

@dataclass(frozen=True)
class Refused:
    extra: dict
    node_id: str
    node: str
    message: str
    replaced: dict = field(default_factory=dict)


VALID_FIELDS = ", ".join(config_field_names())
COUNTS_SHAPE = 'must be a JSON object of noun → whole number, like {"cats": 3, "dogs": 2}'

EXECUTION_CASES = {
    # NUMINA Settings: the overrides JSON (every problem names input 'overrides' and the field)
    "placement_grid_step 0": Refused(bad_settings('{"placement_grid_step": 0}'), "case_settings", SETTINGS,
                                     "input 'overrides': placement_grid_step must be ≥ 1, not 0"),
    "reference_total_steps 0": Refused(bad_settings('{"reference_total_steps": 0}'), "case_settings", SETTINGS,
                                       "input 'overrides': reference_total_steps must be ≥ 1, not 0"),
    "sa_block_grid 0": Refused(bad_settings('{"sa_block_grid": 0}'), "case_settings", SETTINGS,
                               "input 'overrides': sa_block_grid must be ≥ 1, not 0"),
    "circle_radius text": Refused(bad_settings('{"circle_radius": "five"}'), "case_settings", SETTINGS,
                                  "input 'overrides': circle_radius must be int, not 'five'"),
    "pca_power_iterations -1": Refused(bad_settings('{"pca_power_iterations": -1}'), "case_settings", SETTINGS,
                                       "input 'overrides': pca_power_iterations must be between 0 and 64, not -1"),
    "suppress_scale NaN": Refused(bad_settings('{"suppress_scale": NaN}'), "case_settings", SETTINGS,
                                  "input 'overrides' contains NaN, which is not a number a setting can take"),
    "suppress_scale Infinity": Refused(bad_settings('{"suppress_scale": -Infinity}'), "case_settings", SETTINGS,
                                       "input 'overrides' contains -Infinity, which is not a number a setting "
                                       "can take"),
    "lambda_center overflows": Refused(bad_settings('{"lambda_center": 1e999}'), "case_settings", SETTINGS,
                                       "input 'overrides': lambda_center must be a finite number, not inf"),
    "dbscan_eps 0": Refused(bad_settings('{"dbscan_eps": 0}'), "case_settings", SETTINGS,
                            "input 'overrides': dbscan_eps must be ≥ 1e-06, not 0"),
    "meanshift_bandwidth -1": Refused(bad_settings('{"meanshift_bandwidth": -1}'), "case_settings", SETTINGS,
                                      "input 'overrides': meanshift_bandwidth must be ≥ 1e-06, not -1"),
    "float given as text": Refused(bad_settings('{"cross_attn_peak_ratio": "0.1"}'), "case_settings", SETTINGS,
                                   "input 'overrides': cross_attn_peak_ratio must be float or int, not '0.1'"),
    "int given as float": Refused(bad_settings('{"min_instance_pixels": 2.5}'), "case_settings", SETTINGS,
                                  "input 'overrides': min_instance_pixels must be int, not 2.5"),
    "bool given as number": Refused(bad_settings('{"whole_additions": 1}'), "case_settings", SETTINGS,
                                    "input 'overrides': whole_additions must be bool, not 1"),
    "ratio above 1": Refused(bad_settings('{"cross_attn_peak_ratio": 1.5}'), "case_settings", SETTINGS,
                             "input 'overrides': cross_attn_peak_ratio must be between 0 and 1, not 1.5"),
    "unknown choice": Refused(bad_settings('{"cross_attention_head_mode": "max"}'), "case_settings", SETTINGS,
                              "input 'overrides': cross_attention_head_mode must be one of ['mean', 'peak'], "
                              "not 'max'"),
    "unknown field": Refused(bad_settings('{"placement_step": 2}'), "case_settings", SETTINGS,
                             f"input 'overrides': unknown field(s) ['placement_step']; valid fields: {VALID_FIELDS}"),
    "strength NaN": Refused({**bad_settings(""), "case_settings": settings_node(strength=float("nan"))},
                            "case_settings", SETTINGS, "input 'strength' must be a number from 0 to 10, not nan"),
    "widget set in overrides": Refused(bad_settings('{"guidance_strength": 2}'), "case_settings", SETTINGS,
                                       "input 'overrides' sets ['guidance_strength'], which this node has as "
                                       "widgets; use the widgets"),
    "overrides not an object": Refused(bad_settings('[{"dbscan_eps": 2}]'), "case_settings", SETTINGS,
                                       "input 'overrides' must be a JSON object of settings, e.g. "
                                       '{"cross_attn_peak_ratio": 0.1}'),
    "overrides invalid JSON": Refused(bad_settings('{"dbscan_eps": 2'), "case_settings", SETTINGS,
                                      "input 'overrides' is not valid JSON (Expecting ',' delimiter)"),
    # NUMINA Numeral Parser: counts_override
    "override noun not in prompt": Refused(parsed(counts_override='{"triangles": 2}'), "case_parser", PARSER,
                                           "noun 'triangles' is not in the prompt "
                                           f"{PROMPT!r} (input 'prompt' or 'counts_override')"),
    "override count 0": Refused(parsed(counts_override='{"discs": 0}'), "case_parser", PARSER,
                                "count of 'discs' is 0; NUMINA places at least 1 instance (leave the noun out of "
                                "the counts, or write it out of the prompt) (input 'prompt' or 'counts_override')"),
    "override count negative": Refused(parsed(counts_override='{"discs": -2}'), "case_parser", PARSER,
                                       "count of 'discs' is -2; NUMINA places at least 1 instance (leave the noun "
                                       "out of the counts, or write it out of the prompt) (input 'prompt' or "
                                       "'counts_override')"),
    "override count not whole": Refused(parsed(counts_override='{"discs": 2.5}'), "case_parser", PARSER,
                                        f"input 'counts_override' {COUNTS_SHAPE}"),
    "override count as text": Refused(parsed(counts_override='{"discs": "three"}'), "case_parser", PARSER,
                                      f"input 'counts_override' {COUNTS_SHAPE}"),
    "override not an object": Refused(parsed(counts_override='["discs", 3]'), "case_parser", PARSER,
                                      f"input 'counts_override' {COUNTS_SHAPE}"),
    "override invalid JSON": Refused(parsed(counts_override='{"discs": 3'), "case_parser", PARSER,
                                     "input 'counts_override' is not valid JSON (Expecting ',' delimiter at "
                                     'character 11); write it like {"cats": 3, "dogs": 2}'),
    # The capture
    "batch size 2": Refused({**captured(latent_image=["case_empty", 0]),
                             "case_empty": node(TESTBED_EMPTY, {"frames": 1, "batch_size": 2})},
                            "case_capture", CAPTURE,
                            "input 'latent_image' has batch size 2; NUMINA builds one layout per video, so use "
                            "batch size 1 (queue several seeds instead)"),
    "capture_block beyond the model": Refused({**captured(settings=["case_settings", 0]),
                                               "case_settings": settings_node(capture_block=40)},
                                              "case_capture", CAPTURE,
                                              "capture block 40 does not exist; this Wan model has blocks 0–5 "
                                              "(NUMINA Settings, input 'capture_block')"),
    # The guided sampler: another run than the capture's
    "guided seed differs": Refused(guided(seed=SEED + 1), "case_guided", GUIDED,
                                   "this run differs from the capture the layout came from: seed 1 (captured with "
                                   "0); use the Attention Capture KSampler's seed, steps, cfg, sampler and "
                                   "scheduler here"),
    "guided steps differ": Refused(guided(steps=STEPS + 1), "case_guided", GUIDED,
                                   "this run differs from the capture the layout came from: steps 3 (captured with "
                                   "2); use the Attention Capture KSampler's seed, steps, cfg, sampler and "
                                   "scheduler here"),
    "guided cfg differs": Refused(guided(cfg=4.5), "case_guided", GUIDED,
                                  "this run differs from the capture the layout came from: cfg 4.5 (captured with "
                                  "5.0); use the Attention Capture KSampler's seed, steps, cfg, sampler and "
                                  "scheduler here"),
    "guided sampler differs": Refused(guided(sampler_name="dpmpp_2m"), "case_guided", GUIDED,
                                      "this run differs from the capture the layout came from: sampler_name "
                                      "'dpmpp_2m' (captured with 'euler'); use the Attention Capture KSampler's "
                                      "seed, steps, cfg, sampler and scheduler here"),
    "guided scheduler differs": Refused(guided(scheduler="normal"), "case_guided", GUIDED,
                                        "this run differs from the capture the layout came from: scheduler 'normal' "
                                        "(captured with 'simple'); use the Attention Capture KSampler's seed, "
                                        "steps, cfg, sampler and scheduler here"),
    "guided prompt differs": Refused({**guided(targets=["case_parser", 0]),
                                      "case_parser": parser_node("two red discs and three blue squares")},
                                     "case_guided", GUIDED,
                                     "inputs 'layout' and 'targets' come from different prompts "
                                     f"({PROMPT!r} vs 'two red discs and three blue squares'); connect the Numeral "
                                     "Parser that fed the capture"),
    "guided latent of another size": Refused({**guided(latent_image=["case_empty", 0]),
                                              "case_empty": node(TESTBED_EMPTY, {"frames": 5, "batch_size": 1})},
                                             "case_guided", GUIDED,
                                             "input 'layout' is on a 1×32×32 token grid but 'latent_image' makes "
                                             "5×32×32; capture and guide with the same latent size"),
    "guided batch size 2": Refused({**guided(latent_image=["case_empty", 0]),
                                    "case_empty": node(TESTBED_EMPTY, {"frames": 1, "batch_size": 2})},
                                   "case_guided", GUIDED,
                                   "input 'latent_image' has batch size 2; NUMINA builds one layout per video, so "
                                   "use batch size 1 (queue several seeds instead)"),
    # Layout and refiner fed targets of another prompt
    "layout prompt differs": Refused({"case_parser": parser_node("two red discs and three blue squares"),
                                      "case_layout": node("NuminaCountableLayout", {
                                          "heads": ["heads", 0], "targets": ["case_parser", 0],
                                          "capture": ["capture", 0]}),
                                      "case_show": node("PreviewImage", {"images": ["case_layout", 1]})},
                                     "case_layout", LAYOUT,
                                     "inputs 'capture' and 'targets' come from different prompts "
                                     f"({PROMPT!r} vs 'two red discs and three blue squares'); connect the Numeral "
                                     "Parser that fed the capture"),
    "refiner prompt differs": Refused({"case_parser": parser_node("two red discs and three blue squares"),
                                       "case_refiner": node("NuminaLayoutRefiner", {
                                           "layout": ["layout", 0], "targets": ["case_parser", 0]}),
                                       "case_show": node("PreviewImage", {"images": ["case_refiner", 1]})},
                                      "case_refiner", REFINER,
                                      "inputs 'layout' and 'targets' come from different prompts "
                                      f"({PROMPT!r} vs 'two red discs and three blue squares')"),
    # Layout to Mask / Mask to Layout
    "layout to mask without nouns": Refused({**no_numeral_branch(), **to_mask(layout="plain_layout")},
                                            "case_to_mask", TO_MASK,
                                            "input 'layout' has no nouns (the prompt has no number), so there is "
                                            "nothing to edit"),
    "layout to mask unknown noun": Refused(to_mask(noun="cats"), "case_to_mask", TO_MASK,
                                           "input 'noun' is 'cats'; the layout has ['discs', 'squares']"),
    "layout to mask missing image": Refused(to_mask(image="clipspace/gone.png [input]"), "case_to_mask", TO_MASK,
                                            "input 'image' names 'clipspace/gone.png [input]', which is not in "
                                            "ComfyUI's input folder; clear it and open the picture in the Mask "
                                            "Editor again"),
    "mask of the wrong size": Refused({"case_mask": node("SolidMask", {"value": 1.0, "width": 48, "height": 48}),
                                       "case_from_mask": node("NuminaMaskToLayout", {
                                           "mask": ["case_mask", 0], "base_layout": ["layout", 0], "noun": ""}),
                                       "case_show": node("PreviewAny", {"source": ["case_from_mask", 1]})},
                                      "case_from_mask", FROM_MASK,
                                      "input 'mask' is 48×48; it must be the token grid 32×32 or a whole multiple of "
                                      "it (the video's pixel size)"),
    # Layout Editor
    "editor edits invalid JSON": Refused(edited('[{"op": "delete"'), "case_editor", EDITOR,
                                         "widget 'edits' is not valid JSON (Expecting ',' delimiter); press Reset "
                                         "on the node to start over"),
    "editor edits not a list": Refused(edited('{"op": "delete"}'), "case_editor", EDITOR,
                                       "widget 'edits' must be a JSON list of edits; press Reset on the node to "
                                       "start over"),
    "editor edit without box": Refused(edited('[{"op": "add", "id": "a", "noun": "discs", "frame": 0}]'),
                                       "case_editor", EDITOR,
                                       "widget 'edits' edit 0 (add) needs a box [x0, y0, x1, y1] in token units; "
                                       "press Reset on the node to start over"),
    # Count Objects
    "detector without weights": Refused({"case_count": node("NuminaCountObjects", {
        "images": ["baseline_decode", 0], "nouns": "discs: 3", "detector": INCOMPLETE_DETECTOR, "protocol": "numina",
        "box_threshold": 0.32, "text_threshold": 0.25, "frames": 0, "merge_iou": 0.0}),
        "case_show": node("PreviewAny", {"source": ["case_count", 0]})}, "case_count", COUNT,
        f"input 'detector': the model folder '{INCOMPLETE_DETECTOR}' cannot be loaded (Error no file named "
        f"model.safetensors, or pytorch_model.bin, found in directory {MODELS}/grounding-dino/{INCOMPLETE_DETECTOR}.); "
        "put a complete `save_pretrained` folder (config, processor config, weights, tokenizer files) there"),
    "count nouns unreadable": Refused({"case_count": node("NuminaCountObjects", {
        "images": ["baseline_decode", 0], "nouns": "discs: three", "detector": INCOMPLETE_DETECTOR,
        "protocol": "numina", "box_threshold": 0.32, "text_threshold": 0.25, "frames": 0, "merge_iou": 0.0}),
        "case_show": node("PreviewAny", {"source": ["case_count", 0]})}, "case_count", COUNT,
        "input 'nouns': cannot read 'discs: three'; write each noun as 'noun: count'"),
}


@pytest.mark.parametrize("case", EXECUTION_CASES.values(), ids=EXECUTION_CASES.keys())
def test_bad_input_is_refused_naming_node_and_input(server, base_run, case: Refused):
    outcome = run_case(server, case.extra, **case.replaced)
    assert outcome.validation is None, outcome.validation
    error = outcome.execution_error
    assert error is not None, f"ran without error: {outcome.outputs.get(case.node_id)}"
    assert error["node_id"] == case.node_id
    assert server[1][error["node_type"]]["display_name"] == case.node
    assert error["exception_type"] == "ValueError"
    models = str(server[0].base_dir / "models")
    assert error["exception_message"].strip() == f"{case.node}: {case.message}".replace(MODELS, models)


# -- refused at validation: POST /prompt answers 400 with the node and the input ------------------------

@dataclass(frozen=True)
class Invalid:
    replaced: dict
    node_id: str
    node: str
    input_name: str
    error_type: str
    message: str
    details: str


def with_inputs(node_id: str, **changes) -> dict:
    """The base graph's node `node_id` with some inputs changed (or removed, given None)."""
    graph = pipeline_graph({TESTBED_LOADER: {"input": {"required": {"weights": [["w"]]}},
                                             "input_order": {"required": ["weights"]}}}, PROMPT, SEED, STEPS, 1,
                           preset="improved", filename_prefix="bad_input")
    inputs = {k: v for k, v in {**graph[node_id]["inputs"], **changes}.items() if v is not None}
    return {node_id: {**graph[node_id], "inputs": inputs}}


VALIDATION_CASES = {
    "strength negative": Invalid(with_inputs("settings", strength=-1.0), "settings", SETTINGS, "strength",
                                 "value_smaller_than_min", "Value -1.0 smaller than min of 0.0", "strength"),
    "capture_block above its widget": Invalid(with_inputs("settings", capture_block=100), "settings", SETTINGS,
                                              "capture_block", "value_bigger_than_max",
                                              "Value 100 bigger than max of 99", "capture_block"),
    "capture steps 0": Invalid(with_inputs("capture", steps=0), "capture", CAPTURE, "steps",
                               "value_smaller_than_min", "Value 0 smaller than min of 1", "steps"),
    "guided denoise above 1": Invalid(with_inputs("guided", denoise=1.5), "guided", GUIDED, "denoise",
                                      "value_bigger_than_max", "Value 1.5 bigger than max of 1.0", "denoise"),
    "guided without layout": Invalid(with_inputs("guided", layout=None), "guided", GUIDED, "layout",
                                     "required_input_missing", "Required input is missing", "layout"),
    "capture wired as layout": Invalid(with_inputs("guided", layout=["capture", 0]), "guided", GUIDED, "layout",
                                       "return_type_mismatch", "Return type mismatch between linked nodes",
                                       "layout, received_type(NUMINA_CAPTURE) mismatch input_type(NUMINA_LAYOUT)"),
    "parser without prompt": Invalid(with_inputs("parser", prompt=None), "parser", PARSER, "prompt",
                                     "required_input_missing", "Required input is missing", "prompt"),
}


@pytest.mark.parametrize("case", VALIDATION_CASES.values(), ids=VALIDATION_CASES.keys())
def test_invalid_input_is_refused_before_running(server, case: Invalid):
    outcome = run_case(server, {}, **case.replaced)
    assert outcome.validation is not None, "ComfyUI accepted the graph"
    errors = outcome.validation["node_errors"]
    assert list(errors) == [case.node_id]
    assert server[1][errors[case.node_id]["class_type"]]["display_name"] == case.node
    [error] = errors[case.node_id]["errors"]
    assert (error["type"], error["message"], error["details"]) == (case.error_type, case.message, case.details)
    assert error["extra_info"]["input_name"] == case.input_name



def test_unknown_preset_is_refused_naming_the_input(server):
    """ComfyUI 0.33 refuses a combo value outside its options at validation; 0.3.64 lets a V3 combo's value
    through, so the node itself refuses it."""
    outcome = run_case(server, {}, **with_inputs("settings", preset="best"))
    if outcome.validation is not None:
        [error] = outcome.validation["node_errors"]["settings"]["errors"]
        assert (error["message"], error["details"], error["extra_info"]["input_name"]) == (
            "Value not in list", f"preset: 'best' not in {list(PRESETS)}", "preset")
    else:
        assert outcome.execution_error["node_id"] == "settings"
        assert outcome.execution_error["exception_message"].strip() == (
            f"{SETTINGS}: input 'preset' is 'best'; choose one of {list(PRESETS)}")


# -- edge inputs that are handled: the right result, no error ----------------------------------------------

def test_strength_0_is_exactly_the_plain_ksampler(server, base_run):
    outcome = run_case(server, {
        "off_settings": settings_node(strength=0.0),
        **{k: v for k, v in guided(settings=["off_settings", 0]).items() if k != "case_show"},
        "case_show": node("SaveImage", {"images": ["case_decode", 0], "filename_prefix": "bad_input/strength_0"})})
    assert node_text(outcome, "case_guided").startswith("Not steered (")
    assert saved_pixels(server, outcome, "case_show") == saved_pixels(server, base_run, "baseline_save")
    guided_pixels = saved_pixels(server, base_run, "numina_save")
    assert guided_pixels != saved_pixels(server, base_run, "baseline_save")  # strength 1 does steer


def test_prompt_without_numerals_passes_through_with_a_notice(server, base_run):
    outcome = run_case(server, no_numeral_branch())
    assert node_text(outcome, "plain_parser").startswith("No number in the prompt, so there is nothing to count")
    assert node_text(outcome, "plain_guided") == "No counted nouns: this is exactly a plain KSampler's result."
    assert saved_pixels(server, outcome, "plain_guided_save") == saved_pixels(server, outcome, "plain_ksampler_save")


@pytest.mark.parametrize("prompt, columns", [
    # The testbed's word tokenizer reads "(three:1.2)" as three, one, two: the columns its encoder fills.
    ("(three:1.2) red discs and two blue squares", (4, 8)),
    ("Three RED discs ✨, and two blue squares! 🎈 «» — 三", (2, 6)),
    (PROMPT + " and red discs and blue squares" * 60, (2, 6)),
], ids=["weight syntax", "unicode", "very long"])
def test_prompt_text_is_parsed(server, base_run, prompt: str, columns: tuple[int, int]):
    outcome = run_case(server, parsed(prompt))
    assert node_text(outcome, "case_parser").splitlines()[:2] == ["discs: 3", "squares: 2"]
    assert node_text(outcome, "case_show").splitlines() == [f"discs: 3 (tokens [{columns[0]}])",
                                                            f"squares: 2 (tokens [{columns[1]}])"]


def test_counts_beyond_what_fits_report_the_shortfall(server, base_run):
    outcome = run_case(server, {
        "case_parser": parser_node(counts_override='{"discs": 60, "squares": 2}'),
        "case_refiner": node("NuminaLayoutRefiner", {"layout": ["layout", 0], "targets": ["case_parser", 0],
                                                     "settings": ["settings", 0]}),
        "case_show": node("PreviewImage", {"images": ["case_refiner", 1]})})
    assert "discs: no room for another one in frame 1" in node_text(outcome, "case_refiner").splitlines()


def test_edit_on_a_frame_the_layout_lacks_is_reported_stale(server, base_run):
    outcome = run_case(server, edited('[{"op": "add", "id": "a", "noun": "discs", "frame": 7, "shape": "box", '
                                      '"box": [0, 0, 4, 4]}]'))
    assert node_text(outcome, "case_editor").splitlines()[-2:] == [
        "1 edit(s) no longer apply (the upstream layout changed; redraw them or press Reset):",
        "add box [0.0, 0.0, 4.0, 4.0] of 'discs' in frame 7 (edit a): the layout has frames 0–0"]


def test_cfg_1_captures_and_guides(server, base_run):
    chain = sampling(cfg=1.0)
    outcome = run_case(server, {
        "cfg1_capture": node("NuminaAttentionCaptureKSampler", {**chain, "targets": ["parser", 0],
                                                                  "settings": ["settings", 0]}),
        "cfg1_heads": node("NuminaHeadSelector", {"capture": ["cfg1_capture", 0], "settings": ["settings", 0]}),
        "cfg1_layout": node("NuminaCountableLayout", {"heads": ["cfg1_heads", 0], "targets": ["parser", 0],
                                                      "capture": ["cfg1_capture", 0], "settings": ["settings", 0]}),
        "cfg1_refiner": node("NuminaLayoutRefiner", {"layout": ["cfg1_layout", 0], "targets": ["parser", 0],
                                                     "settings": ["settings", 0]}),
        **guided(cfg=1.0, layout=["cfg1_refiner", 0])})
    assert node_text(outcome, "cfg1_capture").startswith("First pass stopped at step 2 of 2")
    report = node_text(outcome, "case_guided").splitlines()
    assert report[0].startswith("Steered toward the layout (guiding ")
    assert report[1].startswith("discs: target 3 · found ") and report[2].startswith("squares: target 2 · found ")
