"""Build example_workflows/<title>.json (ComfyUI's drag-and-drop "litegraph" format) and a same-named
.jpg thumbnail (a drawing of the graph) from the graph descriptions below, reading every node's
inputs, widgets and outputs from a real server's /object_info.

    python scripts/build_example_workflows.py            # starts a headless ComfyUI with the pack
    python scripts/build_example_workflows.py --url http://127.0.0.1:8188
    python scripts/build_example_workflows.py --check    # exit 1 if the committed files are stale

The graphs use only ComfyUI core nodes and the pack's nodes, with the file names of Comfy-Org's
repackaged Wan weights, so a user who has those files drags one in and presses Run. Every supported
ComfyUI builds the same files: the graphs use only core nodes whose widgets are the same in all of
them (CreateVideo and SaveVideo changed in ComfyUI 0.33, so the videos are saved with Save Animated
WEBP), and the pass-through outputs 0.33 gave output nodes are left out where nothing uses them.
ComfyUI's template browser titles a pack's template by its file name and shows `<name>.jpg` beside it.

To add a template: write a function returning a `Graph` (reuse `text_nodes`, `numina_chain`,
`output_nodes`, `standard_groups`) and list it in `graphs()`.
`workflow_to_api()` turns a saved workflow into the API format POST /prompt takes (what the
frontend's "Export (API)" does), which the integration tests execute.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = REPO_ROOT / "example_workflows"
THUMBNAIL_SUFFIX = ".jpg"  # the only one the frontend asks custom node packs for (1.27 to 1.49)

# Frontend-only node types: they live in the browser and are dropped from the API format.
FRONTEND_ONLY_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Nodes that draw images on themselves after a run, and those that print text on themselves
# (the pack's nodes return it in their `ui`): both need room so nothing overlaps once a run fills them.
IMAGE_PREVIEW_TYPES = {"PreviewImage", "SaveAnimatedWEBP", "NuminaHeadSelector", "NuminaCountableLayout",
                       "NuminaLayoutRefiner", "NuminaLayoutEditor", "NuminaCountObjects"}
TEXT_PREVIEW_TYPES = {"NuminaSettings", "NuminaNumeralParser", "NuminaAttentionCaptureKSampler", "NuminaHeadSelector",
                      "NuminaCountableLayout", "NuminaLayoutRefiner", "NuminaLayoutGuidedSampler",
                      "NuminaCountVerifiedSampler", "NuminaCountObjects"}
NODE_WIDTH, PREVIEW_WIDTH, NOTE_SIZE = 340, 420, [440, 560]
IMAGE_PREVIEW_HEIGHT, TEXT_PREVIEW_HEIGHT = 380, 90
TITLE_HEIGHT = 30  # litegraph draws a node's title bar above its pos

WAN21_REPO = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
WAN22_REPO = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files"

PROMPT = "Three corgis and two white cats playing together on a sunny lawn, cinematic, high detail."
NEGATIVE = ("blurry, low quality, worst quality, jpeg artifacts, static frame, distorted, deformed, extra limbs, "
            "duplicated body parts, watermark, text, subtitles, overexposed")
SEED = 42
NOTE_COLUMN, GUIDED_COLUMN = -1, 10
COLUMN_WIDTH = 480
# One colour per group of standard_groups(), from the frontend's group palette.
GROUP_COLOURS = ["#3f789e", "#8a8a3f", "#a1309b", "#88a", "#3f8f5f", "#444"]
VIDEO_PREFIX = {"numina": "numina", "baseline": "numina_baseline"}


# -- graph descriptions -----------------------------------------------------------------------------

@dataclass
class Node:
    """One node of a graph description. `links` maps an input name to (source node key, output slot);
    `widgets` gives widget values by input name (unnamed ones take /object_info's default)."""
    key: str
    type: str
    column: int
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)
    title: str | None = None
    models: list[tuple[str, str, str]] = field(default_factory=list)  # (file, url, models folder)
    text: str | None = None  # MarkdownNote body
    band: int = 0  # 0: the NUMINA pipeline, 1: the baseline branch drawn below it


@dataclass
class Graph:
    name: str  # the file name, which the template browser shows as the template's title
    nodes: list[Node]
    groups: list[tuple[str, list[str]]]  # (title, node keys)
    requires: tuple[str, str, str] | None = None
    """(node type, input, option) a ComfyUI must offer to run this graph, e.g. CLIPLoader's type 'cogvideox'
    (ComfyUI ≥ 0.33); None: every supported ComfyUI runs it."""

    def unavailable_reason(self, object_info: dict) -> str | None:
        """Why a ComfyUI with this /object_info cannot run the graph, or None when it can."""
        if self.requires is None:
            return None
        node_type, input_name, option = self.requires
        spec = {**object_info.get(node_type, {}).get("input", {}).get("required", {}),
                **object_info.get(node_type, {}).get("input", {}).get("optional", {})}.get(input_name)
        options = spec[0] if spec and isinstance(spec[0], list) else (spec[1].get("options", []) if spec else [])
        if option in options:
            return None
        return f"{self.name} needs {node_type} '{input_name}' = '{option}', which this ComfyUI does not offer"


def model_file(folder: str, repo: str, name: str) -> tuple[str, str, str]:
    return name, f"{repo}/{folder}/{name}", folder


def numina_chain(*, model: str, guided: list[tuple[str, dict, str]], latent: str, steps: int, cfg: float,
                 sampler: str, layout_source: str = "refiner", settings_widgets: dict | None = None) -> list[Node]:
    """Settings → Parser → Capture → Head Selector → Countable Layout → Refiner → guided sampler(s).
    `guided` lists (model key, extra widgets, latent source key) per chained Layout-Guided Sampler; they
    follow the layout of `layout_source` (the refiner, or an editor after it); `settings_widgets` sets the
    Settings node's widgets.
    Head Selector, Countable Layout and Layout Refiner show their own previews; only the
    pre-generation needs a decode and a Preview Image."""
    common = {"steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": "simple"}
    sampling = {"model": (model, 0), "seed": ("seed", 0), "positive": ("positive", 0), "negative": ("negative", 0)}
    settings = {"settings": ("settings", 0)}
    nodes = [
        Node("settings", "NuminaSettings", 2, title="NUMINA Settings (used by every NUMINA node)",
             widgets=settings_widgets or {}),
        Node("parser", "NuminaNumeralParser", 4, links={"prompt": ("prompt", 0), "clip": ("clip", 0)}),
        Node("capture", "NuminaAttentionCaptureKSampler", 5, widgets=common,
             links={**sampling, "latent_image": (latent, 0), "targets": ("parser", 0), **settings}),
        Node("pre_decode", "VAEDecode", 6, title="Decode pre-generation",
             links={"samples": ("capture", 1), "vae": ("vae", 0)}),
        Node("pre_preview", "PreviewImage", 6, title="Pre-generation (what phase 1 would draw)",
             links={"images": ("pre_decode", 0)}),
        Node("heads", "NuminaHeadSelector", 7, links={"capture": ("capture", 0), **settings}),
        Node("layout", "NuminaCountableLayout", 8,
             links={"heads": ("heads", 0), "targets": ("parser", 0), "capture": ("capture", 0), **settings}),
        Node("refiner", "NuminaLayoutRefiner", 9, links={"layout": ("layout", 0), "targets": ("parser", 0), **settings}),
    ]
    for index, (model_key, extra, latent_key) in enumerate(guided):
        key = "guided" if index == 0 else f"guided_{index + 1}"
        nodes.append(Node(key, "NuminaLayoutGuidedSampler", GUIDED_COLUMN + index, widgets={**common, **extra},
                          links={**sampling, "model": (model_key, 0), "latent_image": (latent_key, 0),
                                 "layout": (layout_source, 0), "targets": ("parser", 0), **settings}))
    return nodes


def output_nodes(branch: str, latent_key: str, column: int, fps: float, title: str) -> list[Node]:
    """Decode → Save Animated WEBP (its widgets are the same in every supported ComfyUI, unlike
    CreateVideo → SaveVideo; the file plays in every browser and in the node itself)."""
    band = int(branch == "baseline")
    return [
        Node(f"{branch}_decode", "VAEDecode", column, links={"samples": (latent_key, 0), "vae": ("vae", 0)}, band=band),
        Node(f"{branch}_save", "SaveAnimatedWEBP", column + 1, title=title,
             widgets={"filename_prefix": f"video/{VIDEO_PREFIX[branch]}", "fps": fps, "lossless": False,
                      "quality": 90, "method": "default"},
             links={"images": (f"{branch}_decode", 0)}, band=band),
    ]


def text_nodes() -> list[Node]:
    return [
        Node("seed", "PrimitiveInt", 2, title="Seed (shared by every sampler)", widgets={"value": SEED}),
        Node("prompt", "PrimitiveStringMultiline", 2, title="Prompt (with the counts)", widgets={"value": PROMPT}),
        Node("positive", "CLIPTextEncode", 3, title="Positive", links={"text": ("prompt", 0), "clip": ("clip", 0)}),
        Node("negative", "CLIPTextEncode", 3, title="Negative", widgets={"text": NEGATIVE},
             links={"clip": ("clip", 0)}),
    ]


A14B_NOTE = """

**Two experts**: the high-noise expert draws the layout, so NUMINA reads it there. This template's
Settings *overrides* `{"reference_step": 22}` move the capture from 60 % of the run (step 12 of 20, the
low-noise expert's part) to step 9, the last before the switch at step 10. Keep the capture before the
switch if you change the steps or the switch."""

HOW_TO = """## NUMINA: the number of objects you ask for

Write the counts in the prompt ("three corgis and two cats"). **NUMINA Numeral Parser** finds them
(or type them into *counts_override* as JSON).

1. **Attention Capture KSampler** reaches the noise of 60 % of the run in 6 quick steps and reads one
   block's attention there.
2. **Head Selector**, **Countable Layout**, **Layout Refiner** turn it into one instance layout per frame
   with exactly the requested counts (each shows its preview after a run).
3. **Layout-Guided Sampler** regenerates from the same seed, steering cross-attention to the layout.

**NUMINA Settings** holds the preset, the guidance *strength* and the *capture_block* (-1: the preset's,
2/3 of the model's depth) for every NUMINA node. The plain **KSampler** branch is the baseline with the same seed; mute
its group to save time. Edit a layout by hand with *NUMINA Layout to Mask* → Mask Editor →
*NUMINA Mask to Layout*. For MP4 files, replace *Save Animated WEBP* by *Create Video* → *Save Video*.

**Models** (the files ComfyUI's own templates use):
"""


def how_to_note(title: str, models: list[tuple[str, str, str]], extra: str = "") -> Node:
    lines = [f"- [{name}]({url}) → `models/{folder}/`" for name, url, folder in models]
    return Node("note", "MarkdownNote", NOTE_COLUMN, title=title, text=HOW_TO + "\n".join(lines) + extra)


def baseline_sampler(steps: int, cfg: float, sampler: str, model: str = "model") -> Node:
    return Node("baseline", "KSampler", 5, title="Baseline KSampler (same seed)",
                widgets={"steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": "simple", "denoise": 1.0},
                links={"model": (model, 0), "seed": ("seed", 0), "positive": ("positive", 0),
                       "negative": ("negative", 0), "latent_image": ("latent", 0)}, band=1)


WAN21_STEPS, WAN21_CFG, WAN21_SAMPLER = 30, 6.0, "uni_pc"


def wan21_inputs(title: str, unet: str, width: int, height: int, length: int, note: str = "") -> list[Node]:
    """The note, Wan2.1 loaders, prompt, seed and latent that every Wan2.1 template shares."""
    unet_file = model_file("diffusion_models", WAN21_REPO, unet)
    clip_file = model_file("text_encoders", WAN21_REPO, "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    vae_file = model_file("vae", WAN21_REPO, "wan_2.1_vae.safetensors")
    note_node = how_to_note(title, [unet_file, clip_file, vae_file])
    note_node.text = note + note_node.text if note else note_node.text
    return [
        note_node,
        Node("unet", "UNETLoader", 0, widgets={"unet_name": unet}, models=[unet_file]),
        Node("clip", "CLIPLoader", 0, widgets={"clip_name": clip_file[0], "type": "wan"}, models=[clip_file]),
        Node("vae", "VAELoader", 0, widgets={"vae_name": vae_file[0]}, models=[vae_file]),
        Node("model", "ModelSamplingSD3", 1, widgets={"shift": 8.0}, links={"model": ("unet", 0)}),
        *text_nodes(),
        Node("latent", "EmptyHunyuanLatentVideo", 3,
             widgets={"width": width, "height": height, "length": length, "batch_size": 1}),
    ]


def wan21_graph(title: str, unet: str, width: int, height: int, length: int) -> Graph:
    nodes = [
        *wan21_inputs(title, unet, width, height, length),
        *numina_chain(model="model", guided=[("model", {}, "latent")], latent="latent", steps=WAN21_STEPS,
                      cfg=WAN21_CFG, sampler=WAN21_SAMPLER),
        baseline_sampler(WAN21_STEPS, WAN21_CFG, WAN21_SAMPLER),
        *output_nodes("numina", "guided", GUIDED_COLUMN + 1, 16.0, "NUMINA video"),
        *output_nodes("baseline", "baseline", GUIDED_COLUMN + 1, 16.0, "Baseline video"),
    ]
    return Graph(title, nodes, standard_groups())


HAND_EDIT_NOTE = """## Edit the layout by hand

Run once. **NUMINA Layout Editor** then shows the refined layout over the first pass's frames: drag on
empty space to add an object, drag one to move it, drag its corner to resize, right-click to delete
(per frame, or on all frames). Run again: the guided sampler follows your edit, and re-running keeps it
until you press *Reset*.

"""


def wan21_hand_edit_graph() -> Graph:
    title = "NUMINA Wan2.1 T2V 1.3B hand-edited layout"
    nodes = [
        *wan21_inputs(title, "wan2.1_t2v_1.3B_fp16.safetensors", 832, 480, 81, HAND_EDIT_NOTE),
        *numina_chain(model="model", guided=[("model", {}, "latent")], latent="latent", steps=WAN21_STEPS,
                      cfg=WAN21_CFG, sampler=WAN21_SAMPLER, layout_source="editor"),
        Node("editor", "NuminaLayoutEditor", 9, title="NUMINA Layout Editor (edit here, then Run)",
             links={"layout": ("refiner", 0), "image": ("pre_decode", 0)}),
        *output_nodes("numina", "guided", GUIDED_COLUMN + 1, 16.0, "NUMINA video"),
    ]
    groups = [(name, keys + ["editor"] if name == "NUMINA countable layout" else keys)
              for name, keys in standard_groups()]
    return Graph(title, nodes, groups)


COUNT_NOTE = """## Count-verified NUMINA and Count Objects

**NUMINA Count-Verified Sampler** makes the video with NUMINA, counts it with **NUMINA Object Counter**
(GroundingDINO: put a model folder in `models/grounding-dino/`, or let it download
IDEA-Research/grounding-dino-tiny once) and tries the next seed while a count is wrong, up to *budget*
videos; it keeps the best and shows every try's counts. **NUMINA Count Objects** counts the plain
baseline the same way, so you can compare.

"""


def wan21_count_graph() -> Graph:
    title = "NUMINA Wan2.1 T2V 1.3B count-verified"
    common = {"steps": WAN21_STEPS, "cfg": WAN21_CFG, "sampler_name": WAN21_SAMPLER, "scheduler": "simple"}
    nodes = [
        *wan21_inputs(title, "wan2.1_t2v_1.3B_fp16.safetensors", 832, 480, 81, COUNT_NOTE),
        Node("settings", "NuminaSettings", 2, title="NUMINA Settings (used by every NUMINA node)"),
        Node("parser", "NuminaNumeralParser", 4, links={"prompt": ("prompt", 0), "clip": ("clip", 0)}),
        Node("counter", "NuminaObjectCounter", 4),
        Node("verified", "NuminaCountVerifiedSampler", 5, widgets={**common, "budget": 3},
             links={"model": ("model", 0), "seed": ("seed", 0), "positive": ("positive", 0),
                    "negative": ("negative", 0), "latent_image": ("latent", 0), "targets": ("parser", 0),
                    "vae": ("vae", 0), "counter": ("counter", 0), "settings": ("settings", 0)}),
        Node("numina_save", "SaveAnimatedWEBP", 6, title="Best NUMINA video",
             widgets={"filename_prefix": f"video/{VIDEO_PREFIX['numina']}", "fps": 16.0, "lossless": False,
                      "quality": 90, "method": "default"},
             links={"images": ("verified", 1)}),
        baseline_sampler(WAN21_STEPS, WAN21_CFG, WAN21_SAMPLER),
        Node("baseline_decode", "VAEDecode", 6, links={"samples": ("baseline", 0), "vae": ("vae", 0)}, band=1),
        Node("baseline_count", "NuminaCountObjects", 7, title="Count Objects (baseline)",
             links={"images": ("baseline_decode", 0), "targets": ("parser", 0)}, band=1),
    ]
    groups = [("Models", ["unet", "clip", "vae", "model"]),
              ("Prompt, seed, settings and counts", ["seed", "prompt", "settings", "positive", "negative", "latent",
                                                     "parser", "counter"]),
              ("NUMINA, counted and retried", ["verified", "numina_save"]),
              ("Baseline, counted (mute to skip)", ["baseline", "baseline_decode", "baseline_count"])]
    return Graph(title, nodes, groups)


def standard_groups() -> list[tuple[str, list[str]]]:
    return [
        ("Models", ["unet", "unet_low", "clip", "vae", "model", "model_low"]),
        ("Prompt, seed, settings and counts", ["seed", "prompt", "settings", "positive", "negative", "latent", "parser"]),
        ("NUMINA phase 1: attention capture", ["capture", "pre_decode", "pre_preview"]),
        ("NUMINA countable layout", ["heads", "layout", "refiner"]),
        ("NUMINA phase 2: guided sampling", ["guided", "guided_2", "numina_decode", "numina_save"]),
        ("Baseline (mute to skip)", ["baseline", "baseline_2", "baseline_decode", "baseline_save"]),
    ]


def wan22_5b_graph() -> Graph:
    title = "NUMINA Wan2.2 TI2V 5B"
    unet_file = model_file("diffusion_models", WAN22_REPO, "wan2.2_ti2v_5B_fp16.safetensors")
    clip_file = model_file("text_encoders", WAN21_REPO, "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    vae_file = model_file("vae", WAN22_REPO, "wan2.2_vae.safetensors")
    steps, cfg, sampler = 20, 5.0, "uni_pc"
    nodes = [
        how_to_note(f"{title} text to video", [unet_file, clip_file, vae_file]),
        Node("unet", "UNETLoader", 0, widgets={"unet_name": unet_file[0]}, models=[unet_file]),
        Node("clip", "CLIPLoader", 0, widgets={"clip_name": clip_file[0], "type": "wan"}, models=[clip_file]),
        Node("vae", "VAELoader", 0, widgets={"vae_name": vae_file[0]}, models=[vae_file]),
        Node("model", "ModelSamplingSD3", 1, widgets={"shift": 8.0}, links={"model": ("unet", 0)}),
        *text_nodes(),
        Node("latent", "Wan22ImageToVideoLatent", 3, title="Video latent (no start image: text to video)",
             widgets={"width": 1280, "height": 704, "length": 121, "batch_size": 1}, links={"vae": ("vae", 0)}),
        *numina_chain(model="model", guided=[("model", {}, "latent")], latent="latent", steps=steps, cfg=cfg,
                      sampler=sampler),
        baseline_sampler(steps, cfg, sampler),
        *output_nodes("numina", "guided", GUIDED_COLUMN + 1, 24.0, "NUMINA video"),
        *output_nodes("baseline", "baseline", GUIDED_COLUMN + 1, 24.0, "Baseline video"),
    ]
    return Graph(title, nodes, standard_groups())


def wan22_a14b_graph() -> Graph:
    title = "NUMINA Wan2.2 T2V A14B"
    high = model_file("diffusion_models", WAN22_REPO, "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")
    low = model_file("diffusion_models", WAN22_REPO, "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors")
    clip_file = model_file("text_encoders", WAN21_REPO, "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    vae_file = model_file("vae", WAN22_REPO, "wan_2.1_vae.safetensors")
    steps, cfg, sampler, switch = 20, 3.5, "euler", 10
    # The two experts split one 20-step schedule like ComfyUI's own Wan2.2 template; NUMINA's capture
    # runs on the high-noise expert, so the Settings node moves it from the preset's 60 % (step 12, the
    # low-noise expert's range) to 45 % (reference step 22 of 50 → step 9 < switch); guidance follows the
    # global step.
    high_stage = {"add_noise": True, "start_at_step": 0, "end_at_step": switch, "return_with_leftover_noise": True}
    low_stage = {"add_noise": False, "start_at_step": switch, "end_at_step": 10000, "return_with_leftover_noise": False}
    baseline_common = {"steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": "simple"}
    nodes = [
        how_to_note(f"{title} (two experts)", [high, low, clip_file, vae_file], A14B_NOTE),
        Node("unet", "UNETLoader", 0, title="High-noise expert", widgets={"unet_name": high[0]}, models=[high]),
        Node("unet_low", "UNETLoader", 0, title="Low-noise expert", widgets={"unet_name": low[0]}, models=[low]),
        Node("clip", "CLIPLoader", 0, widgets={"clip_name": clip_file[0], "type": "wan"}, models=[clip_file]),
        Node("vae", "VAELoader", 0, widgets={"vae_name": vae_file[0]}, models=[vae_file]),
        Node("model", "ModelSamplingSD3", 1, title="Shift (high noise)", widgets={"shift": 8.0},
             links={"model": ("unet", 0)}),
        Node("model_low", "ModelSamplingSD3", 1, title="Shift (low noise)", widgets={"shift": 8.0},
             links={"model": ("unet_low", 0)}),
        *text_nodes(),
        Node("latent", "EmptyHunyuanLatentVideo", 3, widgets={"width": 1280, "height": 720, "length": 81, "batch_size": 1}),
        *numina_chain(model="model", guided=[("model", high_stage, "latent"), ("model_low", low_stage, "guided")],
                      latent="latent", steps=steps, cfg=cfg, sampler=sampler,
                      settings_widgets={"overrides": '{"reference_step": 22}'}),
        Node("baseline", "KSamplerAdvanced", 5, title="Baseline high noise (same seed)",
             widgets={**baseline_common, "add_noise": "enable", "start_at_step": 0, "end_at_step": switch,
                      "return_with_leftover_noise": "enable"},
             links={"model": ("model", 0), "noise_seed": ("seed", 0), "positive": ("positive", 0),
                    "negative": ("negative", 0), "latent_image": ("latent", 0)}, band=1),
        Node("baseline_2", "KSamplerAdvanced", 6, title="Baseline low noise",
             widgets={**baseline_common, "add_noise": "disable", "start_at_step": switch, "end_at_step": 10000,
                      "return_with_leftover_noise": "disable"},
             links={"model": ("model_low", 0), "noise_seed": ("seed", 0), "positive": ("positive", 0),
                    "negative": ("negative", 0), "latent_image": ("baseline", 0)}, band=1),
        *output_nodes("numina", "guided_2", GUIDED_COLUMN + 2, 16.0, "NUMINA video"),
        *output_nodes("baseline", "baseline_2", GUIDED_COLUMN + 2, 16.0, "Baseline video"),
    ]
    return Graph(title, nodes, standard_groups())


COGVIDEOX_NOTE = """**CogVideoX needs ComfyUI 0.33 or newer** (its native CogVideoX port).

ComfyUI's loader reads CogVideoX in its own key layout (`blocks.N.q …`, as in Comfy-Org's VOID weights)
and Comfy-Org publishes no repackaged CogVideoX-5B text-to-video file yet: put the CogVideoX-5B
transformer, saved in that layout, at `models/diffusion_models/{unet}`. The text encoder and VAE are the
files ComfyUI's own CogVideoX (VOID) template uses.

"""


def cogvideox_5b_graph() -> Graph:
    title = "NUMINA CogVideoX-5B T2V (needs ComfyUI 0.33)"
    unet = "cogvideox_5b_t2v_bf16.safetensors"
    clip_file = ("t5xxl_fp16.safetensors",
                 "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
                 "text_encoders")
    vae_file = model_file("vae", "https://huggingface.co/Comfy-Org/void-model/resolve/main", "cogvideox_vae.safetensors")
    # CogVideoX-5B's own pipeline: 720×480, 49 frames at 8 fps, 50 steps, guidance 6.
    steps, cfg, sampler = 50, 6.0, "ddim"
    note = how_to_note(f"{title} text to video", [clip_file, vae_file])
    note.text = COGVIDEOX_NOTE.format(unet=unet) + note.text
    nodes = [
        note,
        Node("unet", "UNETLoader", 0, title="Load CogVideoX-5B (ComfyUI layout)", widgets={"unet_name": unet}),
        Node("clip", "CLIPLoader", 0, widgets={"clip_name": clip_file[0], "type": "cogvideox"}, models=[clip_file]),
        Node("vae", "VAELoader", 0, widgets={"vae_name": vae_file[0]}, models=[vae_file]),
        *text_nodes(),
        Node("latent", "EmptyHunyuanLatentVideo", 3, title="Video latent (16 channels, 8× space, 4× time)",
             widgets={"width": 720, "height": 480, "length": 49, "batch_size": 1}),
        *numina_chain(model="unet", guided=[("unet", {}, "latent")], latent="latent", steps=steps, cfg=cfg,
                      sampler=sampler),
        baseline_sampler(steps, cfg, sampler, model="unet"),
        *output_nodes("numina", "guided", GUIDED_COLUMN + 1, 8.0, "NUMINA video"),
        *output_nodes("baseline", "baseline", GUIDED_COLUMN + 1, 8.0, "Baseline video"),
    ]
    return Graph(title, nodes, standard_groups(), requires=("CLIPLoader", "type", "cogvideox"))


def graphs() -> list[Graph]:
    # NUMINA's capture block is the Settings node's default (-1, the preset's): in `improved` 2/3 of the
    # depth, 20 of 30 blocks for the 1.3B and 5B models, 26 of 40 for the 14B ones.
    return [
        wan21_graph("NUMINA Wan2.1 T2V 1.3B", "wan2.1_t2v_1.3B_fp16.safetensors", 832, 480, 81),
        wan21_graph("NUMINA Wan2.1 T2V 14B", "wan2.1_t2v_14B_fp8_e4m3fn.safetensors", 1280, 720, 81),
        wan22_5b_graph(),
        wan22_a14b_graph(),
        wan21_hand_edit_graph(),
        wan21_count_graph(),
        cogvideox_5b_graph(),
    ]


def graph_named(name: str) -> Graph:
    """The graph whose file is example_workflows/<name>.json."""
    return next(graph for graph in graphs() if graph.name == name)


# -- /object_info → litegraph JSON ------------------------------------------------------------------

def input_specs(info: dict) -> list[tuple[str, str, dict, bool]]:
    """(name, type, options, optional) of a node's inputs in the order the frontend builds them."""
    specs = []
    for section in ("required", "optional"):
        for name in info.get("input_order", {}).get(section, []):
            raw = info["input"][section][name]
            kind = "COMBO" if isinstance(raw[0], list) else raw[0]
            options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
            specs.append((name, kind, options, section == "optional"))
    return specs


def is_widget(kind: str, options: dict) -> bool:
    return kind in WIDGET_TYPES and not options.get("forceInput")


def combo_options(info: dict, name: str) -> list:
    for section in ("required", "optional"):
        raw = info.get("input", {}).get(section, {}).get(name)
        if raw is not None:
            return raw[0] if isinstance(raw[0], list) else raw[1].get("options", [])
    raise KeyError(name)


def default_value(kind: str, options: dict, choices: list) -> Any:
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        return choices[0] if choices else ""
    return {"INT": max(0, options.get("min", 0)), "FLOAT": max(0.0, options.get("min", 0.0)),
            "BOOLEAN": False}.get(kind, "")


def node_size(info: dict, node: Node, output_count: int) -> list[int]:
    if node.text is not None:
        return list(NOTE_SIZE)
    specs = input_specs(info)
    rows = max(output_count, sum(1 for _, kind, o, _ in specs if not is_widget(kind, o)))
    widgets = sum(1 + bool(o.get("control_after_generate")) for _, kind, o, _ in specs if is_widget(kind, o))
    tall = sum(1 for _, kind, o, _ in specs if kind == "STRING" and o.get("multiline"))
    height = 46 + 22 * rows + 26 * widgets + 70 * tall
    height += IMAGE_PREVIEW_HEIGHT * (node.type in IMAGE_PREVIEW_TYPES) + TEXT_PREVIEW_HEIGHT * (node.type in TEXT_PREVIEW_TYPES)
    width = PREVIEW_WIDTH if node.type in IMAGE_PREVIEW_TYPES else NODE_WIDTH
    return [width, height]


def node_outputs(graph: Graph, node: Node, info: dict) -> list[dict]:
    """The node's output slots. An output node none of whose outputs the graph uses gets none: ComfyUI
    0.33 gave Preview Image and the Save nodes a pass-through output older versions lack, and the
    frontend keeps a loaded node's own outputs when the file lists none, so one file suits both."""
    used = any(source == node.key for other in graph.nodes for source, _ in other.links.values())
    if info.get("output_node") and not used:
        return []
    return [{"name": name, "type": kind, "links": [], "slot_index": slot}
            for slot, (name, kind) in enumerate(zip(info.get("output_name", []), info.get("output", [])))]


def build_workflow(graph: Graph, object_info: dict) -> dict:
    """The graph as a ComfyUI frontend workflow (version 0.4), nodes laid out in columns left to right."""
    missing = sorted({n.type for n in graph.nodes if n.type not in object_info and n.type not in FRONTEND_ONLY_TYPES})
    if missing:
        raise ValueError(f"{graph.name}: /object_info has no node types {missing}")
    ids = {node.key: index + 1 for index, node in enumerate(graph.nodes)}
    by_key = {node.key: node for node in graph.nodes}
    order = topological_order(graph)
    links, inputs_of = [], {}
    outputs_of = {node.key: node_outputs(graph, node, object_info.get(node.type, {})) for node in graph.nodes}
    for node in graph.nodes:
        info = object_info.get(node.type, {})
        specs = input_specs(info)
        unknown = set(node.links) | set(node.widgets)
        unknown -= {name for name, *_ in specs}
        if unknown:
            raise ValueError(f"{graph.name}: {node.type} has no inputs {sorted(unknown)}")
        sockets = [(name, kind, optional) for name, kind, options, optional in specs if not is_widget(kind, options)]
        linked_widgets = [(name, kind) for name, kind, options, _ in specs if is_widget(kind, options) and name in node.links]
        entries = []
        for name, kind, optional in sockets:
            entries.append({"name": name, "type": kind, "link": None, **({"shape": 7} if optional else {})})
        for name, kind in linked_widgets:
            entries.append({"name": name, "type": kind, "widget": {"name": name}, "link": None})
        for slot, entry in enumerate(entries):
            if entry["name"] not in node.links:
                continue
            source, source_slot = node.links[entry["name"]]
            link_id = len(links) + 1
            output = outputs_of[source][source_slot]
            links.append([link_id, ids[source], source_slot, ids[node.key], slot, output["type"]])
            output["links"].append(link_id)
            entry["link"] = link_id
        inputs_of[node.key] = entries

    positions, band_top, columns = {}, 0, {}
    for band in sorted({node.band for node in graph.nodes}):
        columns = {}
        for node in (n for n in graph.nodes if n.band == band):
            size = node_size(object_info.get(node.type, {}), node, len(outputs_of[node.key]))
            y = columns.get(node.column, band_top)
            columns[node.column] = y + size[1] + TITLE_HEIGHT + 40
            positions[node.key] = ([node.column * COLUMN_WIDTH - 100 * (node.column == NOTE_COLUMN), y], size)
        band_top = max(columns.values()) + 100  # room for the group titles
    nodes = []
    for node in graph.nodes:
        info = object_info.get(node.type, {})
        (pos, size) = positions[node.key]
        entry = {"id": ids[node.key], "type": node.type, "pos": pos, "size": size,
                 "flags": {}, "order": order.index(node.key), "mode": 0,
                 "inputs": inputs_of[node.key], "outputs": outputs_of[node.key],
                 "properties": {"Node name for S&R": node.type}}
        if node.title:
            entry["title"] = node.title
        if node.models:
            entry["properties"]["models"] = [{"name": n, "url": u, "directory": d} for n, u, d in node.models]
        if node.text is not None:
            entry["widgets_values"] = [node.text]
        else:
            entry["widgets_values"] = widget_values(graph, node, info)
        nodes.append(entry)
    groups = []
    for (title, keys), colour in zip(graph.groups, GROUP_COLOURS):
        members = [n for n in nodes if any(ids.get(k) == n["id"] for k in keys if k in by_key)]
        if not members:
            continue
        left = min(n["pos"][0] for n in members) - 20
        top = min(n["pos"][1] for n in members) - TITLE_HEIGHT - 50
        right = max(n["pos"][0] + n["size"][0] for n in members) + 20
        bottom = max(n["pos"][1] + n["size"][1] for n in members) + 20
        groups.append({"id": len(groups) + 1, "title": title, "bounding": [left, top, right - left, bottom - top],
                       "color": colour, "font_size": 24, "flags": {}})
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"numina-count-control/{graph.name}")),
        "revision": 0, "last_node_id": len(nodes), "last_link_id": len(links),
        "nodes": nodes, "links": links, "groups": groups, "config": {},
        "extra": {"ds": {"scale": 0.6, "offset": [560, 80]}},
        "version": 0.4,
    }


def widget_values(graph: Graph, node: Node, info: dict) -> list:
    values = []
    for name, kind, options, _ in input_specs(info):
        if not is_widget(kind, options):
            continue
        choices = combo_options(info, name) if kind == "COMBO" else []
        value = node.widgets.get(name, default_value(kind, options, choices))
        if name in node.links:  # shown greyed out under the link; show the value that flows in
            source = next(n for n in graph.nodes if n.key == node.links[name][0])
            value = source.widgets.get("value", value)
        if kind == "COMBO" and choices and value not in choices and name not in MODEL_FILE_INPUTS:
            raise ValueError(f"{graph.name}: {node.type}.{name} = {value!r} is not one of {choices}")
        values.append(value)
        if options.get("control_after_generate"):
            values.append("fixed")
    return values


# Combos listing local model files: the builder's server has none of them.
MODEL_FILE_INPUTS = {"unet_name", "clip_name", "vae_name", "ckpt_name", "lora_name"}


def topological_order(graph: Graph) -> list[str]:
    done: list[str] = []
    pending = {node.key: {source for source, _ in node.links.values()} for node in graph.nodes}
    while pending:
        ready = sorted((k for k, deps in pending.items() if deps <= set(done)),
                       key=lambda k: [n.key for n in graph.nodes].index(k))
        if not ready:
            raise ValueError(f"{graph.name}: cycle among {sorted(pending)}")
        for key in ready:
            done.append(key)
            del pending[key]
    return done


# -- thumbnail: a drawing of the graph's layout ----------------------------------------------------

THUMBNAIL_SIZE = (640, 400)
NUMINA_COLOUR, CORE_COLOUR, NOTE_COLOUR = (97, 86, 236), (70, 70, 70), (60, 90, 60)


def render_thumbnail(workflow: dict, title: str):
    """The workflow drawn as the canvas shows it from afar, under the template's title: coloured groups,
    nodes (the pack's in violet) and links, with a legend naming the groups. Returns a PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = THUMBNAIL_SIZE
    header, legend_rows, row_height = 44, (len(workflow["groups"]) + 1) // 2, 20
    legend_top = height - legend_rows * row_height - 8
    image = Image.new("RGB", THUMBNAIL_SIZE, (24, 24, 24))
    draw = ImageDraw.Draw(image, "RGBA")
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in workflow["nodes"]]
    boxes += [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2], g["bounding"][1] + g["bounding"][3])
              for g in workflow["groups"]]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = min((width - 24) / (right - left), (legend_top - header - 16) / (bottom - top))
    offset_x = (width - (right - left) * scale) / 2
    offset_y = header + (legend_top - header - (bottom - top) * scale) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return offset_x + (x - left) * scale, offset_y + (y - top) * scale

    def hex_rgb(colour: str) -> tuple[int, int, int]:
        digits = colour.lstrip("#")
        digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))

    label_font = ImageFont.load_default(size=13)
    for index, group in enumerate(workflow["groups"]):
        x, y, w, h = group["bounding"]
        colour = hex_rgb(group["color"])
        draw.rectangle([*at(x, y), *at(x + w, y + h)], fill=(*colour, 80), outline=(*colour, 230))
        legend_x, legend_y = 16 + (index % 2) * (width // 2), legend_top + (index // 2) * row_height
        draw.rectangle([legend_x, legend_y + 3, legend_x + 12, legend_y + 15], fill=(*colour, 255))
        draw.text((legend_x + 18, legend_y + 1), group["title"], font=label_font, fill=(225, 225, 225))
    by_id = {n["id"]: n for n in workflow["nodes"]}
    for _, origin, origin_slot, target, target_slot, _ in workflow["links"]:
        source, sink = by_id[origin], by_id[target]
        start = at(source["pos"][0] + source["size"][0], source["pos"][1] + 10 + 22 * origin_slot)
        end = at(sink["pos"][0], sink["pos"][1] + 10 + 22 * target_slot)
        draw.line([start, end], fill=(190, 190, 190, 90), width=1)
    for node in workflow["nodes"]:
        colour = NOTE_COLOUR if node["type"] in FRONTEND_ONLY_TYPES else (
            NUMINA_COLOUR if node["type"].startswith("Numina") else CORE_COLOUR)
        x, y = node["pos"]
        w, h = node["size"]
        draw.rectangle([*at(x, y - TITLE_HEIGHT), *at(x + w, y + h)], fill=(*colour, 240), outline=(15, 15, 15))
        draw.rectangle([*at(x, y - TITLE_HEIGHT), *at(x + w, y)], fill=(255, 255, 255, 50))
    draw.text((14, 10), title, font=ImageFont.load_default(size=24), fill=(255, 255, 255))
    return image


def write_thumbnail(workflow: dict, title: str, path: Path) -> None:
    render_thumbnail(workflow, title).save(path, quality=88, optimize=True)


# -- litegraph JSON → API format ---------------------------------------------------------------------

def workflow_to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format graph POST /prompt takes: {id: {class_type, inputs, _meta}}; frontend-only nodes
    and muted/bypassed nodes are left out, widget values are matched to input names via /object_info."""
    links = {link[0]: link for link in workflow["links"]}
    graph = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY_TYPES or node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values", []))
        for name, kind, options, _ in input_specs(info):
            if not is_widget(kind, options):
                continue
            inputs[name] = values.pop(0)
            if options.get("control_after_generate"):
                values.pop(0)
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                _, source, slot, *_ = links[entry["link"]]
                inputs[entry["name"]] = [str(source), slot]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                  "_meta": {"title": node.get("title", node["type"])}}
    return graph


# -- command line ------------------------------------------------------------------------------------

def fetch_object_info(url: str) -> dict:
    with urllib.request.urlopen(url.rstrip("/") + "/object_info", timeout=60) as response:
        return json.loads(response.read())


def object_info_from_fresh_server() -> dict:
    sys.path.insert(0, str(REPO_ROOT))
    from devtools.server import ComfyServer

    with tempfile.TemporaryDirectory(prefix="numina-build-") as base, ComfyServer(Path(base)) as server:
        return server.object_info()


def render(workflow: dict) -> str:
    return json.dumps(workflow, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with the pack (default: start a headless one)")
    parser.add_argument("--object-info", type=Path, help="a saved /object_info JSON instead of a server")
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args()
    if args.object_info:
        object_info = json.loads(args.object_info.read_text())
    elif args.url:
        object_info = fetch_object_info(args.url)
    else:
        object_info = object_info_from_fresh_server()
    stale = []
    WORKFLOW_DIR.mkdir(exist_ok=True)
    built = {graph.name for graph in graphs()}
    leftovers = sorted(path.name for path in WORKFLOW_DIR.iterdir() if path.stem not in built)
    for graph in graphs():
        path = WORKFLOW_DIR / f"{graph.name}.json"
        reason = graph.unavailable_reason(object_info)
        if reason:
            print(f"kept {path.relative_to(REPO_ROOT)} as it is: {reason}")
            continue
        workflow = build_workflow(graph, object_info)
        text = render(workflow)
        if args.check:
            if not path.is_file() or path.read_text() != text or not path.with_suffix(THUMBNAIL_SUFFIX).is_file():
                stale.append(path.name)
        else:
            path.write_text(text)
            write_thumbnail(workflow, graph.name, path.with_suffix(THUMBNAIL_SUFFIX))
            print(f"wrote {path.relative_to(REPO_ROOT)} and its thumbnail")
    if leftovers:
        print(f"files in {WORKFLOW_DIR.relative_to(REPO_ROOT)} that no graph builds (delete them): {leftovers}")
        stale += leftovers
    if stale:
        print(f"stale example workflows (run scripts/build_example_workflows.py): {stale}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
