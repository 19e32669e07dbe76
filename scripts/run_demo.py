"""The README's main job: the six-node NUMINA pipeline, headless in a real ComfyUI, on the tiny testbed
model, next to a plain KSampler baseline with the same seed.

    python scripts/run_demo.py --out out/demo          (or: bash scripts/demo.sh out/demo)

Starts `python main.py --cpu` with this pack installed, posts one API-format graph through
POST /prompt (testbed loader → text encode → Numeral Parser → Attention Capture KSampler → Head
Selector → Countable Layout → Layout Refiner → Layout-Guided Sampler → decode, plus the baseline
KSampler branch), and writes to the output folder:

    comparison.gif     baseline | NUMINA, with the requested and the measured counts
    previews/*.png     the selected heads' PCA maps, cross-attention maps, layout, refined layout
    baseline/*.png, numina/*.png   the decoded frames
    counts.json        requested counts, the testbed's exact per-frame counts of both videos
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from testbed.synthetic import CATEGORIES, count_objects, parse_prompt  # noqa: E402

DEFAULT_PROMPT = "three red discs and two blue squares"

# Testbed node ids (testbed/nodes.py) and the testbed's sizes.
TESTBED_LOADER = "NuminaTestbedModelLoader"
TESTBED_ENCODE = "NuminaTestbedTextEncode"
TESTBED_EMPTY = "NuminaTestbedEmptyVideo"
TESTBED_DECODE = "NuminaTestbedDecode"
TESTBED_NODES = [TESTBED_LOADER, TESTBED_ENCODE, TESTBED_EMPTY, TESTBED_DECODE]
VIDEO_FRAMES = 5

# Node ids inside the API graph (ComfyUI takes any string).
LAYOUT = "layout"
NUMINA_SAVE = "numina_save"
BASELINE_SAVE = "baseline_save"
PREVIEWS = {"pca_preview": "pca_maps", "cross_preview": "cross_attention", "layout_preview": "layout",
            "refined_preview": "refined_layout"}


def unavailable_reason(object_info: dict) -> str | None:
    """Why the testbed pipeline cannot run on this server, or None."""
    missing = [node for node in TESTBED_NODES if node not in object_info]
    if missing:
        return (f"testbed nodes {missing} are not registered (testbed/nodes.py must be importable from "
                "nodes/__init__.py)")
    if not first_option(object_info[TESTBED_LOADER], weights_input(object_info)):
        return "no testbed weights (testbed/weights/*.safetensors) are listed by the testbed loader"
    return None


def weights_input(object_info: dict) -> str:
    return object_info[TESTBED_LOADER]["input_order"]["required"][0]


def first_option(info: dict, name: str):
    raw = info["input"]["required"][name]
    options = raw[0] if isinstance(raw[0], list) else raw[1].get("options", [])
    return options[0] if options else None


def pipeline_graph(object_info: dict, prompt: str = DEFAULT_PROMPT, seed: int = 0, steps: int = 8,
                   frames: int = VIDEO_FRAMES, cfg: float = 5.0, sampler: str = "euler", baseline: bool = True,
                   strength: float = 1.0, preset: str = "reference", filename_prefix: str = "numina_demo") -> dict:
    """The API-format graph: NUMINA branch (+ optional plain KSampler baseline, same seed and inputs)."""
    sampling = {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": "simple",
                "positive": ["positive", 0], "negative": ["negative", 0], "latent_image": ["empty", 0],
                "model": ["loader", 0]}
    weights = first_option(object_info[TESTBED_LOADER], weights_input(object_info))
    graph = {
        "loader": node(TESTBED_LOADER, {weights_input(object_info): weights}),
        "positive": node(TESTBED_ENCODE, {"model": ["loader", 0], "text": prompt}),
        "negative": node(TESTBED_ENCODE, {"model": ["loader", 0], "text": ""}),
        "empty": node(TESTBED_EMPTY, {"frames": frames, "batch_size": 1}),
        "settings": node("NuminaSettings", {"preset": preset, "strength": strength, "capture_block": -1,
                                            "overrides": ""}),
        "parser": node("NuminaNumeralParser", {"prompt": prompt, "tokenizer": ["positive", 1]}),
        "capture": node("NuminaAttentionCaptureKSampler", {**sampling, "targets": ["parser", 0],
                                                             "settings": ["settings", 0]}),
        "heads": node("NuminaHeadSelector", {"capture": ["capture", 0], "settings": ["settings", 0]}),
        LAYOUT: node("NuminaCountableLayout", {"heads": ["heads", 0], "targets": ["parser", 0],
                                               "capture": ["capture", 0], "settings": ["settings", 0]}),
        "refiner": node("NuminaLayoutRefiner", {"layout": [LAYOUT, 0], "targets": ["parser", 0],
                                                "settings": ["settings", 0]}),
        "guided": node("NuminaLayoutGuidedSampler", {**sampling, "layout": ["refiner", 0], "targets": ["parser", 0],
                                                     "denoise": 1.0, "settings": ["settings", 0]}),
        "numina_decode": node(TESTBED_DECODE, {"samples": ["guided", 0]}),
        NUMINA_SAVE: node("SaveImage", {"images": ["numina_decode", 0], "filename_prefix": f"{filename_prefix}/numina"}),
        "pca_preview": node("PreviewImage", {"images": ["heads", 1]}),
        "cross_preview": node("PreviewImage", {"images": ["heads", 2]}),
        "layout_preview": node("PreviewImage", {"images": [LAYOUT, 1]}),
        "refined_preview": node("PreviewImage", {"images": ["refiner", 1]}),
    }
    if baseline:
        graph["baseline"] = node("KSampler", {**sampling, "denoise": 1.0})
        graph["baseline_decode"] = node(TESTBED_DECODE, {"samples": ["baseline", 0]})
        graph[BASELINE_SAVE] = node("SaveImage", {"images": ["baseline_decode", 0],
                                                  "filename_prefix": f"{filename_prefix}/baseline"})
    return graph


def node(class_type: str, inputs: dict) -> dict:
    return {"class_type": class_type, "inputs": inputs}


# -- results --------------------------------------------------------------------------------------

def fetch_frames(server, files: list[dict]) -> np.ndarray:
    """[F, H, W, 3] float in [0, 1] from the PNGs a SaveImage node wrote."""
    frames = [np.asarray(Image.open(io.BytesIO(server.view(f))).convert("RGB"), dtype=np.float32) / 255.0
              for f in files]
    return np.stack(frames)


def category_name(index: int) -> str:
    return f"{CATEGORIES[index].colour} {CATEGORIES[index].plural}"


def category_counts(per_frame: np.ndarray, requested: dict[int, int]) -> dict:
    """Per category of the prompt: per-frame counts, their mean, and how many frames are exact."""
    result = {}
    for index, wanted in requested.items():
        column = per_frame[:, index]
        result[category_name(index)] = {"requested": wanted, "per_frame": column.tolist(),
                                             "mean": round(float(column.mean()), 3),
                                             "exact_frames": int((column == wanted).sum())}
    all_exact = np.all([per_frame[:, i] == n for i, n in requested.items()], axis=0)
    return {"categories": result, "frames": int(per_frame.shape[0]), "all_exact_frames": int(all_exact.sum())}


def caption(label: str, counts: dict) -> str:
    parts = [f"{c['mean']:g} {noun}" for noun, c in counts["categories"].items()]
    return f"{label}: " + ", ".join(parts)


def frame_labels(label: str, counts: dict) -> list[str]:
    """'NUMINA f2: 3 red discs, 2 blue squares' per frame."""
    return [f"{label} f{f}: " + ", ".join(f"{c['per_frame'][f]} {noun}" for noun, c in counts["categories"].items())
            for f in range(counts["frames"])]


def comparison_gif(path: Path, baseline: np.ndarray, numina: np.ndarray, lines: list[str],
                   labels: tuple[list[str], list[str]] | None = None, scale: int = 4, fps: float = 4.0) -> None:
    """Side-by-side animated GIF: baseline | NUMINA, caption lines above, a per-frame label on each panel."""
    frames = []
    height, width = baseline.shape[1] * scale, baseline.shape[2] * scale
    gap, header = 8, 14 * len(lines) + 8
    left_labels, right_labels = labels or ([""] * len(baseline), [""] * len(numina))
    for left, right, left_label, right_label in zip(baseline, numina, left_labels, right_labels):
        canvas = Image.new("RGB", (2 * width + gap, height + header), "white")
        draw = ImageDraw.Draw(canvas)
        for x, frame, label in ((0, left, left_label), (width + gap, right, right_label)):
            image = Image.fromarray((np.clip(frame, 0, 1) * 255).astype(np.uint8)).resize((width, height), Image.NEAREST)
            canvas.paste(image, (x, header))
            draw.text((x + 4, header + height - 14), label, fill="white")
        for row, line in enumerate(lines):
            draw.text((4, 4 + 14 * row), line, fill="black")
        frames.append(canvas)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)


def save_previews(server, outputs: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for node_id, stem in PREVIEWS.items():
        for index, file in enumerate(outputs[node_id]["images"]):
            target = folder / f"{stem}_{index:02d}.png"
            target.write_bytes(server.view(file))
            written.append(str(target.relative_to(folder.parent)))
    return written


def write_frames(frames: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray((np.clip(frame, 0, 1) * 255).astype(np.uint8)).save(folder / f"frame_{index:02d}.png")


def run(out: Path, prompt: str, seed: int, steps: int, frames: int, strength: float, preset: str,
        server_dir: Path | None, cfg: float = 1.0) -> dict:
    from devtools.server import ComfyServer

    requested = parse_prompt(prompt)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="numina-demo-") as scratch:
        base = server_dir or Path(scratch) / "comfy"
        started = time.monotonic()
        with ComfyServer(base) as server:
            print(f"ComfyUI headless at {server.url} (log: {server.log_path})", flush=True)
            object_info = server.object_info()
            reason = unavailable_reason(object_info)
            if reason:
                raise SystemExit(f"run_demo: {reason}")
            graph = pipeline_graph(object_info, prompt, seed, steps, frames, cfg=cfg, strength=strength, preset=preset)
            (out / "graph_api.json").write_text(json.dumps(graph, indent=1))
            entry = server.wait(server.post_prompt(graph), stall_timeout=300,
                                progress=lambda line: print(f"  [{time.monotonic() - started:5.0f} s] {line}",
                                                            flush=True))
            seconds = time.monotonic() - started
            outputs = entry["outputs"]
            baseline = fetch_frames(server, outputs[BASELINE_SAVE]["images"])
            numina = fetch_frames(server, outputs[NUMINA_SAVE]["images"])
            previews = save_previews(server, outputs, out / "previews")
            layout_text = outputs[LAYOUT].get("text", [""])[0]
            refiner_text = outputs["refiner"].get("text", [""])[0]
    write_frames(baseline, out / "baseline")
    write_frames(numina, out / "numina")
    result = {
        "prompt": prompt, "seed": seed, "steps": steps, "cfg": cfg, "frames": frames, "strength": strength,
        "preset": preset,
        "requested": {category_name(i): n for i, n in requested.items()},
        "baseline": category_counts(count_objects(baseline), requested),
        "numina": category_counts(count_objects(numina), requested),
        "layout_counts": layout_text, "refiner_summary": refiner_text,
        "previews": previews, "seconds": round(seconds, 1),
    }
    wanted = ", ".join(f"{n} {noun}" for noun, n in result["requested"].items())
    comparison_gif(out / "comparison.gif", baseline, numina,
                   [f"prompt: {prompt} (seed {seed})", f"requested: {wanted}",
                    caption("baseline", result["baseline"]) + "   |   " + caption("NUMINA", result["numina"])],
                   (frame_labels("baseline", result["baseline"]), frame_labels("NUMINA", result["numina"])))
    (out / "counts.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the NUMINA pipeline headless in ComfyUI on the testbed model.")
    parser.add_argument("folder", type=Path, nargs="?", help="output folder (same as --out)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "demo", help="output folder")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="'<number> <colour> <shape>' phrases joined by 'and'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6, help="sampling steps of each video")
    parser.add_argument("--cfg", type=float, default=1.0,
                        help="1 needs one model pass per step instead of two; the testbed counts as well at 1 as at "
                             "5 (docs/measurements.md)")
    parser.add_argument("--frames", type=int, default=VIDEO_FRAMES, help="video frames (the testbed was trained on 5)")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--preset", default="improved", choices=["reference", "paper", "improved"],
                        help="improved: +12 CountAcc points over plain sampling on the testbed (docs/measurements.md)")
    parser.add_argument("--server-dir", type=Path, help="keep ComfyUI's base directory (log, outputs) here")
    args = parser.parse_args()
    args.out = args.folder or args.out
    result = run(args.out, args.prompt, args.seed, args.steps, args.frames, args.strength, args.preset, args.server_dir,
                 args.cfg)
    for branch in ("baseline", "numina"):
        print(caption(branch, result[branch]), f"(all counts exact in {result[branch]['all_exact_frames']}"
              f"/{result[branch]['frames']} frames)")
    print(f"wrote {args.out}/comparison.gif, counts.json, previews/ in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
