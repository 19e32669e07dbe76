"""The identify chain in one place: capture → head selection → countable layout → refinement.

The nodes run the three stages as separate nodes (so an artist can preview and edit between them) and
call the same functions as `identify`, which the testbed, the demo and the benchmarks call whole.
"""
from __future__ import annotations

from dataclasses import dataclass

from .capture import AttentionCapture
from .config import NuminaConfig
from .grid import Layout
from .head_selection import HeadSelection, select_heads
from .layout import build_countable_layout
from .refine import RefinementResult, refine_layout


@dataclass
class Identification:
    """Every intermediate result of the identify chain."""

    heads: HeadSelection
    layout: Layout
    refinement: RefinementResult

    @property
    def refined(self) -> Layout:
        return self.refinement.layout


def countable_layout(selection: HeadSelection, capture: AttentionCapture, config: NuminaConfig,
                     counts: dict[str, int]) -> Layout:
    """The countable layout, placed on the capture's video (geometry) and tied to its run (provenance)."""
    layout = build_countable_layout(selection, config, counts)
    layout.spatial_factor = capture.geometry.spatial_factor
    layout.temporal_stride = capture.geometry.temporal_stride
    layout.provenance = capture.provenance
    return layout


def identify(capture: AttentionCapture, counts: dict[str, int], config: NuminaConfig) -> Identification:
    """Select heads, build the countable layout and refine it to `counts` (noun → requested count)."""
    heads = select_heads(capture, config)
    layout = countable_layout(heads, capture, config, counts)
    return Identification(heads, layout, refine_layout(layout, counts, config))
