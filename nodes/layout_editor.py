"""NUMINA Layout Editor: the artist adds, moves, resizes and deletes instances on a canvas drawn on the node
(web/js/numina_layout_editor.js); the edits live in the workflow as JSON and are applied by instance label
(numina_core/layout_edits.py) to whatever layout arrives, so re-running upstream keeps them."""
from __future__ import annotations

import base64

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..numina_core.grid import Layout
from ..numina_core.layout_edits import apply_edits, parse_edits
from .common import CATEGORY, NuminaLayoutType

EDITOR_NODE = "NUMINA Layout Editor"
UI_KEY = "numina_layout"
"""The node's ui output the canvas reads (a custom key, so the frontend draws no default image preview)."""
# ComfyUI ≥ 0.33 re-sends a cached node's canvas data on every run when the schema says it has intermediate
# output (a reloaded workflow gets its layout back without re-running upstream); older ComfyUI lacks the field.
INTERMEDIATE_OUTPUT = ({"has_intermediate_output": True}
                       if "has_intermediate_output" in getattr(io.Schema, "__dataclass_fields__", {}) else {})
MAX_PREVIEW_SIDE = 640
"""Background frames are sent at most this wide or high (integer stride): the canvas is rarely larger."""


def encode_labels(labels: np.ndarray) -> str:
    """int32 [F, H, W] labels → base64 of little-endian int16 (the canvas decodes it with an Int16Array)."""
    if labels.size and (labels.min() < -32768 or labels.max() > 32767):
        raise ValueError("labels beyond int16")
    return base64.b64encode(labels.astype("<i2").tobytes()).decode("ascii")


def frame_for_latent(latent_frame: int, image_frames: int, latent_frames: int, temporal_stride: int) -> int:
    """The image frame to show under latent frame `latent_frame`: the same frame when the image has one per
    latent frame, the first video frame it covers when it has one per video frame, else the nearest."""
    if image_frames == latent_frames:
        return latent_frame
    if image_frames == 1 + temporal_stride * (latent_frames - 1):
        return 0 if latent_frame == 0 else 1 + temporal_stride * (latent_frame - 1)
    if latent_frames == 1:
        return 0
    return round(latent_frame * (image_frames - 1) / (latent_frames - 1))


def background_frames(image: torch.Tensor, layout: Layout) -> torch.Tensor:
    """One IMAGE frame per latent frame of the layout, downscaled by an integer stride for the canvas."""
    frames = layout.grid.frames
    picks = [frame_for_latent(f, image.shape[0], frames, layout.temporal_stride) for f in range(frames)]
    stride = max(1, -(-max(image.shape[1], image.shape[2]) // MAX_PREVIEW_SIDE))
    return image[picks, ::stride, ::stride, :3]


class NuminaLayoutEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutEditor",
            display_name=EDITOR_NODE,
            category=f"{CATEGORY}/edit",
            description="Edit a layout by hand on the node's canvas: drag on empty space to add an instance, drag an "
                        "instance to move it, drag a corner of the selected one to resize it, right-click one (or "
                        "select it and press Delete) to delete it; per noun, on one frame or on all frames. Deleted "
                        "instances are suppressed by the guided sampler, added ones drawn. Run the graph once to "
                        "see the layout; re-running upstream keeps the edits until you press Reset.",
            inputs=[
                NuminaLayoutType.Input("layout", tooltip="Any NUMINA layout (Countable Layout or Layout Refiner)."),
                io.Image.Input("image", optional=True,
                               tooltip="The pre-generation decoded (VAE Decode of the capture's pre_generation), "
                                       "drawn under the layout."),
                io.String.Input("edits", default="[]", socketless=True, optional=True,
                                tooltip="The canvas's edits as JSON (kept in the workflow; the canvas writes it)."),
            ],
            outputs=[NuminaLayoutType.Output(display_name="layout", tooltip="The layout with the edits applied."),
                     io.String.Output(display_name="counts")],
            **INTERMEDIATE_OUTPUT,
        )

    @classmethod
    def execute(cls, layout: Layout, image: torch.Tensor | None = None, edits: str = "[]") -> io.NodeOutput:
        if not isinstance(layout, Layout):
            raise ValueError(f"{EDITOR_NODE}: input 'layout' must be a NUMINA layout")
        try:
            parsed = parse_edits(edits)
        except ValueError as error:
            raise ValueError(f"{EDITOR_NODE}: widget 'edits' {error}; press Reset on the node to start over") from None
        result = apply_edits(layout, parsed)
        edited = result.layout
        counts = edited.summary() or "the layout has no nouns: nothing to edit"
        if result.stale:
            counts += (f"\n{len(result.stale)} edit(s) no longer apply (the upstream layout changed; redraw them or "
                       "press Reset):\n" + "\n".join(result.stale))
        payload = {
            "grid": list(edited.grid.shape),
            "spatial_factor": edited.spatial_factor,
            "temporal_stride": edited.temporal_stride,
            "nouns": edited.nouns,
            "targets": edited.targets,
            "base": {noun: encode_labels(layout.labels[noun]) for noun in edited.nouns},
            "result": {noun: encode_labels(edited.labels[noun]) for noun in edited.nouns},
            "stale": result.stale,
            "frames": [] if image is None else ui.PreviewImage(background_frames(image, edited), cls=cls).values,
        }
        return io.NodeOutput(edited, counts, ui={UI_KEY: [payload], "text": (counts,)})


NODES = [NuminaLayoutEditor]
