"""Previews an artist reads at a glance, the Mask Editor's edit sheet, and layout ⇄ mask conversions.

* layout previews: one picture per latent frame at the video's pixel size (upscaled so the short side is at
  least 256 px: tiny test videos stay readable), every noun in the same picture in its own colour family with
  its instances as distinct shades; a caption above names the video frames and each noun's count/target;
  instances to remove are hatched and crossed out, instances to add have a bright dashed outline and a "+";
* heat maps of cross-attention and RGB images of the PCA maps;
* the edit sheet: all latent frames of one noun tiled in one RGBA image whose alpha marks the instances, so
  ComfyUI's Mask Editor opens with them already painted; read back against the layout it came from, only
  the regions the artist changed become edits (touching instances stay apart);
* latent frames ⇄ video frames (latent frame 0 is video frame 0, every later latent frame covers 4).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from .grid import BACKGROUND, FIRST_ADDED, MAX_DETECTED, REMOVED, Layout, TokenGrid

MIN_PREVIEW_SIDE = 256
CAPTION_LINE = 16
FONT_SIZE = 13
BACKDROP = np.array([0.1, 0.1, 0.12], dtype=np.float32)
CAPTION_BACKDROP = np.array([0.0, 0.0, 0.0], dtype=np.float32)
CROSS_COLOUR = (255, 255, 255)
ADDED_COLOUR = np.array([1.0, 1.0, 0.2], dtype=np.float32)
# Hues of the nouns' colour families, far apart for the first few nouns: red, blue, green, orange, purple, cyan.
NOUN_HUES = (0.0, 0.6, 0.33, 0.09, 0.78, 0.5, 0.9, 0.17)
# Saturation and brightness of an instance's shade, by its rank among the noun's instances.
SHADES = ((0.85, 1.0), (0.45, 1.0), (0.95, 0.6), (0.3, 0.75), (0.7, 0.8))
# Alpha of an instance in the edit sheet: the Mask Editor reads it as a mask of 0.75 (≥ 0.5: kept), and the
# instance's colour still shows through on the node.
SHEET_INSTANCE_ALPHA = 0.25
SHEET_MAX_PIXELS = 4_000_000
SHEET_MIN_TOKEN_PIXELS = 4
SHEET_GAP = 4


def noun_colour(noun_index: int) -> np.ndarray:
    """The noun's family colour (its first instance's shade), RGB 0..1."""
    return instance_shade(noun_index, 0)


def instance_shade(noun_index: int, rank: int) -> np.ndarray:
    """A distinct shade of the noun's colour family for its `rank`-th instance."""
    saturation, value = SHADES[rank % len(SHADES)]
    hue = (NOUN_HUES[noun_index % len(NOUN_HUES)] + 0.035 * (rank // len(SHADES))) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)


def display_scale(height: int, width: int) -> int:
    """Integer upscale that makes the short side of a frame at least MIN_PREVIEW_SIDE pixels."""
    return max(1, math.ceil(MIN_PREVIEW_SIDE / max(1, min(height, width))))


def label_font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only its fixed bitmap font
        return ImageFont.load_default()


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of [F, H, W(, C)] by an integer factor on H and W."""
    return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)


def video_frame_count(latent_frames: int, temporal_stride: int = 4) -> int:
    """Video frames of a Wan latent with `latent_frames` frames: 1 + 4·(F − 1)."""
    return 1 + temporal_stride * (latent_frames - 1)


def video_frames_of(latent_frame: int, temporal_stride: int) -> tuple[int, int]:
    """First and last video frame (0-based) that latent frame `latent_frame` covers."""
    if latent_frame == 0:
        return 0, 0
    first = 1 + temporal_stride * (latent_frame - 1)
    return first, first + temporal_stride - 1


def latent_to_video_frames(frames: np.ndarray, temporal_stride: int = 4) -> np.ndarray:
    """Repeat latent frames so they line up with the video: frame 0 once, every later one 4 times."""
    repeats = np.full(len(frames), temporal_stride)
    repeats[0] = 1
    return np.repeat(frames, repeats, axis=0)


def frame_caption(latent_frame: int, temporal_stride: int) -> str:
    """'frame 1 (video 1)' or 'frame 2 (video 2-5)': the layout frame and the video frames it covers,
    1-based as an artist counts them."""
    first, last = video_frames_of(latent_frame, temporal_stride)
    video = f"{first + 1}" if first == last else f"{first + 1}-{last + 1}"
    return f"frame {latent_frame + 1} (video {video})"


def frame_numbers(frames: list[int]) -> str:
    """'frame 3' or 'frames 1,2,4' from 0-based frame indices."""
    numbers = ",".join(str(f + 1) for f in frames)
    return f"frame{'s' if len(frames) > 1 else ''} {numbers}"


def per_frame_changes(counts: np.ndarray, verb: str) -> str:
    """'added 1 in frames 1,2,4, 2 in frame 3' from per-frame numbers (empty when all are 0)."""
    groups = [f"{n} in {frame_numbers([f for f, c in enumerate(counts) if c == n])}"
              for n in sorted(set(int(c) for c in counts) - {0})]
    return f"{verb} " + ", ".join(groups) if groups else ""


def count_report(found: Layout, result: Layout | None = None) -> str:
    """One line per noun for the node's face: 'cats: target 3 · found 2 2 3 2 · now 3 3 3 3 · added 1 in
    frames 1,2,4 · removed 1 in frame 3'; without `result`, what was found and where a noun is missing."""
    lines = []
    final = result if result is not None else found
    for noun in final.nouns:
        parts = []
        target = final.targets.get(noun)
        if target is not None:
            parts.append(f"target {target}")
        before = found.counts(noun)
        parts.append("found " + " ".join(str(c) for c in before))
        if result is not None:
            labels = result.labels[noun]
            parts.append("now " + " ".join(str(c) for c in result.counts(noun)))
            added = [len(np.unique(frame[frame >= FIRST_ADDED])) for frame in labels]
            removed = [ndimage.label(frame == REMOVED)[1] for frame in labels]
            parts += [text for text in (per_frame_changes(np.array(added), "added"),
                                        per_frame_changes(np.array(removed), "removed")) if text]
        missing = [f for f, c in enumerate(before) if c == 0]
        if len(missing) == len(before):
            parts.append("not found in any frame")
        elif missing:
            parts.append("not found in " + frame_numbers(missing))
        lines.append(f"{noun}: " + " · ".join(parts))
    return "\n".join(lines)


# -- pictures of layouts -------------------------------------------------------------------------------

def border(region: np.ndarray, width: int) -> np.ndarray:
    """bool [H, W]: the pixels of `region` within `width` pixels of its edge."""
    return region & ~ndimage.binary_erosion(region, iterations=width, border_value=0)


def paint_noun(rgb: np.ndarray, labels: np.ndarray, noun_index: int, scale: int) -> list[tuple[str, np.ndarray]]:
    """Paint one noun's label map (token grid) onto `rgb` (pixels, `scale` per token) and return the marks
    drawn with text afterwards: ('x', bool region) per removed instance, ('+', region) per added one."""
    pixels = upscale_frames(labels[None], scale)[0]
    marks = []
    present = sorted(int(v) for v in np.unique(pixels) if v > 0)
    for rank, label in enumerate(present):
        region = pixels == label
        rgb[region] = instance_shade(noun_index, rank)
        if label >= FIRST_ADDED:
            marks.append(("+", region))
    # Touching instances of one noun: a dark seam shows where one ends and the next begins.
    seams = (pixels > 0) & (np.roll(pixels, 1, axis=0) != pixels) & (np.roll(pixels, 1, axis=0) > 0)
    seams |= (pixels > 0) & (np.roll(pixels, 1, axis=1) != pixels) & (np.roll(pixels, 1, axis=1) > 0)
    rgb[seams] = BACKDROP
    removed, count = ndimage.label(pixels == REMOVED)
    ys, xs = np.indices(pixels.shape)
    hatch = ((ys + xs) // max(2, scale // 4)) % 2 == 0
    for index in range(1, count + 1):
        region = removed == index
        rgb[region & hatch] = noun_colour(noun_index) * 0.45
        rgb[region & ~hatch] = BACKDROP
        marks.append(("x", region))
    return marks


def draw_marks(image: Image.Image, marks: list[tuple[str, np.ndarray]], offset_y: int, scale: int) -> None:
    """Crosses over removed instances; dashed outline and '+' on added ones."""
    draw = ImageDraw.Draw(image)
    line = max(2, scale // 6)
    font = label_font(max(FONT_SIZE, scale))
    for kind, region in marks:
        ys, xs = np.nonzero(region)
        top, bottom, left, right = ys.min() + offset_y, ys.max() + offset_y, xs.min(), xs.max()
        if kind == "x":
            draw.line([(left, top), (right, bottom)], fill=CROSS_COLOUR, width=line)
            draw.line([(left, bottom), (right, top)], fill=CROSS_COLOUR, width=line)
            continue
        edge = border(region, line)
        dashes = edge & (((np.indices(region.shape).sum(axis=0)) // (3 * line)) % 2 == 0)
        pixels = np.asarray(image).copy()
        pixels[offset_y:offset_y + region.shape[0]][dashes] = (ADDED_COLOUR * 255).astype(np.uint8)
        image.paste(Image.fromarray(pixels))
        draw = ImageDraw.Draw(image)
        draw.text(((left + right) / 2, (top + bottom) / 2), "+", fill=(0, 0, 0), font=font, anchor="mm",
                  stroke_width=2, stroke_fill=tuple(int(c * 255) for c in ADDED_COLOUR))


def caption_lines(layout: Layout, frame: int) -> list[tuple[str, np.ndarray]]:
    """(text, colour) lines above a frame: which video frames, then each noun's count/target."""
    lines = [(frame_caption(frame, layout.temporal_stride), np.ones(3, dtype=np.float32))]
    for index, noun in enumerate(layout.nouns):
        labels = layout.labels[noun][frame]
        found = len(np.unique(labels[labels > 0]))
        target = layout.targets.get(noun)
        text = f"{noun} {found}/{target}" if target is not None else f"{noun} {found}"
        added = len(np.unique(labels[labels >= FIRST_ADDED]))
        removed = ndimage.label(labels == REMOVED)[1]
        if added:
            text += f"  +{added} added"
        if removed:
            text += f"  -{removed} removed"
        lines.append((text, noun_colour(index)))
    return lines


def draw_caption(image: Image.Image, lines: list[tuple[str, np.ndarray]], top: int = 0) -> None:
    draw = ImageDraw.Draw(image)
    font = label_font()
    for row, (text, colour) in enumerate(lines):
        draw.text((4, top + 1 + row * CAPTION_LINE), text, fill=tuple(int(c * 255) for c in colour), font=font)


def layout_frame_images(layout: Layout) -> np.ndarray:
    """float32 RGB [latent frames, caption + H·s, W·s, 3]: every noun of each latent frame in one picture at
    pixel size (s = pixels per token, upscaled for small videos), captioned with the counts."""
    height, width = layout.grid.height * layout.spatial_factor, layout.grid.width * layout.spatial_factor
    scale = layout.spatial_factor * display_scale(height, width)
    caption = CAPTION_LINE * (1 + len(layout.nouns)) + 4
    frames = []
    for frame in range(layout.grid.frames):
        rgb = np.broadcast_to(BACKDROP, (layout.grid.height * scale, layout.grid.width * scale, 3)).copy()
        marks = []
        for index, noun in enumerate(layout.nouns):
            marks += paint_noun(rgb, layout.labels[noun][frame], index, scale)
        canvas = np.concatenate([np.broadcast_to(CAPTION_BACKDROP, (caption,) + rgb.shape[1:]), rgb])
        image = Image.fromarray((canvas * 255).round().astype(np.uint8))
        draw_marks(image, marks, caption, scale)
        draw_caption(image, caption_lines(layout, frame))
        frames.append(np.asarray(image, dtype=np.float32) / 255.0)
    return np.stack(frames)


def heatmap_rgb(maps: np.ndarray) -> np.ndarray:
    """[F, H, W] non-negative maps → RGB [F, H, W, 3] (per-frame max-normalised, 'inferno' colours)."""
    import cv2  # here, not at import: a broken OpenCV must not stop the pack from loading

    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    scaled = np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0)
    gray = np.clip(scaled * 255, 0, 255).astype(np.uint8)
    coloured = np.stack([cv2.applyColorMap(g, cv2.COLORMAP_INFERNO) for g in gray])
    return coloured[..., ::-1].astype(np.float32) / 255.0


def pca_rgb(projection: np.ndarray, grid: TokenGrid) -> np.ndarray:
    """[F, HW, 3] PCA projections → RGB [F, H, W, 3], each component min-max scaled per frame."""
    low = projection.min(axis=1, keepdims=True)
    span = projection.max(axis=1, keepdims=True) - low
    scaled = np.where(span > 1e-8, (projection - low) / np.where(span > 1e-8, span, 1), 0.5)
    return scaled.reshape(grid.frames, grid.height, grid.width, 3).astype(np.float32)


# -- the edit sheet -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditSheet:
    """Where each latent frame of a layout lies in its edit sheet: tiles of `token_pixels` per token, in
    `columns` columns, each below a caption of `caption` rows, tiles `SHEET_GAP` pixels apart."""

    grid: TokenGrid
    token_pixels: int
    columns: int
    caption: int = CAPTION_LINE + 4

    @property
    def rows(self) -> int:
        return math.ceil(self.grid.frames / self.columns)

    @property
    def tile_size(self) -> tuple[int, int]:
        return self.grid.height * self.token_pixels, self.grid.width * self.token_pixels

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole sheet."""
        tile_height, tile_width = self.tile_size
        return (self.rows * (self.caption + tile_height + SHEET_GAP) - SHEET_GAP,
                self.columns * (tile_width + SHEET_GAP) - SHEET_GAP)

    def tile_origin(self, frame: int) -> tuple[int, int]:
        """(top, left) of a frame's tile (below its caption)."""
        tile_height, tile_width = self.tile_size
        row, column = divmod(frame, self.columns)
        return row * (self.caption + tile_height + SHEET_GAP) + self.caption, column * (tile_width + SHEET_GAP)


def edit_sheet_layout(layout: Layout) -> EditSheet:
    """The edit sheet of a layout: near-square, at pixel size when it fits SHEET_MAX_PIXELS, else with fewer
    pixels per token (never below SHEET_MIN_TOKEN_PIXELS)."""
    grid = layout.grid
    height, width = grid.height * layout.spatial_factor, grid.width * layout.spatial_factor
    columns = max(1, math.ceil(math.sqrt(grid.frames * height / max(1, width))))
    columns = min(columns, grid.frames)
    token_pixels = layout.spatial_factor * display_scale(height, width)
    while token_pixels > SHEET_MIN_TOKEN_PIXELS:
        sheet = EditSheet(grid, token_pixels, columns)
        if sheet.size[0] * sheet.size[1] <= SHEET_MAX_PIXELS:
            return sheet
        token_pixels -= 1
    return EditSheet(grid, max(token_pixels, 1), columns)


def edit_sheet(layout: Layout, noun: str) -> np.ndarray:
    """float32 RGBA [sheet H, sheet W, 4] of one noun: its frames tiled and captioned; alpha is
    SHEET_INSTANCE_ALPHA on its instances (the Mask Editor's mask) and 1 elsewhere."""
    sheet = edit_sheet_layout(layout)
    index = layout.nouns.index(noun)
    rgba = np.zeros(sheet.size + (4,), dtype=np.float32)
    rgba[..., 3] = 1.0
    tile_height, tile_width = sheet.tile_size
    marks = []
    for frame in range(layout.grid.frames):
        top, left = sheet.tile_origin(frame)
        rgb = np.broadcast_to(BACKDROP, (tile_height, tile_width, 3)).copy()
        for kind, region in paint_noun(rgb, layout.labels[noun][frame], index, sheet.token_pixels):
            full = np.zeros(sheet.size, dtype=bool)
            full[top:top + tile_height, left:left + tile_width] = region
            marks.append((kind, full))
        rgba[top:top + tile_height, left:left + tile_width, :3] = rgb
        instances = upscale_frames(layout.labels[noun][frame][None] > 0, sheet.token_pixels)[0]
        rgba[top:top + tile_height, left:left + tile_width, 3][instances] = SHEET_INSTANCE_ALPHA
    image = Image.fromarray((rgba[..., :3] * 255).round().astype(np.uint8))
    draw_marks(image, marks, 0, sheet.token_pixels)
    draw = ImageDraw.Draw(image)
    for frame in range(layout.grid.frames):
        top, left = sheet.tile_origin(frame)
        count = int(layout.counts(noun)[frame])
        target = layout.targets.get(noun)
        text = f"{frame_caption(frame, layout.temporal_stride)}: {noun} {count}" + (f"/{target}" if target else "")
        draw.text((left + 2, top - sheet.caption + 2), text, fill=(255, 255, 255), font=label_font())
    rgba[..., :3] = np.asarray(image, dtype=np.float32) / 255.0
    return rgba


def read_edit_sheet(mask: np.ndarray, layout: Layout) -> np.ndarray:
    """The Mask Editor's mask of an edit sheet (float [sheet H, sheet W], 1 = painted) → float [F, H, W] per
    token (the fraction of the token painted)."""
    sheet = edit_sheet_layout(layout)
    if tuple(mask.shape) != sheet.size:
        raise ValueError(f"is {mask.shape[1]}×{mask.shape[0]} pixels but this layout's edit sheet is "
                         f"{sheet.size[1]}×{sheet.size[0]}: it was made from another layout")
    tile_height, tile_width = sheet.tile_size
    grid, pixels = layout.grid, sheet.token_pixels
    tokens = np.zeros(grid.shape, dtype=np.float32)
    for frame in range(grid.frames):
        top, left = sheet.tile_origin(frame)
        tile = mask[top:top + tile_height, left:left + tile_width]
        tokens[frame] = tile.reshape(grid.height, pixels, grid.width, pixels).mean(axis=(1, 3))
    return tokens


# -- layout ⇄ masks -----------------------------------------------------------------------------------

def layout_to_mask(labels: np.ndarray) -> np.ndarray:
    """float32 [F, H, W] mask of one noun's instances (detected and added; removed ones are not)."""
    return (labels > 0).astype(np.float32)


def video_to_latent_masks(mask: np.ndarray, base_on: np.ndarray, temporal_stride: int) -> np.ndarray:
    """Video-length masks [1 + 4·(F−1), H, W] → one per latent frame: of the video frames a latent frame
    covers, the one that differs most from the unedited mask `base_on` (so an edit on any of them counts)."""
    picked = [mask[0]]
    for frame in range(1, len(base_on)):
        first, last = video_frames_of(frame, temporal_stride)
        group = mask[first:last + 1]
        changes = [np.abs(m - base_on[frame]).sum() for m in group]
        picked.append(group[int(np.argmax(changes))])
    return np.stack(picked)


def mask_to_token_grid(mask: np.ndarray, grid: TokenGrid, temporal_stride: int = 4,
                       base: np.ndarray | None = None) -> np.ndarray:
    """A mask at token or pixel size (latent or video frame count, or 1 frame for all) → bool [F, H, W] on the
    token grid: a token is set when at least half of it is painted."""
    if mask.ndim != 3:
        raise ValueError(f"must be [frames, height, width], got shape {tuple(mask.shape)}")
    height, width = mask.shape[1:]
    if (height, width) != (grid.height, grid.width):
        if height % grid.height or width % grid.width or height // grid.height != width // grid.width:
            raise ValueError(f"is {height}×{width}; it must be the token grid {grid.height}×{grid.width} "
                             f"or a whole multiple of it (the video's pixel size)")
        factor = height // grid.height
        mask = mask.reshape(len(mask), grid.height, factor, grid.width, factor).mean(axis=(2, 4))
    video_frames = video_frame_count(grid.frames, temporal_stride)
    if mask.shape[0] == video_frames and mask.shape[0] != grid.frames:
        base_on = (base > 0).astype(np.float32) if base is not None else np.zeros(grid.shape, np.float32)
        mask = video_to_latent_masks(mask, base_on, temporal_stride)
    if mask.shape[0] == 1 and grid.frames > 1:
        mask = np.repeat(mask, grid.frames, axis=0)
    if mask.shape[0] != grid.frames:
        raise ValueError(f"has {mask.shape[0]} frames; the layout needs {grid.frames} latent frames, "
                         f"{video_frames} video frames, or 1 frame for all")
    return mask >= 0.5


def mask_to_instances(mask: np.ndarray) -> np.ndarray:
    """bool [F, H, W] → int32 instance labels: every 4-connected component of a frame is one instance,
    numbered 1, 2, … in scan order (at most 99 per frame: the largest are kept)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    for f, frame in enumerate(mask):
        components, count = ndimage.label(frame)
        if count > MAX_DETECTED:
            sizes = np.bincount(components.ravel())[1:]
            keep = np.sort(np.argsort(-sizes, kind="stable")[:MAX_DETECTED]) + 1
            relabel = np.zeros(count + 1, dtype=np.int32)
            relabel[keep] = np.arange(1, len(keep) + 1)
            components = relabel[components]
        labels[f] = components
    return labels


def edited_frame(mask: np.ndarray, base: np.ndarray) -> np.ndarray:
    """One frame's labels after an edit: `base` where the mask still matches it; a base instance the mask no
    longer covers at all is removed (a detected one becomes −1, an added one is dropped), one it covers in part
    keeps its label on what is left; every newly painted region is one added instance."""
    if np.array_equal(mask, base > 0):
        return base.copy()
    labels = base.copy()
    for label in np.unique(base[base > 0]):
        region = base == label
        if not (mask & region).any():
            labels[region] = REMOVED if label < FIRST_ADDED else BACKGROUND
        else:
            labels[region & ~mask] = BACKGROUND
    painted, count = ndimage.label(mask & ~(base > 0))
    next_added = max(FIRST_ADDED, int(base.max()) + 1)
    for index in range(1, count + 1):
        labels[painted == index] = next_added
        next_added += 1
    return labels


def edited_layout(mask: np.ndarray, base: np.ndarray) -> np.ndarray:
    """An artist-edited instance mask (bool [F, H, W]) read against the labels it was drawn from, frame by
    frame (see edited_frame): an unedited mask gives `base` back exactly, touching instances included."""
    return np.stack([edited_frame(m, b) for m, b in zip(mask, base)]).astype(np.int32)


def layout_from_masks(masks: dict[str, np.ndarray], grid: TokenGrid, base: Layout | None = None,
                      temporal_stride: int = 4) -> Layout:
    """A layout from one mask per noun (token or pixel size); with `base`, read as an edit of it (and on
    its frame stride and pixel scale)."""
    if base is not None:
        temporal_stride = base.temporal_stride
    labels = {}
    for noun, mask in masks.items():
        base_labels = base.labels.get(noun) if base is not None else None
        on_grid = mask_to_token_grid(np.asarray(mask, dtype=np.float32), grid, temporal_stride, base_labels)
        labels[noun] = edited_layout(on_grid, base_labels) if base_labels is not None else mask_to_instances(on_grid)
    if base is None:
        return Layout(grid, labels, {}, 1, temporal_stride)
    return Layout(grid, {**base.labels, **labels}, dict(base.targets), base.spatial_factor, base.temporal_stride,
                  base.provenance)
