"""Head scores against a hand computation, and the separable head wins on synthetic attention."""
import numpy as np
import pytest
import torch

from numina_core.capture import AttentionCapture, summarize_cross_attention, summarize_self_attention
from numina_core.config import preset
from numina_core.grid import TokenGrid
from numina_core.head_selection import (cross_attention_map, grayscale_maps, select_heads,
                                        self_attention_head_scores)
from devtools.synthetic_attention import cross_attention_qk, place_discs, self_attention_qk


def hand_scores(gray: np.ndarray, block_grid: int = 8, gamma: float = 0.1) -> tuple[float, float, float, float]:
    height, width = gray.shape
    s1 = gray.std(ddof=1)
    bh, bw = max(1, height // block_grid), max(1, width // block_grid)
    sums = [gray[y : y + bh, x : x + bw].sum()
            for y in range(0, height // bh * bh, bh) for x in range(0, width // bw * bw, bw)]
    s2 = np.var(sums, ddof=1)
    padded = np.pad(gray, 1)
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    kernel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    for y in range(height):
        for x in range(width):
            window = padded[y : y + 3, x : x + 3]
            gx[y, x] = (window * kernel).sum()
            gy[y, x] = (window * kernel.T).sum()
    s3 = np.sqrt(gx ** 2 + gy ** 2).mean()
    return s1, s2, s3, s1 + s2 + gamma * s3


def test_scores_equal_a_hand_computation():
    grid = TokenGrid(1, 17, 19)
    projection = torch.randn(1, 1, grid.tokens_per_frame, 3, generator=torch.Generator().manual_seed(0))
    gray = grayscale_maps(projection, grid)[0, 0].double().numpy()
    channels = projection[0, 0].double().numpy()
    normalised = (channels - channels.min(0)) / (channels.max(0) - channels.min(0))
    np.testing.assert_allclose(gray.ravel(), normalised @ [0.299, 0.587, 0.114], atol=1e-6)
    scores = self_attention_head_scores(projection, grid, preset("reference"))[0, 0].double().numpy()
    np.testing.assert_allclose(scores, hand_scores(gray), rtol=1e-5)


def test_constant_channel_becomes_one_half():
    grid = TokenGrid(1, 2, 2)
    projection = torch.tensor([[[[1.0, 5.0, 0.0], [2.0, 5.0, 1.0], [3.0, 5.0, 0.0], [4.0, 5.0, 1.0]]]])
    gray = grayscale_maps(projection, grid)[0, 0].numpy().ravel()
    expected = 0.299 * np.array([0, 1 / 3, 2 / 3, 1]) + 0.587 * 0.5 + 0.114 * np.array([0, 1, 0, 1])
    np.testing.assert_allclose(gray, expected, atol=1e-6)


def test_separable_head_is_selected_in_every_frame():
    grid = TokenGrid(3, 30, 52)
    instances = place_discs(4, grid, 4, np.random.default_rng(1))
    kinds = ["noise", "blurry", "separable", "noise"]
    qk = self_attention_qk(instances, grid, kinds, 32, seed=1)
    projections = summarize_self_attention(qk, qk, len(kinds), grid, 0)
    capture = AttentionCapture(grid, projections, {})
    selection = select_heads(capture, preset("reference"))
    assert selection.sa_heads.tolist() == [2, 2, 2]
    assert selection.sa_projection.shape == (3, grid.tokens_per_frame, 3)


def test_cross_attention_mean_and_peak_modes():
    per_head = torch.zeros(2, 3, 4)
    per_head[0, 1] = torch.tensor([0.1, 0.9, 0.0, 0.0])
    per_head[0, 2] = torch.tensor([0.5, 0.5, 0.5, 0.5])
    per_head[1, 0] = torch.tensor([0.0, 0.0, 0.7, 0.0])
    mean, mean_heads = cross_attention_map(per_head, "mean")
    torch.testing.assert_close(mean, per_head.mean(dim=1))
    assert mean_heads.tolist() == [-1, -1]
    peak, peak_heads = cross_attention_map(per_head, "peak")
    assert peak_heads.tolist() == [1, 0]
    torch.testing.assert_close(peak[0], per_head[0, 1])
    with pytest.raises(ValueError, match="'mean' or 'peak'"):
        cross_attention_map(per_head, "max")


def test_select_heads_reshapes_cross_maps_to_the_grid():
    grid = TokenGrid(2, 6, 8)
    instances = place_discs(1, grid, 1, np.random.default_rng(0))
    q, k = cross_attention_qk({"cat": instances}, grid, 2, 8, 32, {"cat": [4]})
    maps = summarize_cross_attention(q, k, 2, grid, 0, {"cat": [4]})
    capture = AttentionCapture(grid, torch.zeros(2, 2, grid.tokens_per_frame, 3), maps)
    selection = select_heads(capture, preset("paper"))
    cat = selection.cross_maps["cat"]
    assert cat.shape == (2, 6, 8)
    assert (cat[instances > 0].min() > cat[instances == 0].max()).item()
