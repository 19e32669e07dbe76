"""NUMINA Numeral Parser, Head Selector, Countable Layout, Layout Refiner and the layout ⇄ mask converters."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..numina_core.capture import AttentionCapture
from ..numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from ..numina_core.head_selection import HeadSelection, select_heads
from ..numina_core.identify import countable_layout
from ..numina_core.preview import (heatmap_rgb, latent_to_video_frames, layout_from_masks, layout_preview,
                                   layout_to_mask, pca_rgb, upscale_frames, video_frame_count)
from ..numina_core.refine import refine_layout
from ..numina_core.targets import NuminaTargets, build_targets, parse_counts_override
from .adapters import tokenizer_for
from .common import (CATEGORY, NuminaCaptureType, NuminaLayoutType, NuminaSelectionType, NuminaTargetsType,
                     NuminaTokenizerType, config_from, preview_images, require_targets, settings_input, to_image)

PARSER_NODE = "NUMINA Numeral Parser"
HEADS_NODE = "NUMINA Head Selector"
LAYOUT_NODE = "NUMINA Countable Layout"
REFINER_NODE = "NUMINA Layout Refiner"
TO_MASK_NODE = "NUMINA Layout to Mask"
FROM_MASK_NODE = "NUMINA Mask to Layout"


class NuminaNumeralParser(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaNumeralParser",
            display_name=PARSER_NODE,
            category=f"{CATEGORY}/prompt",
            description="Reads the counted nouns and their numbers from the prompt (\"three cats and two dogs\" → "
                        "cats: 3, dogs: 2) and finds each noun's token columns in Wan's text encoder.",
            inputs=[
                io.String.Input("prompt", multiline=True, tooltip="The same prompt you encode for the positive conditioning."),
                io.Clip.Input("clip", optional=True, tooltip="Wan's umt5 text encoder (CLIPLoader, type 'wan'), for token columns."),
                NuminaTokenizerType.Input("tokenizer", optional=True,
                                          tooltip="Another tokenizer (e.g. the NUMINA testbed's), used when no clip is connected."),
                io.String.Input("counts_override", default="", optional=True,
                                tooltip='Optional JSON that replaces the parsed counts, e.g. {"cats": 3, "dogs": 2}. '
                                        "Nouns must be written as in the prompt."),
                io.Combo.Input("occurrences", options=["first", "all"], default="first", optional=True,
                               tooltip="first: the noun's first mention only (reference). all: every mention."),
                io.Combo.Input("token_scope", options=["noun", "phrase"], default="noun", optional=True,
                               tooltip="noun: read and steer the noun's tokens only (reference). phrase: also the "
                                       "words between the numeral and the noun (\"red\" in \"three red cars\")."),
            ],
            outputs=[NuminaTargetsType.Output(display_name="targets"), io.String.Output(display_name="summary")],
        )

    @classmethod
    def execute(cls, prompt, clip=None, tokenizer=None, counts_override="", occurrences="first",
                token_scope="noun") -> io.NodeOutput:
        node = PARSER_NODE
        if clip is not None:
            tokenizer = tokenizer_for(clip, node)
        if tokenizer is None:
            raise ValueError(f"{node}: connect input 'clip' (Wan's text encoder) so nouns can be found among its tokens")
        counts = None
        if counts_override and counts_override.strip():
            try:
                counts = parse_counts_override(counts_override)
            except ValueError as error:
                raise ValueError(f"{node}: input 'counts_override' {error}") from None
        try:
            targets = build_targets(prompt, tokenizer, counts, occurrences, token_scope)
        except ValueError as error:
            raise ValueError(f"{node}: {error} (input 'prompt' or 'counts_override')") from None
        summary = targets.summary()
        return io.NodeOutput(targets, summary, ui=ui.PreviewText(summary))


class NuminaHeadSelector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaHeadSelector",
            display_name=HEADS_NODE,
            category=f"{CATEGORY}/layout",
            description="Picks, per frame, the self-attention head whose PCA map shows instances most clearly "
                        "(S1 + S2 + γ·S3), and each noun's cross-attention map (mean over heads, or the peak head).",
            inputs=[NuminaCaptureType.Input("capture", tooltip="From NUMINA Attention Capture KSampler."),
                    settings_input()],
            outputs=[NuminaSelectionType.Output(display_name="heads"),
                     io.Image.Output(display_name="pca_maps", tooltip="The selected head's PCA map per latent frame, pixel size."),
                     io.Image.Output(display_name="cross_attention", tooltip="Each noun's cross-attention heat map, nouns side by side.")],
        )

    @classmethod
    def execute(cls, capture: AttentionCapture, settings=None) -> io.NodeOutput:
        config = config_from(settings)
        grid = capture.grid
        if capture.heads == 0:  # no counted nouns: pass through, nothing to select
            selection = HeadSelection(grid, torch.zeros(grid.frames, dtype=torch.long), torch.zeros(grid.frames, 0, 4),
                                      torch.zeros(grid.frames, grid.tokens_per_frame, 3), {}, {})
            notice = "no counted nouns: nothing selected"
        else:
            selection = select_heads(capture, config)
            notice = "heads per frame: " + ", ".join(str(h) for h in selection.sa_heads.tolist())
        factor = capture.geometry.spatial_factor
        pca = to_image(upscale_frames(pca_rgb(selection.sa_projection.numpy(), grid), factor))
        heat = [heatmap_rgb(m.numpy()) for m in selection.cross_maps.values()]
        cross = to_image(upscale_frames(tile_nouns(heat, grid), factor))
        return io.NodeOutput(selection, pca, cross, ui={**preview_images(cls, pca, cross), "text": (notice,)})


def tile_nouns(frames_per_noun: list[np.ndarray], grid: TokenGrid) -> np.ndarray:
    """Put several nouns' [F, H, W, 3] frames side by side with a one-token white gap (black frames for none)."""
    if not frames_per_noun:
        return np.zeros((grid.frames, grid.height, grid.width, 3), dtype=np.float32)
    gap = np.ones(frames_per_noun[0].shape[:2] + (1, 3), dtype=np.float32)
    parts = []
    for frames in frames_per_noun:
        parts += [frames, gap]
    return np.concatenate(parts[:-1], axis=2)


def layout_outputs(layout: Layout) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(colour preview IMAGE aligned to video frames, instance MASK of all nouns, per-noun counts text)."""
    factor, stride = layout.spatial_factor, layout.temporal_stride
    grid = TokenGrid(layout.grid.frames, layout.grid.height * factor, layout.grid.width * factor)
    image = to_image(tile_nouns([layout_preview(layout.labels[n], factor, stride) for n in layout.nouns],
                                TokenGrid(video_frame_count(grid.frames, stride), grid.height, grid.width)))
    return image, video_mask(layout, lambda labels: labels > 0), layout.summary()


def video_mask(layout: Layout, select) -> torch.Tensor:
    """MASK at pixel size, one frame per video frame: the union over nouns of select(labels)."""
    mask = np.zeros(layout.grid.shape, dtype=np.float32)
    for labels in layout.labels.values():
        mask = np.maximum(mask, select(labels))
    return torch.from_numpy(latent_to_video_frames(upscale_frames(mask, layout.spatial_factor), layout.temporal_stride))


class NuminaCountableLayout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaCountableLayout",
            display_name=LAYOUT_NODE,
            category=f"{CATEGORY}/layout",
            description="Turns the selected attention into a countable instance layout per noun and frame: MeanShift "
                        "regions of the PCA map kept where the noun's cross-attention focuses.",
            inputs=[NuminaSelectionType.Input("heads", tooltip="From NUMINA Head Selector."),
                    NuminaTargetsType.Input("targets", tooltip="The counted nouns (their requested counts travel along)."),
                    NuminaCaptureType.Input("capture", tooltip="The capture the heads came from (pixel size for previews)."),
                    settings_input()],
            outputs=[NuminaLayoutType.Output(display_name="layout"),
                     io.Image.Output(display_name="preview", tooltip="Colour-coded instances, nouns side by side, aligned to video frames."),
                     io.Mask.Output(display_name="mask", tooltip="All nouns' instances, pixel size, video frames."),
                     io.String.Output(display_name="counts")],
        )

    @classmethod
    def execute(cls, heads: HeadSelection, targets: NuminaTargets, capture: AttentionCapture,
                settings=None) -> io.NodeOutput:
        node = LAYOUT_NODE
        require_targets(targets, node)
        if capture.provenance is not None and capture.provenance.prompt != targets.prompt:
            raise ValueError(f"{node}: inputs 'capture' and 'targets' come from different prompts "
                             f"({capture.provenance.prompt!r} vs {targets.prompt!r}); connect the Numeral Parser "
                             "that fed the capture")
        if heads.grid != capture.grid or set(heads.cross_maps) != set(capture.cross_maps):
            raise ValueError(f"{node}: input 'heads' was not selected from input 'capture'; connect the Head "
                             "Selector that reads this capture")
        layout = countable_layout(heads, capture, config_from(settings), targets.counts)
        image, mask, counts = layout_outputs(layout)
        return io.NodeOutput(layout, image, mask, counts,
                             ui={**preview_images(cls, image[:: layout.temporal_stride]), "text": (counts,)})


class NuminaLayoutRefiner(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutRefiner",
            display_name=REFINER_NODE,
            category=f"{CATEGORY}/layout",
            description="Makes every frame of the layout hold the requested number of instances: removes the smallest "
                        "extra ones, adds copies of the smallest (or a disc) where they cost least.",
            inputs=[NuminaLayoutType.Input("layout", tooltip="From Countable Layout, or an artist-edited one (Mask to Layout)."),
                    NuminaTargetsType.Input("targets", tooltip="The requested counts."),
                    settings_input()],
            outputs=[NuminaLayoutType.Output(display_name="layout"),
                     io.Image.Output(display_name="preview", tooltip="Added instances are outlined white, removed ones grey."),
                     io.Mask.Output(display_name="added"), io.Mask.Output(display_name="removed"),
                     io.String.Output(display_name="summary")],
        )

    @classmethod
    def execute(cls, layout: Layout, targets: NuminaTargets, settings=None) -> io.NodeOutput:
        node = REFINER_NODE
        config = config_from(settings)
        require_targets(targets, node)
        if layout.provenance is not None and layout.provenance.prompt != targets.prompt:
            raise ValueError(f"{node}: inputs 'layout' and 'targets' come from different prompts "
                             f"({layout.provenance.prompt!r} vs {targets.prompt!r})")
        unknown = [noun for noun in targets.counts if noun not in layout.labels]
        if unknown:
            raise ValueError(f"{node}: input 'targets' counts {unknown}, which input 'layout' does not have")
        try:
            result = refine_layout(layout, targets.counts, config)
        except ValueError as error:
            raise ValueError(f"{node}: {error} (input 'targets')") from None
        refined = result.layout
        image, _, summary = layout_outputs(refined)
        if result.shortfall:
            summary += "\nno room to reach the target in frames: " + "; ".join(
                f"{noun} {frames}" for noun, frames in result.shortfall.items())
        if not result.needs_guidance:
            summary += "\nnothing to correct: the guided sampler will equal KSampler"
        return io.NodeOutput(refined, image, video_mask(refined, lambda labels: labels >= FIRST_ADDED),
                             video_mask(refined, lambda labels: labels == REMOVED), summary,
                             ui={**preview_images(cls, image[:: refined.temporal_stride]), "text": (summary,)})


class NuminaLayoutToMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutToMask",
            display_name=TO_MASK_NODE,
            category=f"{CATEGORY}/edit",
            description="One noun's instances as a MASK and a colour IMAGE at pixel size, one frame per video frame, "
                        "for editing in ComfyUI's Mask Editor.",
            inputs=[NuminaLayoutType.Input("layout", tooltip="Any NUMINA layout."),
                    io.String.Input("noun", default="", tooltip="The noun to export, as written in the prompt (empty: the first)."),
                    io.Boolean.Input("video_frames", default=True,
                                     tooltip="One frame per video frame (Wan: 1 + 4·(F−1)); off: one per latent frame.")],
            outputs=[io.Mask.Output(display_name="mask"), io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, layout: Layout, noun, video_frames) -> io.NodeOutput:
        if not layout.nouns:
            raise ValueError(f"{TO_MASK_NODE}: input 'layout' has no nouns (the prompt has no numeral), so there is "
                             "nothing to edit")
        noun = noun.strip() or layout.nouns[0]
        if noun not in layout.labels:
            raise ValueError(f"{TO_MASK_NODE}: input 'noun' is {noun!r}; the layout has {layout.nouns}")
        labels = layout.labels[noun]
        mask = upscale_frames(layout_to_mask(labels), layout.spatial_factor)
        image = layout_preview(labels, layout.spatial_factor)
        if video_frames:
            mask = latent_to_video_frames(mask, layout.temporal_stride)
            image = latent_to_video_frames(image, layout.temporal_stride)
        return io.NodeOutput(torch.from_numpy(mask), to_image(image))


class NuminaMaskToLayout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaMaskToLayout",
            display_name=FROM_MASK_NODE,
            category=f"{CATEGORY}/edit",
            description="An (edited) MASK back into a layout: every connected region of a frame is one instance. Read "
                        "against the layout it came from, erased instances are removed and new regions are added.",
            inputs=[io.Mask.Input("mask", tooltip="Pixel or token size; video or latent frame count, or 1 frame for all."),
                    NuminaLayoutType.Input("base_layout", tooltip="The layout the mask was exported from (its grid and nouns)."),
                    io.String.Input("noun", default="", tooltip="The noun the mask is for (empty: the first).")],
            outputs=[NuminaLayoutType.Output(display_name="layout"), io.String.Output(display_name="counts")],
        )

    @classmethod
    def execute(cls, mask, base_layout: Layout, noun) -> io.NodeOutput:
        if not base_layout.nouns:
            raise ValueError(f"{FROM_MASK_NODE}: input 'base_layout' has no nouns (the prompt has no numeral), so "
                             "there is nothing to edit")
        noun = noun.strip() or base_layout.nouns[0]
        if noun not in base_layout.labels:
            raise ValueError(f"{FROM_MASK_NODE}: input 'noun' is {noun!r}; the layout has {base_layout.nouns}")
        try:
            edited = layout_from_masks({noun: mask.cpu().numpy()}, base_layout.grid, base=base_layout)
        except ValueError as error:
            raise ValueError(f"{FROM_MASK_NODE}: input 'mask' {error}") from None
        merged = base_layout.copy()
        merged.labels[noun] = edited.labels[noun]
        return io.NodeOutput(merged, merged.summary(), ui=ui.PreviewText(merged.summary()))


NODES = [NuminaNumeralParser, NuminaHeadSelector, NuminaCountableLayout, NuminaLayoutRefiner,
         NuminaLayoutToMask, NuminaMaskToLayout]
