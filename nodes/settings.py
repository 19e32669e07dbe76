"""NUMINA Settings: the one place where the method's settings are chosen for a whole graph."""
from __future__ import annotations

import math

from comfy_api.v0_0_2 import io, ui

from ..numina_core.config import DEFAULT_PRESET, PRESETS, config_field_names
from .common import CATEGORY, NuminaConfigType, build_config

SETTINGS_NODE = "NUMINA Settings"


class NuminaSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaSettings",
            display_name=SETTINGS_NODE,
            category=CATEGORY,
            description="Chooses how NUMINA finds and corrects objects, for every NUMINA node it is connected to. "
                        f"Without it the nodes use the '{DEFAULT_PRESET}' preset.",
            inputs=[
                io.Combo.Input("preset", options=list(PRESETS), default=DEFAULT_PRESET,
                               tooltip="improved: the best measured counts for about 1.2x the time of a plain video "
                                       "(the first pass takes 6 quick steps). improved (late capture): the same, "
                                       "with the first pass on the run's own steps: layouts closer to the finished "
                                       "video and right counts more often (4-6 points more on the test model), "
                                       "about 1.7x the time, or 1x when nothing needs correcting (the first pass "
                                       "then finishes the video). "
                                       "reference: exactly what the authors' released code does. paper: as the paper "
                                       "describes it (one attention head per object word)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="How hard the second pass pushes toward the corrected layout. 0 turns the "
                                       "correction off (the result equals a plain KSampler). Raise it when objects "
                                       "you asked for do not appear; lower it if the picture degrades."),
                io.Int.Input("capture_block", default=-1, min=-1, max=99,
                             tooltip="Which transformer block the first pass reads to find the objects. -1 takes "
                                     "the preset's: 2/3 of the depth in improved (20 of 30 for Wan 1.3B, 26 of 40 "
                                     "for the 14B models), the middle block in reference and paper."),
                io.String.Input("overrides", default="", multiline=True, optional=True,
                                tooltip='Expert settings as JSON, e.g. {"cross_attn_peak_ratio": 0.1}. An unknown '
                                        "name gets an error listing every valid one; values are checked for type "
                                        "and range."),
            ],
            outputs=[NuminaConfigType.Output(display_name="settings")],
        )

    @classmethod
    def execute(cls, preset, strength, capture_block, overrides="") -> io.NodeOutput:
        if not math.isfinite(strength):  # ComfyUI's min/max check lets NaN and infinities through
            raise ValueError(f"{SETTINGS_NODE}: input 'strength' must be a number from 0 to 10, not {strength}")
        if preset not in PRESETS:  # ComfyUI 0.3.64 does not check a V3 combo's value
            raise ValueError(f"{SETTINGS_NODE}: input 'preset' is {preset!r}; choose one of {list(PRESETS)}")
        config = build_config(SETTINGS_NODE, preset, overrides, guidance_strength=float(strength),
                              reference_layer=None if capture_block < 0 else int(capture_block))
        changed = {name: getattr(config, name) for name in config_field_names()
                   if getattr(config, name) != getattr(PRESETS[preset], name)}
        summary = f"preset {preset}" + "".join(f"\n{name} = {value}" for name, value in changed.items())
        return io.NodeOutput(config, ui=ui.PreviewText(summary))


NODES = [NuminaSettings]
