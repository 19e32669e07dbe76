"""Socket types, preset/config widgets and preview helpers shared by the NUMINA nodes."""
from __future__ import annotations

import json

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..numina_core.config import PRESETS, NuminaConfig, preset

NuminaTargetsType = io.Custom("NUMINA_TARGETS")
NuminaCaptureType = io.Custom("NUMINA_CAPTURE")
NuminaSelectionType = io.Custom("NUMINA_HEADS")
NuminaLayoutType = io.Custom("NUMINA_LAYOUT")
NuminaTokenizerType = io.Custom("NUMINA_TOKENIZER")

CATEGORY = "NUMINA"


def preset_input() -> io.Combo.Input:
    return io.Combo.Input("preset", options=list(PRESETS), default="reference",
                          tooltip="reference: the authors' released code. paper: per-noun cross-attention head "
                                  "by peak, 0.1 peak ratio. improved: also counts instances that share a "
                                  "colour in the PCA map (component split, uncovered focus components).")


def overrides_input() -> io.String.Input:
    return io.String.Input("overrides", default="", multiline=False, optional=True,
                           tooltip='Optional JSON of config fields to change, e.g. {"cross_attn_peak_ratio": 0.1}. '
                                   "Every field is documented in numina_core/config.py.")


def build_config(node: str, preset_name: str, overrides: str | None, **changes) -> NuminaConfig:
    """The preset with the node's widgets and the JSON overrides applied; clear errors name the input."""
    extra = {}
    if overrides and overrides.strip():
        try:
            extra = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"{node}: input 'overrides' is not valid JSON ({error.msg})") from None
        if not isinstance(extra, dict):
            raise ValueError(f"{node}: input 'overrides' must be a JSON object of config fields")
    try:
        return preset(preset_name, **{**changes, **extra})
    except TypeError as error:
        raise ValueError(f"{node}: input 'overrides' names an unknown config field ({error})") from None


def to_image(frames: np.ndarray) -> torch.Tensor:
    """float [F, H, W, 3] in 0..1 → ComfyUI IMAGE."""
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))


def preview_images(cls, *batches: torch.Tensor) -> dict:
    """One UI preview holding several IMAGE batches (saved to ComfyUI's temp folder)."""
    images = []
    for batch in batches:
        images += ui.PreviewImage(batch, cls=cls).values
    return {"images": images, "animated": (False,)}
