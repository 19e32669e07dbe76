"""NUMINA Numeral Parser, Head Selector, Countable Layout, Layout Refiner and the layout ⇄ mask converters."""
from __future__ import annotations

from pathlib import Path

import folder_paths
import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui
from PIL import Image

from ..numina_core.capture import AttentionCapture
from ..numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from ..numina_core.head_selection import HeadSelection, select_heads
from ..numina_core.identify import countable_layout
from ..numina_core.preview import (count_report, edit_sheet, frame_numbers, heatmap_rgb, latent_to_video_frames, layout_frame_images,
                                   layout_from_masks, layout_to_mask, pca_rgb, read_edit_sheet, upscale_frames)
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
            description="Reads what the prompt asks for: \"three cats and two dogs\" → cats 3, dogs 2. Shows the "
                        "counts it found on the node, or a notice when the prompt has no number.",
            inputs=[
                io.String.Input("prompt", multiline=True, tooltip="The same prompt you encode for the positive conditioning."),
                io.Clip.Input("clip", optional=True, tooltip="The model's text encoder (the same CLIP you encode the prompt with)."),
                NuminaTokenizerType.Input("tokenizer", optional=True,
                                          tooltip="Only for the NUMINA test model: its word list, used when no clip is connected."),
                io.String.Input("counts_override", default="", optional=True,
                                tooltip='Optional JSON that replaces the parsed counts, e.g. {"cats": 3, "dogs": 2}. '
                                        "Nouns must be written as in the prompt."),
                io.Combo.Input("occurrences", options=["first", "all"], default="first", optional=True,
                               tooltip="first: only where the noun is first mentioned. all: every mention of it."),
                io.Combo.Input("token_scope", options=["noun", "phrase"], default="noun", optional=True,
                               tooltip="noun: watch and steer the noun word only. phrase: also the words between the "
                                       "number and the noun (\"red\" in \"three red cars\"); try it when a "
                                       "described object is missed."),
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
            raise ValueError(f"{node}: connect input 'clip' (the text encoder you encode the prompt with) so nouns can be found among its tokens")
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
        return io.NodeOutput(targets, summary, ui=ui.PreviewText(parser_report(targets)))


NO_NUMERAL_NOTICE = ("No number in the prompt, so there is nothing to count: the NUMINA samplers will draw "
                     "exactly what a plain KSampler draws. Write the count before the noun, e.g. \"three cats\".")


def parser_report(targets: NuminaTargets) -> str:
    """What the node shows: 'cats: 3' per counted noun, then the parser's notices."""
    if targets.is_empty:
        return "\n".join([NO_NUMERAL_NOTICE, *targets.notices])
    return "\n".join([f"{noun}: {count}" for noun, count in targets.counts.items()] + targets.notices)


class NuminaHeadSelector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaHeadSelector",
            display_name=HEADS_NODE,
            category=f"{CATEGORY}/layout",
            description="Looks at what the first pass was about to draw and picks, for every frame, the view in "
                        "which separate objects stand out most clearly, and where each counted word points in the "
                        "picture. Its two previews show both.",
            inputs=[NuminaCaptureType.Input("capture", tooltip="From NUMINA Attention Capture KSampler."),
                    settings_input()],
            outputs=[NuminaSelectionType.Output(display_name="heads"),
                     io.Image.Output(display_name="pca_maps", tooltip="Per frame, the chosen view: areas of one colour are one object."),
                     io.Image.Output(display_name="cross_attention", tooltip="Per frame, where each counted word points (bright = strongly), nouns side by side.")],
        )

    @classmethod
    def execute(cls, capture: AttentionCapture, settings=None) -> io.NodeOutput:
        config = config_from(settings)
        grid = capture.grid
        if capture.heads == 0:  # no counted nouns: pass through, nothing to select
            selection = HeadSelection(grid, torch.zeros(grid.frames, dtype=torch.long), torch.zeros(grid.frames, 0, 4),
                                      torch.zeros(grid.frames, grid.tokens_per_frame, 3), {}, {})
            notice = "No counted nouns in the prompt: nothing to look at (the samplers run as a plain KSampler)."
        else:
            selection = select_heads(capture, config)
            notice = (f"Looked at {grid.frames} frames for {', '.join(selection.cross_maps)}. Left preview: "
                      "areas of one colour are one object; right: where each word points.")
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


def layout_outputs(layout: Layout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(captioned preview per layout frame for the node, the same per video frame for the IMAGE output,
    instance MASK of all nouns)."""
    pictures = layout_frame_images(layout)
    return (to_image(pictures), to_image(latent_to_video_frames(pictures, layout.temporal_stride)),
            video_mask(layout, lambda labels: labels > 0))


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
            description="Finds the separate objects of each counted noun in every frame of the first pass and counts "
                        "them. The node shows, per noun, the target and the count found in each frame; the preview "
                        "draws every object in its noun's colour.",
            inputs=[NuminaSelectionType.Input("heads", tooltip="From NUMINA Head Selector."),
                    NuminaTargetsType.Input("targets", tooltip="The counted nouns (their requested counts travel along)."),
                    NuminaCaptureType.Input("capture", tooltip="The capture the heads came from (pixel size for previews)."),
                    settings_input()],
            outputs=[NuminaLayoutType.Output(display_name="layout"),
                     io.Image.Output(display_name="preview", tooltip="One picture per video frame: each noun in its own colour, "
                                     "each object a shade of it, counts written above."),
                     io.Mask.Output(display_name="mask", tooltip="Where the objects of all nouns are, one mask per video frame."),
                     io.String.Output(display_name="counts", tooltip="The same counts the node shows, as text.")],
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
        pictures, image, mask = layout_outputs(layout)
        counts = count_report(layout) or "No counted nouns: nothing to find."
        return io.NodeOutput(layout, image, mask, counts, ui={**preview_images(cls, pictures), "text": (counts,)})


class NuminaLayoutRefiner(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutRefiner",
            display_name=REFINER_NODE,
            category=f"{CATEGORY}/layout",
            description="Makes every frame hold the number of objects the prompt asks for: crosses out the smallest "
                        "extra ones and adds a copy of an existing one where there is room. The node shows, per "
                        "noun, what was found and what it added or removed in which frames.",
            inputs=[NuminaLayoutType.Input("layout", tooltip="From Countable Layout, or an artist-edited one (Mask to Layout)."),
                    NuminaTargetsType.Input("targets", tooltip="The requested counts."),
                    settings_input()],
            outputs=[NuminaLayoutType.Output(display_name="layout"),
                     io.Image.Output(display_name="preview", tooltip="Objects to add have a yellow dashed outline and a +; "
                                     "objects to remove are hatched and crossed out."),
                     io.Mask.Output(display_name="added", tooltip="Where objects will be added, per video frame."),
                     io.Mask.Output(display_name="removed", tooltip="Where objects will be removed, per video frame."),
                     io.String.Output(display_name="summary", tooltip="The same report the node shows, as text.")],
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
        pictures, image, _ = layout_outputs(refined)
        summary = count_report(layout, refined)
        for noun, frames in result.shortfall.items():
            summary += f"\n{noun}: no room for another one in {frame_numbers(frames)}"
        if not result.needs_guidance:
            summary += "\nNothing to correct: the guided sampler will draw exactly what a plain KSampler draws."
        return io.NodeOutput(refined, image, video_mask(refined, lambda labels: labels >= FIRST_ADDED),
                             video_mask(refined, lambda labels: labels == REMOVED), summary,
                             ui={**preview_images(cls, pictures), "text": (summary,)})


EDIT_HOWTO = ("To edit: right-click the picture on this node → Open in MaskEditor, paint new objects or erase "
               "unwanted ones (any frame), Save, then Run.")


def chosen_noun(layout: Layout, noun: str, node: str, input_name: str) -> str:
    if not layout.nouns:
        raise ValueError(f"{node}: input '{input_name}' has no nouns (the prompt has no number), so there is "
                         "nothing to edit")
    noun = noun.strip() or layout.nouns[0]
    if noun not in layout.labels:
        raise ValueError(f"{node}: input 'noun' is {noun!r}; the layout has {layout.nouns}")
    return noun


def one_noun(layout: Layout, noun: str) -> Layout:
    """The layout of one noun only (its colours and counts)."""
    return Layout(layout.grid, {noun: layout.labels[noun]}, {k: v for k, v in layout.targets.items() if k == noun},
                  layout.spatial_factor, layout.temporal_stride, layout.provenance)


def edited_sheet_path(name: str) -> Path:
    """The file the Mask Editor saved ('clipspace/clipspace-mask-1.png [input]'; newer frontends write the
    name without its clipspace folder)."""
    path = Path(folder_paths.get_annotated_filepath(name))
    if not path.is_file():
        path = Path(folder_paths.get_input_directory()) / "clipspace" / path.name
    if not path.is_file():
        raise ValueError(f"{TO_MASK_NODE}: input 'image' names {name!r}, which is not in ComfyUI's input "
                         "folder; clear it and open the picture in the Mask Editor again")
    return path


def painted_mask(path: Path) -> np.ndarray:
    """The Mask Editor's mask of a saved image (1 where painted): one minus its alpha."""
    with Image.open(path) as image:
        if "A" not in image.getbands():
            raise ValueError(f"{TO_MASK_NODE}: input 'image' ({path.name}) has no mask; save it from the Mask "
                             "Editor")
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    return 1.0 - alpha


class NuminaLayoutToMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaLayoutToMask",
            display_name=TO_MASK_NODE,
            category=f"{CATEGORY}/edit",
            description="Shows one noun's objects in every frame as one picture you can edit in ComfyUI's Mask "
                        "Editor: right-click the picture → Open in MaskEditor, paint or erase, Save, Run. Connect "
                        "its mask to NUMINA Mask to Layout to use the edit.",
            inputs=[NuminaLayoutType.Input("layout", tooltip="The layout to edit (Countable Layout or Layout Refiner)."),
                    io.String.Input("noun", default="", tooltip="The noun to edit, as written in the prompt (empty: the first)."),
                    io.String.Input("image", default="", optional=True,
                                    tooltip="Filled in by the Mask Editor when you save. Clear it to start again "
                                            "from the layout.")],
            outputs=[io.Mask.Output(display_name="mask", tooltip="The noun's objects (with your edit), one mask per video frame."),
                     io.Image.Output(display_name="preview", tooltip="The noun's objects, one picture per video frame.")],
        )

    @classmethod
    def execute(cls, layout: Layout, noun, image="") -> io.NodeOutput:
        noun = chosen_noun(layout, noun, TO_MASK_NODE, "layout")
        sheet = to_image(edit_sheet(layout, noun))[None]
        if image and image.strip():
            sheet_mask = painted_mask(edited_sheet_path(image.strip()))  # their errors name the node already
            try:
                painted = read_edit_sheet(sheet_mask, layout)
            except ValueError as error:
                raise ValueError(f"{TO_MASK_NODE}: input 'image' {error}; clear it and open the new picture in "
                                 "the Mask Editor") from None
            shown = layout_from_masks({noun: painted}, layout.grid, base=layout)
            notice = "Your edit:\n" + count_report(one_noun(layout, noun), one_noun(shown, noun))
        else:
            shown = layout
            notice = count_report(one_noun(layout, noun)) + "\n" + EDIT_HOWTO
        mask = latent_to_video_frames(upscale_frames(layout_to_mask(shown.labels[noun]), layout.spatial_factor),
                                      layout.temporal_stride)
        preview = latent_to_video_frames(layout_frame_images(one_noun(shown, noun)), layout.temporal_stride)
        return io.NodeOutput(torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)), to_image(preview),
                             ui={**preview_images(cls, sheet), "text": (notice,)})


class NuminaMaskToLayout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaMaskToLayout",
            display_name=FROM_MASK_NODE,
            category=f"{CATEGORY}/edit",
            description="Turns an edited mask back into a layout. Compared with the layout it came from: objects you "
                        "erased are removed, regions you painted become new objects, everything you left alone "
                        "stays exactly as it was. The node shows the counts after your edit.",
            inputs=[io.Mask.Input("mask", tooltip="From NUMINA Layout to Mask (or any mask of the video's size: one per "
                                                  "video frame, per layout frame, or one for all frames)."),
                    NuminaLayoutType.Input("base_layout", tooltip="The layout the mask was made from."),
                    io.String.Input("noun", default="", tooltip="The noun the mask is for (empty: the first).")],
            outputs=[NuminaLayoutType.Output(display_name="layout"),
                     io.String.Output(display_name="counts", tooltip="The same counts the node shows, as text.")],
        )

    @classmethod
    def execute(cls, mask, base_layout: Layout, noun) -> io.NodeOutput:
        noun = chosen_noun(base_layout, noun, FROM_MASK_NODE, "base_layout")
        try:
            edited = layout_from_masks({noun: mask.cpu().numpy()}, base_layout.grid, base=base_layout)
        except ValueError as error:
            raise ValueError(f"{FROM_MASK_NODE}: input 'mask' {error}") from None
        merged = base_layout.copy()
        merged.labels[noun] = edited.labels[noun]
        report = count_report(base_layout, merged)
        if np.array_equal(merged.labels[noun], base_layout.labels[noun]):
            report += "\nNo change: the layout is exactly the one you started from."
        return io.NodeOutput(merged, report, ui=ui.PreviewText(report))


NODES = [NuminaNumeralParser, NuminaHeadSelector, NuminaCountableLayout, NuminaLayoutRefiner,
         NuminaLayoutToMask, NuminaMaskToLayout]
