"""NUMINA Count Objects: count each noun in every frame with GroundingDINO and score the video the
way the paper does (CountAcc, temporal consistency), with an annotated preview."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

import comfy.model_management
import comfy.utils
import folder_paths

from ..numina_eval.counting import (NUMINA_PROTOCOL, PROTOCOLS, CountProtocol, count_accuracy,
                                    parse_noun_counts, temporal_consistency)
from ..numina_eval.detection import (DEFAULT_MODEL_ID, KNOWN_MODEL_IDS, DetectorUnavailableError,
                                     GroundingDinoDetector, draw_detections, is_model_folder)

NODE_NAME = "NUMINA Count Objects"
MODEL_FOLDER = "grounding-dino"
CUSTOM_PROTOCOL = "custom"

# The parser's output type: any object with `counts: dict[str, int]`.
NuminaTargets = io.Custom("NUMINA_TARGETS")


def register_model_folder() -> None:
    """Make models/grounding-dino/ a ComfyUI model folder (extra_model_paths.yaml can add more)."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))


register_model_folder()


def model_search_dirs() -> list[Path]:
    return [Path(p) for p in folder_paths.get_folder_paths(MODEL_FOLDER)]


def local_model_names() -> list[str]:
    """Sub-folders of the grounding-dino model folders that hold a `save_pretrained` model."""
    names = []
    for base in model_search_dirs():
        if base.is_dir():
            names += sorted(p.name for p in base.iterdir() if p.is_dir() and is_model_folder(p))
    return names


_loaded: dict[str, GroundingDinoDetector] = {}


def load_detector(name: str, node: str = NODE_NAME) -> GroundingDinoDetector:
    """The detector for `name`, loaded once per ComfyUI session (kept on the CPU between runs); errors name
    `node`, the node whose input 'detector' to fix."""
    if name not in _loaded:
        dirs = model_search_dirs()
        try:
            _loaded[name] = GroundingDinoDetector.load(name, search_dirs=dirs, download_dir=dirs[0])
        except DetectorUnavailableError as error:
            raise ValueError(f"{node}: input 'detector': {error}") from error
        except (OSError, ValueError) as error:  # transformers' errors for a local folder missing files
            raise ValueError(f"{node}: input 'detector': the model folder {name!r} cannot be loaded "
                             f"({error}); put a complete `save_pretrained` folder (config, processor config, "
                             "weights, tokenizer files) there") from error
    return _loaded[name]


def targets_from_inputs(nouns: str, targets: object | None) -> dict[str, int]:
    if targets is not None:
        counts = getattr(targets, "counts", None)
        if not isinstance(counts, dict) or not counts:
            raise ValueError(f"{NODE_NAME}: input 'targets' carries no noun counts "
                             "(expected an object with counts: dict[str, int]).")
        return {str(k): int(v) for k, v in counts.items()}
    try:
        return parse_noun_counts(nouns)
    except ValueError as error:
        raise ValueError(f"{NODE_NAME}: input 'nouns': {error}") from error


def protocol_from_inputs(protocol: str, box_threshold: float, text_threshold: float, frames: int,
                         merge_iou: float, node: str = NODE_NAME) -> CountProtocol:
    if protocol == CUSTOM_PROTOCOL:
        return CountProtocol(CUSTOM_PROTOCOL, box_threshold=box_threshold, text_threshold=text_threshold,
                             num_frames=frames if frames > 0 else None,
                             merge_iou=merge_iou if merge_iou > 0 else None, label_must_match=False)
    if protocol not in PROTOCOLS:
        raise ValueError(f"{node}: input 'protocol': unknown protocol {protocol!r}; "
                         f"choose one of {sorted(PROTOCOLS) + [CUSTOM_PROTOCOL]}.")
    return PROTOCOLS[protocol]


class NuminaCountObjects(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        models = list(dict.fromkeys(local_model_names() + list(KNOWN_MODEL_IDS)))
        return io.Schema(
            node_id="NuminaCountObjects",
            display_name=NODE_NAME,
            category="NUMINA/eval",
            is_output_node=True,  # it ends a graph: it runs (and shows its counts) with nothing connected after it
            description=(
                "Counts each noun in every frame of a finished video with an object detector and shows, "
                "per noun, the target and the count in each frame, how often the count is exactly right "
                "(CountAcc) and how steady it stays from frame to frame. Put the detector in "
                "models/grounding-dino/ (it is downloaded there on first use when online)."),
            inputs=[
                io.Image.Input("images", tooltip="The video frames to count objects in."),
                io.String.Input("nouns", multiline=True, default="cat: 3, dog: 2",
                                tooltip="Target counts, 'noun: count' separated by commas or a JSON "
                                        "object. Ignored when 'targets' is connected."),
                io.Combo.Input("detector", options=models, default=DEFAULT_MODEL_ID,
                               tooltip="GroundingDINO weights: a folder in models/grounding-dino/ or a "
                                       "Hugging Face id (grounding-dino-base is larger and slower)."),
                io.Combo.Input("protocol", options=[*PROTOCOLS, CUSTOM_PROTOCOL], default=NUMINA_PROTOCOL.name,
                               tooltip="numina: the authors' evaluation (all frames, box 0.32, text 0.25). "
                                       "t2v-compbench: 16 uniform frames, box 0.4, boxes merged at IoU > 0.9. "
                                       "custom: the four settings below."),
                io.Float.Input("box_threshold", default=NUMINA_PROTOCOL.box_threshold, min=0.0, max=1.0,
                               step=0.01, tooltip="custom protocol only: minimum box confidence to count."),
                io.Float.Input("text_threshold", default=NUMINA_PROTOCOL.text_threshold, min=0.0, max=1.0,
                               step=0.01, tooltip="custom protocol only: token score for box labels "
                                                  "(labels only, not the count)."),
                io.Int.Input("frames", default=0, min=0, max=4096,
                             tooltip="custom protocol only: number of uniformly spaced frames to "
                                     "evaluate; 0 evaluates every frame."),
                io.Float.Input("merge_iou", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="custom protocol only: merge boxes overlapping more than this "
                                       "IoU; 0 keeps every box."),
                NuminaTargets.Input("targets", optional=True,
                                    tooltip="Targets from the NUMINA Numeral Parser; overrides 'nouns'."),
            ],
            outputs=[
                io.String.Output("counts_json", tooltip="Per evaluated frame: index and count per noun, "
                                                        "with targets, scores and settings (JSON)."),
                io.Float.Output("count_accuracy", tooltip="CountAcc of this video, 0..1."),
                io.Float.Output("temporal_consistency", tooltip="TC of this video, 0..1."),
                io.Image.Output("preview", tooltip="Evaluated frames with boxes, labels and counts."),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, nouns: str, detector: str, protocol: str, box_threshold: float,
                text_threshold: float, frames: int, merge_iou: float, targets: object | None = None
                ) -> io.NodeOutput:
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] < 3:
            raise ValueError(f"{NODE_NAME}: input 'images' must be a non-empty IMAGE batch, got shape "
                             f"{tuple(images.shape)}.")
        goal = targets_from_inputs(nouns, targets)
        chosen = protocol_from_inputs(protocol, box_threshold, text_threshold, frames, merge_iou)
        model = load_detector(detector)
        frames_np = [f for f in images[..., :3].cpu().float().numpy()]
        indices = chosen.frame_indices(len(frames_np))
        bar = comfy.utils.ProgressBar(len(indices))

        def progress(done: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(done)

        model.to(comfy.model_management.get_torch_device())
        try:
            indices, frame_counts, detections = model.count(frames_np, list(goal), chosen, progress)
        finally:
            model.to("cpu")
        acc = count_accuracy(frame_counts, goal)
        tc = temporal_consistency(frame_counts, list(goal))
        report = {
            "targets": goal,
            "frames": [{"index": i, "counts": c} for i, c in zip(indices, frame_counts)],
            "count_accuracy": acc,
            "temporal_consistency": tc,
            "protocol": chosen.describe(),
            "detector": model.source,
        }
        preview = np.stack([draw_detections(frames_np[i], d, c)
                            for i, d, c in zip(indices, detections, frame_counts)])
        preview_tensor = torch.from_numpy(preview).float().div(255.0)
        return io.NodeOutput(json.dumps(report), acc, tc, preview_tensor,
                             ui=ui.PreviewText(counted_report(goal, frame_counts, acc, tc)))


def counted_report(goal: dict[str, int], frame_counts: list[dict[str, int]], acc: float, tc: float) -> str:
    """What the node shows: per noun the target and the count in each evaluated frame, then the scores."""
    lines = [f"{noun}: target {target} · counted " + " ".join(str(c.get(noun, 0)) for c in frame_counts)
             for noun, target in goal.items()]
    lines.append(f"exact in {acc:.0%} of frames (per noun) · counts steady between frames {tc:.0%}")
    return "\n".join(lines)


NODES = [NuminaCountObjects]
