"""Synthetic counting videos for the count testbed, their exact counter and prompt grammar.

A scene is a black video with 1–2 object categories, 1–6 objects each. Colour identifies the
category (red discs, blue squares, green triangles, yellow diamonds), objects move at constant
velocity and keep a gap of at least ``MIN_GAP_PX`` pixels in every frame, so a colour threshold
plus connected components counts every frame exactly. Rendering is vectorised torch (runs on
the GPU during training); counting is numpy + scipy.

Pixel convention: videos are float tensors ``[B, 3, F, H, W]`` in [-1, 1] (black = -1), the
layout the testbed model works in; the counter takes ``[F, H, W, 3]`` in [0, 1] (ComfyUI IMAGE).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "CATEGORIES",
    "Category",
    "CountingMetrics",
    "MAX_COUNT",
    "MIN_GAP_PX",
    "PromptVocabulary",
    "Scene",
    "VOCABULARY",
    "count_objects",
    "classify_pixels",
    "count_metrics",
    "make_prompt",
    "parse_prompt",
    "render_scenes",
    "sample_prompt_specs",
    "sample_scenes",
]

MAX_COUNT = 6
MAX_CATEGORIES_PER_SCENE = 2
MIN_GAP_PX = 2.0
RADIUS_RANGE_PX = (3.5, 7.5)
MAX_SPEED_PX_PER_FRAME = 2.0
# Components smaller than this are colour fringes of a blurry model output, not objects.
MIN_COMPONENT_AREA_PX = 4
# A pixel belongs to a category only if it is this close (RGB, [0,1] units) to its colour.
MAX_COLOUR_DISTANCE = 0.55

NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")


@dataclass(frozen=True)
class Category:
    """One object category: its colour word, shape noun and RGB colour in [0, 1]."""

    colour: str
    shape: str
    plural: str
    rgb: tuple[float, float, float]

    def noun(self, count: int) -> str:
        return self.shape if count == 1 else self.plural


CATEGORIES: tuple[Category, ...] = (
    Category("red", "disc", "discs", (1.0, 0.0, 0.0)),
    Category("blue", "square", "squares", (0.0, 0.0, 1.0)),
    Category("green", "triangle", "triangles", (0.0, 1.0, 0.0)),
    Category("yellow", "diamond", "diamonds", (1.0, 1.0, 0.0)),
)
SHAPE_IDS = {c.shape: i for i, c in enumerate(CATEGORIES)}


# --------------------------------------------------------------------------------------------
# Prompt grammar
# --------------------------------------------------------------------------------------------


class PromptVocabulary:
    """The testbed's closed word list: id 0 is padding, every other word has one id.

    A prompt is a sequence of words; word i of the prompt fills context slot i.
    """

    PAD = "<pad>"

    def __init__(self) -> None:
        words = [self.PAD, *NUMBER_WORDS, "and"]
        for category in CATEGORIES:
            words += [category.colour, category.shape, category.plural]
        self.words: tuple[str, ...] = tuple(words)
        self.ids: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def split(self, text: str) -> list[str]:
        """Lower-cases, drops punctuation, turns digits 1–6 into number words."""
        words = re.findall(r"[a-z0-9]+", text.lower())
        return [NUMBER_WORDS[int(w) - 1] if w.isdigit() and 1 <= int(w) <= MAX_COUNT else w for w in words]

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text``; raises ValueError naming any word outside the vocabulary."""
        words = self.split(text)
        unknown = sorted({w for w in words if w not in self.ids})
        if unknown:
            raise ValueError(
                f"words {unknown} are not in the testbed vocabulary; use only: "
                + ", ".join(self.words[1:])
            )
        return [self.ids[w] for w in words]


VOCABULARY = PromptVocabulary()


def make_prompt(counts: dict[int, int]) -> str:
    """Prompt for ``{category index: count}`` in the given order, e.g. "three red discs and one blue square"."""
    parts = [f"{NUMBER_WORDS[n - 1]} {CATEGORIES[c].colour} {CATEGORIES[c].noun(n)}" for c, n in counts.items()]
    return " and ".join(parts)


def parse_prompt(prompt: str) -> dict[int, int]:
    """Inverse of :func:`make_prompt`: ``{category index: count}`` in prompt order.

    Only "<number> <colour> <shape>" phrases joined by "and" are accepted.
    """
    words = VOCABULARY.split(prompt)
    counts: dict[int, int] = {}
    phrases = " ".join(words).split(" and ")
    for phrase in phrases:
        parts = phrase.split()
        if len(parts) != 3 or parts[0] not in NUMBER_WORDS:
            raise ValueError(f"cannot parse '{phrase}' in prompt '{prompt}': expected '<number> <colour> <shape>'")
        count = NUMBER_WORDS.index(parts[0]) + 1
        matches = [i for i, c in enumerate(CATEGORIES) if c.colour == parts[1] and parts[2] in (c.shape, c.plural)]
        if not matches:
            raise ValueError(f"unknown category '{parts[1]} {parts[2]}' in prompt '{prompt}'")
        if matches[0] in counts:
            raise ValueError(f"category '{parts[1]} {parts[2]}' appears twice in prompt '{prompt}'")
        counts[matches[0]] = count
    return counts


def sample_prompt_specs(n: int, seed: int) -> list[dict[int, int]]:
    """``n`` random count specifications (1–2 categories, 1–6 objects each), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        n_cat = int(rng.integers(1, MAX_CATEGORIES_PER_SCENE + 1))
        cats = rng.choice(len(CATEGORIES), size=n_cat, replace=False)
        specs.append({int(c): int(rng.integers(1, MAX_COUNT + 1)) for c in cats})
    return specs


# --------------------------------------------------------------------------------------------
# Scene sampling and rendering (torch, vectorised over the batch)
# --------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """A batch of scenes; N object slots per scene, unused slots have ``valid`` False.

    centres: [B, N, 2] (x, y) at frame 0, pixels; velocity: [B, N, 2] pixels per frame;
    radius: [B, N]; category: [B, N] long; valid: [B, N] bool.
    """

    centres: torch.Tensor
    velocity: torch.Tensor
    radius: torch.Tensor
    category: torch.Tensor
    valid: torch.Tensor

    def counts(self, n_categories: int = len(CATEGORIES)) -> torch.Tensor:
        """[B, n_categories] number of objects of each category."""
        one_hot = torch.nn.functional.one_hot(self.category.clamp(min=0), n_categories)
        return (one_hot * self.valid[..., None]).sum(1)


def _random_counts(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """[B, C] requested counts: 1–2 distinct categories per scene, 1–6 objects each."""
    n_cat = len(CATEGORIES)
    order = torch.rand(batch, n_cat, generator=generator, device=device).argsort(1)
    two = torch.rand(batch, generator=generator, device=device) < 0.5
    chosen = torch.zeros(batch, n_cat, dtype=torch.bool, device=device)
    chosen.scatter_(1, order[:, :1], True)
    chosen.scatter_(1, order[:, 1:2], two[:, None])
    numbers = torch.randint(1, MAX_COUNT + 1, (batch, n_cat), generator=generator, device=device)
    return numbers * chosen


def sample_scenes(
    counts: torch.Tensor | None,
    generator: torch.Generator,
    batch: int | None = None,
    frames: int = 5,
    size: int = 64,
    candidates: int = 96,
    device: torch.device | str = "cpu",
) -> Scene:
    """Places objects so that in every frame they stay inside the frame and keep ``MIN_GAP_PX`` apart.

    ``counts`` is [B, C] objects per category (None: random 1–2 categories, 1–6 each). Objects are
    placed one slot at a time, ``candidates`` random proposals per scene at once; a scene whose
    slot found no valid proposal is re-placed from scratch with smaller objects.
    """
    device = torch.device(device)
    if counts is None:
        if batch is None:
            raise ValueError("sample_scenes: pass counts or batch")
        counts = _random_counts(batch, generator, device)
    counts = counts.to(device)
    b = counts.shape[0]
    if (counts < 0).any() or (counts > MAX_COUNT).any():
        raise ValueError(f"sample_scenes: counts must be in 0..{MAX_COUNT}")
    n_slots = int(counts.sum(1).max().item())
    # slot -> category: categories laid out in order, slots past the total are invalid
    cum = counts.cumsum(1)
    slot_idx = torch.arange(n_slots, device=device)
    category = (slot_idx[None, :, None] >= cum[:, None, :]).sum(2)
    valid = slot_idx[None, :] < cum[:, -1:]
    category = torch.where(valid, category, torch.full_like(category, -1))

    centres = torch.zeros(b, n_slots, 2, device=device)
    velocity = torch.zeros(b, n_slots, 2, device=device)
    radius = torch.zeros(b, n_slots, device=device)
    todo = torch.ones(b, dtype=torch.bool, device=device)
    shrink = torch.ones(b, device=device)
    t = torch.arange(frames, device=device, dtype=torch.float32)
    for _attempt in range(8):
        if not todo.any():
            break
        rows = todo.nonzero().squeeze(1)
        total = counts[rows].sum(1).float()
        # crowded scenes get smaller objects so that twelve fit in a 64-pixel frame
        r_max = (RADIUS_RANGE_PX[1] * (size / 64.0) * torch.clamp(2.2 / total.sqrt(), max=1.0) * shrink[rows])
        r_min = torch.minimum(torch.full_like(r_max, RADIUS_RANGE_PX[0]), r_max)
        ok = torch.ones(len(rows), dtype=torch.bool, device=device)
        for s in range(n_slots):
            active = valid[rows, s]
            k = candidates
            r = r_min[:, None] + (r_max - r_min)[:, None] * torch.rand(len(rows), k, generator=generator, device=device)
            speed = MAX_SPEED_PX_PER_FRAME * torch.rand(len(rows), k, generator=generator, device=device).sqrt()
            angle = 2 * math.pi * torch.rand(len(rows), k, generator=generator, device=device)
            v = torch.stack([speed * angle.cos(), speed * angle.sin()], -1)
            p = torch.rand(len(rows), k, 2, generator=generator, device=device) * size
            path = p[:, :, None, :] + v[:, :, None, :] * t[None, None, :, None]  # [R,K,F,2]
            margin = r[:, :, None, None] + 1.0
            inside = ((path >= margin) & (path <= size - margin)).all(-1).all(-1)
            if s > 0:
                prev_path = centres[rows, :s, None, :] + velocity[rows, :s, None, :] * t[None, None, :, None]
                diff = path[:, :, None] - prev_path[:, None]  # [R,K,s,F,2]
                dist = diff.norm(dim=-1).amin(-1)  # [R,K,s]
                need = r[:, :, None] + radius[rows, None, :s] + MIN_GAP_PX
                clear = ((dist >= need) | ~valid[rows, None, :s]).all(-1)
            else:
                clear = torch.ones_like(inside)
            good = inside & clear
            found = good.any(1)
            pick = good.float().argmax(1)
            ar = torch.arange(len(rows), device=device)
            centres[rows, s] = p[ar, pick]
            velocity[rows, s] = v[ar, pick]
            radius[rows, s] = r[ar, pick]
            ok &= found | ~active
        todo[rows[ok]] = False
        shrink[rows[~ok]] *= 0.85
    if todo.any():
        raise RuntimeError(f"sample_scenes: could not place objects for {int(todo.sum())} scenes")
    radius = torch.where(valid, radius, torch.zeros_like(radius))
    return Scene(centres, velocity, radius, category, valid)


def _signed_distance(category: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (pixels, < 0 inside) of each category's shape of circumradius ``radius``."""
    disc = (dx**2 + dy**2).sqrt() - radius
    # square and diamond sized to about the disc's area; both fit inside the circumradius
    square = torch.maximum(dx.abs(), dy.abs()) - radius * 0.8
    diamond = (dx.abs() + dy.abs() - radius) / math.sqrt(2.0)
    # equilateral triangle pointing up, circumradius r: three half-planes at distance r/2 from the centre
    up = -dy - radius * 0.5
    right = (dx * math.sqrt(3.0) + dy) / 2 - radius * 0.5
    left = (-dx * math.sqrt(3.0) + dy) / 2 - radius * 0.5
    triangle = torch.maximum(torch.maximum(up, right), left)
    shapes = torch.stack([disc, square, triangle, diamond], 0)  # order of CATEGORIES
    return shapes.gather(0, category.clamp(min=0).expand_as(disc)[None])[0]


def render_scenes(scene: Scene, frames: int = 5, size: int = 64) -> torch.Tensor:
    """[B, 3, F, H, W] videos in [-1, 1]: black background, anti-aliased coloured shapes."""
    device = scene.centres.device
    t = torch.arange(frames, device=device, dtype=torch.float32)
    pos = scene.centres[:, :, None, :] + scene.velocity[:, :, None, :] * t[None, None, :, None]  # [B,N,F,2]
    grid = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    dx = grid[None, None, None, None, :] - pos[..., 0, None, None]  # [B,N,F,1,W]
    dy = grid[None, None, None, :, None] - pos[..., 1, None, None]  # [B,N,F,H,1]
    dx, dy = torch.broadcast_tensors(dx, dy)
    sdf = _signed_distance(scene.category[:, :, None, None, None], dx, dy, scene.radius[:, :, None, None, None])
    coverage = (0.5 - sdf).clamp(0.0, 1.0) * scene.valid[:, :, None, None, None]  # [B,N,F,H,W]
    palette = torch.tensor([c.rgb for c in CATEGORIES], device=device)  # [C,3]
    colours = palette[scene.category.clamp(min=0)]  # [B,N,3]
    rgb = torch.einsum("bnfhw,bnc->bcfhw", coverage, colours).clamp(0.0, 1.0)
    return rgb * 2.0 - 1.0


# --------------------------------------------------------------------------------------------
# Exact counter
# --------------------------------------------------------------------------------------------


def classify_pixels(frames_rgb: np.ndarray) -> np.ndarray:
    """[..., H, W, 3] RGB in [0, 1] -> [..., H, W] int: category index, or -1 for background.

    A pixel takes the nearest of black and the category colours, and a category only if within
    ``MAX_COLOUR_DISTANCE`` of it.
    """
    rgb = np.asarray(frames_rgb, dtype=np.float32)
    palette = np.array([(0.0, 0.0, 0.0)] + [c.rgb for c in CATEGORIES], dtype=np.float32)
    dist = np.linalg.norm(rgb[..., None, :] - palette, axis=-1)
    nearest = dist.argmin(-1)
    close = np.take_along_axis(dist, nearest[..., None], -1)[..., 0] <= MAX_COLOUR_DISTANCE
    return np.where((nearest > 0) & close, nearest - 1, -1)


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def count_objects(video_rgb: np.ndarray | torch.Tensor, min_area: int = MIN_COMPONENT_AREA_PX) -> np.ndarray:
    """Exact per-frame count of each category: ``[F, H, W, 3]`` in [0, 1] -> ``[F, len(CATEGORIES)]`` ints.

    Connected components (8-connected) of each category's pixels, ignoring components smaller
    than ``min_area`` pixels.
    """
    if isinstance(video_rgb, torch.Tensor):
        video_rgb = video_rgb.detach().float().cpu().numpy()
    if video_rgb.ndim != 4 or video_rgb.shape[-1] != 3:
        raise ValueError(f"count_objects expects [F, H, W, 3] RGB, got shape {tuple(video_rgb.shape)}")
    labels = classify_pixels(video_rgb)
    counts = np.zeros((labels.shape[0], len(CATEGORIES)), dtype=np.int64)
    for f in range(labels.shape[0]):
        for c in range(len(CATEGORIES)):
            components, n = ndimage.label(labels[f] == c, structure=_EIGHT_CONNECTED)
            if n == 0:
                continue
            areas = np.bincount(components.ravel(), minlength=n + 1)[1:]
            counts[f, c] = int((areas >= min_area).sum())
    return counts


def video_to_image_frames(video: torch.Tensor) -> torch.Tensor:
    """[3, F, H, W] in [-1, 1] -> [F, H, W, 3] in [0, 1] (ComfyUI IMAGE layout)."""
    return ((video.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).contiguous()


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


@dataclass
class CountingMetrics:
    """Aggregate counting metrics over a set of (requested counts, measured per-frame counts)."""

    count_acc: float
    count_acc_one_category: float
    count_acc_two_categories: float
    temporal_consistency: float
    missing_category_rate: float
    # requested count -> (accuracy, under rate, over rate, number of (prompt, noun) pairs)
    by_count: dict[int, tuple[float, float, float, int]]
    n_prompts: int


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def count_metrics(requests: list[dict[int, int]], measured: list[np.ndarray]) -> CountingMetrics:
    """CountAcc as the NUMINA evaluation scores it, plus the testbed's breakdowns.

    Per prompt, a frame scores the fraction of requested categories whose count is exact, and
    the prompt scores the mean over frames. ``by_count`` scores each (prompt, category) pair by
    its fraction of exact / under / over frames. TC: over adjacent frame pairs and requested
    categories, the fraction with equal counts. A category is missing when its count is 0 in
    every frame.
    """
    if len(requests) != len(measured):
        raise ValueError("count_metrics: requests and measured differ in length")
    prompt_acc, one_cat, two_cat, tc, missing = [], [], [], [], []
    per_count: dict[int, list[tuple[float, float, float]]] = {}
    for request, counts in zip(requests, measured):
        counts = np.asarray(counts)
        cats = list(request)
        target = np.array([request[c] for c in cats])
        got = counts[:, cats]  # [F, n_cat]
        exact = got == target
        acc = float(exact.mean())
        prompt_acc.append(acc)
        (one_cat if len(cats) == 1 else two_cat).append(acc)
        if counts.shape[0] > 1:
            tc.extend((got[1:] == got[:-1]).mean(0).tolist())
        for j, c in enumerate(cats):
            per_count.setdefault(request[c], []).append(
                (float(exact[:, j].mean()), float((got[:, j] < target[j]).mean()), float((got[:, j] > target[j]).mean()))
            )
            missing.append(float((got[:, j] == 0).all()))
    by_count = {
        k: (_mean([v[0] for v in vals]), _mean([v[1] for v in vals]), _mean([v[2] for v in vals]), len(vals))
        for k, vals in sorted(per_count.items())
    }
    return CountingMetrics(
        count_acc=_mean(prompt_acc),
        count_acc_one_category=_mean(one_cat),
        count_acc_two_categories=_mean(two_cat),
        temporal_consistency=_mean(tc),
        missing_category_rate=_mean(missing),
        by_count=by_count,
        n_prompts=len(requests),
    )
