"""Synthetic attention with known instance structure, for testing capture, head selection and layout.

Instances are discs of tokens that attend to each other (a shared random direction per instance in the
separable head); the background attends to itself. A 'blurry' head mixes each token's direction with
its neighbours' over a wide Gaussian, and a 'noise' head has no structure. Cross-attention queries of
a noun's instances point at the noun's text keys."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from numina_core.grid import TokenGrid


def place_discs(count: int, grid: TokenGrid, radius: int, rng: np.random.Generator, gap: int = 2) -> np.ndarray:
    """int32 [F, H, W]: `count` non-overlapping discs (labels 1..count), same positions in every frame,
    at least `gap` tokens apart."""
    ys, xs = np.mgrid[0 : grid.height, 0 : grid.width]
    frame = np.zeros((grid.height, grid.width), dtype=np.int32)
    placed = 0
    for _ in range(10_000):
        if placed == count:
            break
        cy = rng.integers(radius, grid.height - radius)
        cx = rng.integers(radius, grid.width - radius)
        disc = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius * radius
        grown = ndimage.binary_dilation(disc, iterations=gap)
        if (frame[grown] > 0).any():
            continue
        placed += 1
        frame[disc] = placed
    if placed != count:
        raise RuntimeError(f"could not place {count} discs of radius {radius} on {grid}")
    return np.repeat(frame[None], grid.frames, axis=0)


INSTANCE_WEIGHT = 0.7
POSITION_WEIGHT = 1.0


def _unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def positional_features(grid: TokenGrid, dim: int, rng: np.random.Generator, wavelength: float = 40.0) -> np.ndarray:
    """[HW, dim] random Fourier features of (y, x) with a long wavelength: nearby tokens get similar ones."""
    ys, xs = np.mgrid[0 : grid.height, 0 : grid.width]
    positions = np.stack([ys.ravel(), xs.ravel()], axis=1).astype(np.float64)
    frequencies = rng.standard_normal((2, dim // 2)) * (2 * np.pi / wavelength)
    phases = positions @ frequencies
    return np.concatenate([np.cos(phases), np.sin(phases)], axis=1) / np.sqrt(dim / 2)


def head_embeddings(kind: str, groups: np.ndarray, grid: TokenGrid, head_dim: int, rng: np.random.Generator,
                    sharpness: float = 12.0) -> np.ndarray:
    """[L, d] query = key embeddings of one head; q·k/√d is about `sharpness` within a group."""
    scale = np.sqrt(sharpness * np.sqrt(head_dim))
    flat = groups.reshape(grid.frames, -1)
    out = np.zeros((grid.frames, grid.tokens_per_frame, head_dim))
    for f in range(grid.frames):
        if kind == "noise":
            out[f] = 0.3 * rng.standard_normal((grid.tokens_per_frame, head_dim))
            continue
        directions = _unit_vectors(int(flat[f].max()) + 1, head_dim, rng)[flat[f]]
        if kind == "separable":
            # Foreground tokens share one direction (one noun), each instance adds its own, and smooth
            # positional features make attention local, as in real heads: the PCA then shows foreground
            # against background with colours that vary with position, not amplified noise.
            foreground = _unit_vectors(2, head_dim, rng)[(flat[f] > 0).astype(int)]
            directions = foreground + INSTANCE_WEIGHT * directions + POSITION_WEIGHT * positional_features(grid, head_dim, rng)
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        elif kind == "blurry":
            field = directions.reshape(grid.height, grid.width, head_dim)
            field = ndimage.gaussian_filter(field, sigma=(6, 6, 0)) + 0.05 * rng.standard_normal(field.shape)
            directions = field.reshape(-1, head_dim)
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        else:
            raise ValueError(kind)
        out[f] = scale * directions + 0.05 * rng.standard_normal(directions.shape)
    return out.reshape(grid.tokens, head_dim)


def self_attention_qk(groups: np.ndarray, grid: TokenGrid, head_kinds: list[str], head_dim: int,
                      seed: int = 0) -> torch.Tensor:
    """[1, L, N_h·d] (used as both q and k) with one head per entry of head_kinds."""
    rng = np.random.default_rng(seed)
    heads = [head_embeddings(kind, groups, grid, head_dim, rng) for kind in head_kinds]
    return torch.from_numpy(np.concatenate(heads, axis=1)[None]).float()


def cross_attention_qk(instance_maps: dict[str, np.ndarray], grid: TokenGrid, heads: int, head_dim: int,
                       text_length: int, noun_columns: dict[str, list[int]], seed: int = 0,
                       strength: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Video queries [1, L, N_h·d] and text keys [1, L_text, N_h·d]: a noun's instance pixels point at
    its text keys; everything else is weak noise."""
    rng = np.random.default_rng(seed + 1)
    width = heads * head_dim
    keys = 0.1 * rng.standard_normal((text_length, width))
    queries = 0.1 * rng.standard_normal((grid.tokens, width))
    for noun, maps in instance_maps.items():
        direction = _unit_vectors(1, width, rng)[0] * np.sqrt(strength * np.sqrt(head_dim))
        keys[noun_columns[noun]] = direction
        queries[maps.reshape(-1) > 0] += direction
    return torch.from_numpy(queries[None]).float(), torch.from_numpy(keys[None]).float()
