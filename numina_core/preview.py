"""Previews and editable forms of layouts and attention maps.

* colour-coded RGB frames per noun (each instance its own colour; removed instances dark grey; added ones
  outlined in white);
* heat maps of cross-attention and RGB images of the PCA maps;
* layout ⇄ binary masks per noun: the mask marks the instances; its connected components become instances;
* token grid → pixel size (×spatial factor, nearest) and latent frames → video frames (latent frame 0 is
  video frame 0, every later latent frame covers 4 video frames).
"""
from __future__ import annotations

import colorsys

import numpy as np
from scipy import ndimage

from .grid import BACKGROUND, FIRST_ADDED, MAX_DETECTED, REMOVED, Layout, TokenGrid

REMOVED_COLOUR = np.array([0.25, 0.25, 0.25], dtype=np.float32)
OUTLINE_COLOUR = np.array([1.0, 1.0, 1.0], dtype=np.float32)


def instance_colour(label: int) -> np.ndarray:
    """A bright colour per label, far apart for consecutive labels (golden-ratio hue steps)."""
    hue = (label * 0.61803398875) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, 0.85, 1.0), dtype=np.float32)


def layout_frames_rgb(labels: np.ndarray) -> np.ndarray:
    """[F, H, W] label maps → float32 RGB [F, H, W, 3] in 0..1 on the token grid."""
    rgb = np.zeros(labels.shape + (3,), dtype=np.float32)
    rgb[labels == REMOVED] = REMOVED_COLOUR
    for label in np.unique(labels[labels > 0]):
        rgb[labels == label] = instance_colour(int(label) - (FIRST_ADDED - 1 if label >= FIRST_ADDED else 0))
    return rgb


def added_outline(labels: np.ndarray) -> np.ndarray:
    """bool [F, H, W]: border pixels of added instances (so the preview tells added from detected)."""
    added = labels >= FIRST_ADDED
    eroded = ndimage.binary_erosion(added, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                               [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                               [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool))
    return added & ~eroded


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of [F, H, W(, C)] by an integer factor on H and W."""
    return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)


def video_frame_count(latent_frames: int, temporal_stride: int = 4) -> int:
    """Video frames of a Wan latent with `latent_frames` frames: 1 + 4·(F − 1)."""
    return 1 + temporal_stride * (latent_frames - 1)


def latent_to_video_frames(frames: np.ndarray, temporal_stride: int = 4) -> np.ndarray:
    """Repeat latent frames so they line up with the video: frame 0 once, every later one 4 times."""
    repeats = np.full(len(frames), temporal_stride)
    repeats[0] = 1
    return np.repeat(frames, repeats, axis=0)


def video_to_latent_frames(frames: np.ndarray, temporal_stride: int = 4) -> np.ndarray:
    """Inverse of latent_to_video_frames: video frame 0, then the first frame of every group of 4."""
    return frames[np.r_[0, np.arange(1, len(frames), temporal_stride)]]


def layout_preview(labels: np.ndarray, spatial_factor: int = 1, temporal_stride: int | None = None) -> np.ndarray:
    """Colour-coded preview [frames, H·s, W·s, 3] of one noun's layout, added instances outlined; one frame
    per latent frame, or per video frame when `temporal_stride` is given."""
    rgb = layout_frames_rgb(labels)
    outline = added_outline(labels)
    rgb = upscale_frames(rgb, spatial_factor)
    outline = upscale_frames(outline, spatial_factor)
    if spatial_factor >= 4:
        # Outline at pixel size: one token's border would hide small instances entirely.
        import cv2  # lazily: a broken OpenCV install must not stop the pack from loading

        added = upscale_frames(labels >= FIRST_ADDED, spatial_factor)
        outline = np.stack([cv2.morphologyEx(a.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
                            for a in added]) & added
    rgb[outline] = OUTLINE_COLOUR
    return rgb if temporal_stride is None else latent_to_video_frames(rgb, temporal_stride)


def heatmap_rgb(maps: np.ndarray) -> np.ndarray:
    """[F, H, W] non-negative maps → RGB [F, H, W, 3] (per-frame max-normalised, 'inferno' colours)."""
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    scaled = np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0)
    gray = np.clip(scaled * 255, 0, 255).astype(np.uint8)
    import cv2  # lazily: a broken OpenCV install must not stop the pack from loading

    coloured = np.stack([cv2.applyColorMap(g, cv2.COLORMAP_INFERNO) for g in gray])
    return coloured[..., ::-1].astype(np.float32) / 255.0


def pca_rgb(projection: np.ndarray, grid: TokenGrid) -> np.ndarray:
    """[F, HW, 3] PCA projections → RGB [F, H, W, 3], each component min-max scaled per frame."""
    low = projection.min(axis=1, keepdims=True)
    span = projection.max(axis=1, keepdims=True) - low
    scaled = np.where(span > 1e-8, (projection - low) / np.where(span > 1e-8, span, 1), 0.5)
    return scaled.reshape(grid.frames, grid.height, grid.width, 3).astype(np.float32)


def layout_to_mask(labels: np.ndarray) -> np.ndarray:
    """float32 [F, H, W] mask of one noun's instances (detected and added; removed ones are not)."""
    return (labels > 0).astype(np.float32)


def mask_to_token_grid(mask: np.ndarray, grid: TokenGrid, temporal_stride: int = 4) -> np.ndarray:
    """A mask at token or pixel size (latent or video frame count) → bool [F, H, W] on the token grid.

    Pixel-size masks are area-averaged to tokens (a token is set when at least half of it is);
    video-length masks keep the first video frame of every latent frame."""
    if mask.ndim != 3:
        raise ValueError(f"a mask must be [frames, height, width], got shape {tuple(mask.shape)}")
    video_frames = video_frame_count(grid.frames, temporal_stride)
    if mask.shape[0] == video_frames and mask.shape[0] != grid.frames:
        mask = video_to_latent_frames(mask, temporal_stride)
    if mask.shape[0] == 1 and grid.frames > 1:
        mask = np.repeat(mask, grid.frames, axis=0)
    if mask.shape[0] != grid.frames:
        raise ValueError(f"mask has {mask.shape[0]} frames; the layout needs {grid.frames} latent frames, "
                         f"{video_frames} video frames, or 1 frame for all")
    height, width = mask.shape[1:]
    if (height, width) != (grid.height, grid.width):
        if height % grid.height or width % grid.width or height // grid.height != width // grid.width:
            raise ValueError(f"mask is {height}×{width}; it must be the token grid {grid.height}×{grid.width} "
                             f"or a whole multiple of it (the video's pixel size)")
        import cv2  # lazily: a broken OpenCV install must not stop the pack from loading

        mask = np.stack([cv2.resize(m.astype(np.float32), (grid.width, grid.height), interpolation=cv2.INTER_AREA)
                         for m in mask])
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


def edited_layout(mask: np.ndarray, base: np.ndarray) -> np.ndarray:
    """An artist-edited instance mask (bool [F, H, W]) read against the layout it was drawn from.

    Components that overlap an instance of `base` stay detected instances (1…); new components are
    additions (100…); base instances the mask no longer covers are removals (−1).
    """
    components = mask_to_instances(mask)
    labels = np.zeros(mask.shape, dtype=np.int32)
    for f in range(len(mask)):
        detected, added = 0, 0
        for label in range(1, int(components[f].max()) + 1):
            region = components[f] == label
            if (base[f][region] > 0).any():
                detected += 1
                labels[f][region] = detected
            else:
                labels[f][region] = FIRST_ADDED + added
                added += 1
        dropped = (base[f] > 0) & ~mask[f]
        for label in np.unique(base[f][dropped]):
            if not (mask[f] & (base[f] == label)).any():
                labels[f][(base[f] == label) & (labels[f] == BACKGROUND)] = REMOVED
    return labels


def layout_from_masks(masks: dict[str, np.ndarray], grid: TokenGrid, base: Layout | None = None,
                      temporal_stride: int = 4) -> Layout:
    """A layout from one mask per noun (token or pixel size); with `base`, read as an edit of it (and on
    its frame stride and pixel scale)."""
    if base is not None:
        temporal_stride = base.temporal_stride
    labels = {}
    for noun, mask in masks.items():
        on_grid = mask_to_token_grid(np.asarray(mask), grid, temporal_stride)
        if base is not None and noun in base.labels:
            labels[noun] = edited_layout(on_grid, base.labels[noun])
        else:
            labels[noun] = mask_to_instances(on_grid)
    if base is None:
        return Layout(grid, labels, {}, 1, temporal_stride)
    return Layout(grid, labels, dict(base.targets), base.spatial_factor, base.temporal_stride)
