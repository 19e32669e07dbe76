"""Head selection (method.md §3): per frame, the self-attention head whose PCA map shows the most
instance structure (S = α·S1 + β·S2 + γ·S3), and per noun the cross-attention map (mean over heads, as
the released code does, or the head with the largest peak, as the paper describes)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .capture import AttentionCapture
from .config import NuminaConfig
from .grid import TokenGrid

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""BT.601 luma: how the reference turns the 3 PCA channels into one grayscale map."""


@dataclass
class HeadSelection:
    """The selected maps.

    sa_heads: int [F], the winning self-attention head of each frame.
    sa_scores: float [F, N_h, 4], columns S1, S2, S3 and the weighted total.
    sa_projection: float32 [F, HW, 3], the winning heads' PCA projections (the layout's colour features).
    cross_maps: noun → float32 [F, H, W], the cross-attention map used for the focus mask.
    cross_heads: noun → int [F], the head each map came from (−1: mean over heads).
    """

    grid: TokenGrid
    sa_heads: torch.Tensor
    sa_scores: torch.Tensor
    sa_projection: torch.Tensor
    cross_maps: dict[str, torch.Tensor]
    cross_heads: dict[str, torch.Tensor]


def minmax_channels(projection: torch.Tensor, constant_value: float | None = 0.5) -> torch.Tensor:
    """Scale each channel (last axis) of [..., N, C] to [0, 1] over the N points. A channel whose range is
    ≤ 1e-8 becomes `constant_value`, or is left as it is when that is None."""
    low = projection.amin(dim=-2, keepdim=True)
    span = projection.amax(dim=-2, keepdim=True) - low
    flat = span <= 1e-8
    scaled = (projection - low) / torch.where(flat, torch.ones_like(span), span)
    fallback = projection if constant_value is None else torch.full_like(projection, constant_value)
    return torch.where(flat, fallback, scaled)


def grayscale_maps(projections: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """[..., HW, 3] PCA projections → [..., H, W] luma of the min-max-normalised channels."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=projections.dtype)
    gray = minmax_channels(projections) @ weights
    return gray.reshape(*projections.shape[:-2], grid.height, grid.width)


def self_attention_head_scores(projections: torch.Tensor, grid: TokenGrid, config: NuminaConfig) -> torch.Tensor:
    """Scores of every (frame, head): [..., 4] with S1, S2, S3 and S = α·S1 + β·S2 + γ·S3.

    S1: unbiased std of the grayscale map. S2: unbiased variance of its sums over ⌊H/g⌋×⌊W/g⌋ blocks
    (g = sa_block_grid, map cropped to whole blocks). S3: mean Sobel gradient magnitude, zero padding.
    """
    gray = grayscale_maps(projections.float(), grid)
    lead = gray.shape[:-2]
    flat = gray.reshape(-1, 1, grid.height, grid.width)
    s1 = flat.flatten(1).std(dim=1, unbiased=True)
    block_h = max(1, grid.height // config.sa_block_grid)
    block_w = max(1, grid.width // config.sa_block_grid)
    cropped = flat[..., : grid.height // block_h * block_h, : grid.width // block_w * block_w]
    block_sums = torch.nn.functional.avg_pool2d(cropped, (block_h, block_w)) * (block_h * block_w)
    s2 = block_sums.flatten(1).var(dim=1, unbiased=True)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]
    gradients = torch.nn.functional.conv2d(flat, kernels, padding=1)
    s3 = gradients.pow(2).sum(dim=1).sqrt().flatten(1).mean(dim=1)
    total = config.sa_alpha * s1 + config.sa_beta * s2 + config.sa_gamma * s3
    return torch.stack([s1, s2, s3, total], dim=-1).reshape(*lead, 4)


def cross_attention_map(per_head: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """[F, N_h, HW] per-head maps → ([F, HW] map, [F] head index or −1 for the mean)."""
    if mode == "mean":
        return per_head.mean(dim=1), torch.full((per_head.shape[0],), -1, dtype=torch.long)
    if mode == "peak":
        heads = per_head.amax(dim=2).argmax(dim=1)
        return per_head[torch.arange(per_head.shape[0]), heads], heads
    raise ValueError(f"cross_attention_head_mode must be 'mean' or 'peak', not {mode!r}")


def select_heads(capture: AttentionCapture, config: NuminaConfig) -> HeadSelection:
    """Choose the self-attention head of every frame and each noun's cross-attention maps.
    Ties between heads keep the lower head index (argmax returns the first maximum)."""
    grid = capture.grid
    scores = self_attention_head_scores(capture.projections, grid, config)
    sa_heads = scores[..., 3].argmax(dim=1)
    projection = capture.projections[torch.arange(grid.frames), sa_heads]
    cross_maps, cross_heads = {}, {}
    for noun, per_head in capture.cross_maps.items():
        chosen, heads = cross_attention_map(per_head, config.cross_attention_head_mode)
        cross_maps[noun] = chosen.reshape(grid.frames, grid.height, grid.width)
        cross_heads[noun] = heads
    return HeadSelection(grid, sa_heads, scores, projection, cross_maps, cross_heads)
