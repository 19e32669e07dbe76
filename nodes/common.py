"""Socket types, preset/config widgets and preview helpers shared by the NUMINA nodes."""
from __future__ import annotations

import json

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..numina_core.targets import NuminaTargets
from ..numina_core.config import DEFAULT_PRESET, ConfigError, NuminaConfig, preset

NuminaTargetsType = io.Custom("NUMINA_TARGETS")
NuminaCaptureType = io.Custom("NUMINA_CAPTURE")
NuminaSelectionType = io.Custom("NUMINA_HEADS")
NuminaLayoutType = io.Custom("NUMINA_LAYOUT")
NuminaTokenizerType = io.Custom("NUMINA_TOKENIZER")
NuminaConfigType = io.Custom("NUMINA_CONFIG")

CATEGORY = "NUMINA"


def settings_input() -> io.Custom.Input:
    return NuminaConfigType.Input("settings", optional=True,
                                  tooltip=f"From NUMINA Settings. Not connected: the '{DEFAULT_PRESET}' preset.")


def config_from(settings: NuminaConfig | None) -> NuminaConfig:
    """The connected settings, or the default preset."""
    return settings if settings is not None else preset(DEFAULT_PRESET)


def build_config(node: str, preset_name: str, overrides: str | None, **changes) -> NuminaConfig:
    """The preset with the node's widgets and the JSON overrides applied; every problem names the input."""
    extra = {}
    if overrides and overrides.strip():
        try:
            extra = json.loads(overrides, parse_constant=_reject_constant)
        except json.JSONDecodeError as error:
            raise ValueError(f"{node}: input 'overrides' is not valid JSON ({error.msg})") from None
        except ValueError as error:
            raise ValueError(f"{node}: input 'overrides' {error}") from None
        if not isinstance(extra, dict):
            raise ValueError(f"{node}: input 'overrides' must be a JSON object of settings, e.g. "
                             '{"cross_attn_peak_ratio": 0.1}')
    clash = sorted(set(extra) & set(changes))
    if clash:
        raise ValueError(f"{node}: input 'overrides' sets {clash}, which this node has as widgets; use the widgets")
    try:
        return preset(preset_name, **{**changes, **extra})
    except ConfigError as error:
        inputs = "'overrides'" if extra else "the widgets"
        raise ValueError(f"{node}: input {inputs}: " + "; ".join(error.problems)) from None


def _reject_constant(name: str):
    raise ValueError(f"contains {name}, which is not a number a setting can take")


def require_targets(targets, node: str, input_name: str = "targets") -> None:
    if not isinstance(targets, NuminaTargets):
        raise ValueError(f"{node}: input '{input_name}' must come from NUMINA Numeral Parser")


def to_image(frames: np.ndarray) -> torch.Tensor:
    """float [F, H, W, 3] in 0..1 → ComfyUI IMAGE."""
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))


def preview_images(cls, *batches: torch.Tensor) -> dict:
    """One UI preview holding several IMAGE batches (saved to ComfyUI's temp folder)."""
    images = []
    for batch in batches:
        images += ui.PreviewImage(batch, cls=cls).values
    return {"images": images, "animated": (False,)}
