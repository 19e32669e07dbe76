"""An artist's edits of a layout (the Layout Editor's canvas), applied by instance label.

Edits are a JSON list, applied in order; each names a noun and a frame (an int, or null for every frame):

    {"op": "add",    "id": "e1", "noun": "cats", "frame": null, "shape": "ellipse", "box": [x0, y0, x1, y1]}
    {"op": "move",   "id": "e2", "noun": "cats", "frame": 0, "target": 3,    "box": [x0, y0, x1, y1]}
    {"op": "delete", "id": "e3", "noun": "cats", "frame": null, "target": "e1"}

Boxes are in token units on the grid: token (x, y) covers [x, x+1) × [y, y+1) and belongs to a shape when
its centre does. `target` is an instance label of the incoming layout (int) or the id of an earlier add or
move (str), so identity follows the instance, never connected components: touching instances stay apart.
An add paints a new instance (label ≥ 100) over whatever lies there. A move (or resize) maps the target's
pixels from their bounding box (over the frames in scope) onto the new box and gives them a new label
≥ 100; the vacated pixels, like a deleted instance's, become −1 (removed, so guidance suppresses them)
where the instance was found in the pre-generation, and background where it had been added.
An edit whose noun, frame or target no longer exists (e.g. after re-running upstream) is skipped and
reported, never silently dropped. web/js/numina_layout_editor.js mirrors `apply_edits` to draw the result.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .grid import BACKGROUND, FIRST_ADDED, REMOVED, Layout

OPS = ("add", "move", "delete")
SHAPES = ("ellipse", "box")


@dataclass(frozen=True)
class LayoutEdit:
    op: str
    id: str
    noun: str
    frame: int | None
    target: int | str | None = None
    shape: str = "ellipse"
    box: tuple[float, float, float, float] | None = None

    def describe(self) -> str:
        where = "all frames" if self.frame is None else f"frame {self.frame}"
        what = f"instance {self.target!r}" if self.target is not None else f"{self.shape} {list(self.box or ())}"
        return f"{self.op} {what} of {self.noun!r} in {where} (edit {self.id})"


@dataclass
class EditResult:
    layout: Layout
    stale: list[str] = field(default_factory=list)
    """One line per edit that was skipped: what it referred to and why it no longer applies."""
    labels_of: dict[str, int] = field(default_factory=dict)
    """Edit id → the label its new instance carries (adds and moves that were applied)."""


def parse_edits(text: str | None) -> list[LayoutEdit]:
    """The edits JSON (a list of edit objects; empty text is no edits). Raises ValueError naming the entry."""
    if text is None or not text.strip():
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg})") from None
    if not isinstance(raw, list):
        raise ValueError("must be a JSON list of edits")
    return [_parse_edit(entry, index) for index, entry in enumerate(raw)]


def _parse_edit(entry, index: int) -> LayoutEdit:
    where = f"edit {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    op = entry.get("op")
    if op not in OPS:
        raise ValueError(f"{where} has op {op!r}; expected one of {list(OPS)}")
    noun, edit_id, frame = entry.get("noun"), str(entry.get("id", index)), entry.get("frame")
    if not isinstance(noun, str) or not noun:
        raise ValueError(f"{where} names no noun")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool)):
        raise ValueError(f"{where} has frame {frame!r}; expected an integer or null (every frame)")
    target = entry.get("target")
    if op != "add" and (isinstance(target, bool) or not isinstance(target, (int, str))):
        raise ValueError(f"{where} ({op}) needs a target: an instance label or the id of an earlier edit")
    box = None
    if op != "delete":
        box = entry.get("box")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise ValueError(f"{where} ({op}) needs a box [x0, y0, x1, y1] in token units")
        x0, y0, x1, y1 = (float(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"{where} ({op}) has an empty box {box}")
        box = (x0, y0, x1, y1)
    shape = entry.get("shape", "ellipse")
    if shape not in SHAPES:
        raise ValueError(f"{where} has shape {shape!r}; expected one of {list(SHAPES)}")
    return LayoutEdit(op, edit_id, noun, frame, target if op != "add" else None, shape, box)


def rasterize(shape: str, box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """bool [H, W]: the tokens whose centres lie in the shape; a shape smaller than a token still takes the
    token under its centre, so every add the artist sees on the grid paints something."""
    x0, y0, x1, y1 = box
    cx, cy = np.arange(width) + 0.5, np.arange(height) + 0.5
    if shape == "box":
        mask = ((cy[:, None] >= y0) & (cy[:, None] < y1)) & ((cx[None, :] >= x0) & (cx[None, :] < x1))
    else:
        mx, my, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        mask = ((cx[None, :] - mx) / rx) ** 2 + ((cy[:, None] - my) / ry) ** 2 <= 1.0
    if not mask.any():
        x, y = math.floor((x0 + x1) / 2), math.floor((y0 + y1) / 2)
        if 0 <= x < width and 0 <= y < height:
            mask[y, x] = True
    return mask


def transform_pixels(pixels: np.ndarray, source: tuple[int, int, int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """bool [H, W]: `pixels` mapped from the box `source` onto `box` (nearest token; an integer shift moves
    every pixel exactly)."""
    height, width = pixels.shape
    sx0, sy0, sx1, sy1 = source
    x0, y0, x1, y1 = box
    xs = np.floor(sx0 + (np.arange(width) + 0.5 - x0) * (sx1 - sx0) / (x1 - x0)).astype(np.int64)
    ys = np.floor(sy0 + (np.arange(height) + 0.5 - y0) * (sy1 - sy0) / (y1 - y0)).astype(np.int64)
    inside_x = (xs >= 0) & (xs < width) & (np.arange(width) + 0.5 >= x0) & (np.arange(width) + 0.5 < x1)
    inside_y = (ys >= 0) & (ys < height) & (np.arange(height) + 0.5 >= y0) & (np.arange(height) + 0.5 < y1)
    out = pixels[np.clip(ys, 0, height - 1)][:, np.clip(xs, 0, width - 1)]
    return out & inside_y[:, None] & inside_x[None, :]


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of the True pixels of a [.., H, W] mask (any leading axes)."""
    flat = mask.reshape(-1, *mask.shape[-2:]).any(axis=0)
    ys, xs = np.nonzero(flat)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def apply_edits(layout: Layout, edits: list[LayoutEdit]) -> EditResult:
    """A copy of `layout` with the edits applied in order; edits that no longer apply are reported."""
    result = EditResult(layout.copy())
    for edit in edits:
        problem = _apply(result, edit)
        if problem:
            result.stale.append(f"{edit.describe()}: {problem}")
    return result


def _apply(result: EditResult, edit: LayoutEdit) -> str | None:
    """Apply one edit to result.layout in place; the reason it cannot apply, or None."""
    layout = result.layout
    if edit.noun not in layout.labels:
        return f"the layout has no noun {edit.noun!r} (it has {layout.nouns})"
    labels = layout.labels[edit.noun]
    frames = range(layout.grid.frames) if edit.frame is None else [edit.frame]
    if edit.frame is not None and not 0 <= edit.frame < layout.grid.frames:
        return f"the layout has frames 0–{layout.grid.frames - 1}"
    height, width = layout.grid.height, layout.grid.width
    if edit.op == "add":
        mask = rasterize(edit.shape, edit.box, height, width)
        if not mask.any():
            return "the box lies outside the token grid"
        label = _next_added_label(labels)
        for f in frames:
            labels[f][mask] = label
        result.labels_of[edit.id] = label
        return None
    if isinstance(edit.target, str):
        if edit.target not in result.labels_of:
            return f"edit {edit.target!r} made no instance"
        label = result.labels_of[edit.target]
    else:
        label = edit.target
    if label <= BACKGROUND:
        return "background and removed pixels are no instance"
    present = labels[list(frames)] == label
    if not present.any():
        return "that instance no longer exists"
    vacated = REMOVED if label < FIRST_ADDED else BACKGROUND
    if edit.op == "delete":
        for f, mask in zip(frames, present):
            labels[f][mask] = vacated
        return None
    source = bounding_box(present)
    new_label = _next_added_label(labels)
    for f, mask in zip(frames, present):
        moved = transform_pixels(mask, source, edit.box)
        labels[f][mask] = vacated
        labels[f][moved] = new_label
    result.labels_of[edit.id] = new_label
    return None


def _next_added_label(labels: np.ndarray) -> int:
    """A label for a new instance: above every label of the noun, in every frame, and ≥ 100."""
    return int(max(FIRST_ADDED - 1, int(labels.max()))) + 1
