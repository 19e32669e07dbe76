"""The capture reducer equals a naive float64 computation and never depends on its chunking."""
import numpy as np
import pytest
import torch

from numina_core.capture import rank3_pca_projection, summarize_cross_attention, summarize_self_attention
from numina_core.grid import TokenGrid

GRID = TokenGrid(3, 4, 5)
HEADS, HEAD_DIM = 2, 8


def naive_intra_frame_pca(q: np.ndarray, k: np.ndarray, grid: TokenGrid, heads: int) -> np.ndarray:
    """Full spatio-temporal softmax in float64, its diagonal block per frame renormalised, centred, SVD."""
    length, width = q.shape
    d = width // heads
    out = np.zeros((grid.frames, heads, grid.tokens_per_frame, 3))
    hw = grid.tokens_per_frame
    for h in range(heads):
        qh, kh = q[:, h * d : (h + 1) * d], k[:, h * d : (h + 1) * d]
        logits = qh @ kh.T / np.sqrt(d)
        full = np.exp(logits - logits.max(axis=1, keepdims=True))
        full /= full.sum(axis=1, keepdims=True)
        for f in range(grid.frames):
            block = full[f * hw : (f + 1) * hw, f * hw : (f + 1) * hw]
            block = block / block.sum(axis=1, keepdims=True)
            centred = block - block.mean(axis=0, keepdims=True)
            u, s, _ = np.linalg.svd(centred)
            out[f, h] = u[:, :3] * s[:3]
    return out


def align_signs(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    signs = np.sign((actual * expected).sum(axis=-2, keepdims=True))
    return actual * np.where(signs == 0, 1, signs)


@pytest.fixture
def qk():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, GRID.tokens, HEADS * HEAD_DIM, generator=gen) * 1.5
    k = torch.randn(2, GRID.tokens, HEADS * HEAD_DIM, generator=gen) * 1.5
    return q, k


def test_self_attention_summary_equals_float64_reference(qk):
    q, k = qk
    row = 1
    # With as many probes as columns the range finder spans everything: the result is the exact PCA.
    actual = summarize_self_attention(q, k, HEADS, GRID, row, oversamples=GRID.tokens_per_frame).double().numpy()
    expected = naive_intra_frame_pca(q[row].double().numpy(), k[row].double().numpy(), GRID, HEADS)
    np.testing.assert_allclose(align_signs(actual, expected), expected, atol=2e-5)


def test_default_randomized_pca_captures_the_exact_top3_variance():
    from devtools.synthetic_attention import place_discs, self_attention_qk

    grid = TokenGrid(1, 20, 26)
    instances = place_discs(4, grid, 3, np.random.default_rng(0))
    qk = self_attention_qk(instances, grid, ["separable"], 32, seed=0)
    captured = (summarize_self_attention(qk, qk, 1, grid, 0).double() ** 2).sum().item()
    q = qk[0].double().numpy()
    logits = q @ q.T / np.sqrt(32)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    centred = probs - probs.mean(axis=0, keepdims=True)
    top3 = np.sort(np.linalg.eigvalsh(centred @ centred.T))[-3:].sum()
    # Synthetic spectra are nearly flat (components may rotate); the captured variance may not drop.
    assert 0.99 * top3 <= captured <= (1 + 1e-6) * top3


def test_self_attention_summary_does_not_depend_on_chunking(qk):
    q, k = qk
    one_frame = summarize_self_attention(q, k, HEADS, GRID, 0, chunk_bytes=1)
    all_frames = summarize_self_attention(q, k, HEADS, GRID, 0, chunk_bytes=1 << 30)
    torch.testing.assert_close(one_frame, all_frames, atol=1e-5, rtol=1e-4)


def test_cross_attention_summary_equals_float64_reference(qk):
    q, _ = qk
    gen = torch.Generator().manual_seed(5)
    text = torch.randn(2, 16, HEADS * HEAD_DIM, generator=gen)
    nouns = {"cats": [2, 3], "dog": [7]}
    actual = summarize_cross_attention(q, text, HEADS, GRID, 0, nouns)
    qd, kd = q[0].double().numpy(), text[0].double().numpy()
    for h in range(HEADS):
        sl = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        logits = qd[:, sl] @ kd[:, sl].T / np.sqrt(HEAD_DIM)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for noun, cols in nouns.items():
            expected = probs[:, cols].mean(axis=1).reshape(GRID.frames, -1)
            np.testing.assert_allclose(actual[noun][:, h].numpy(), expected, atol=1e-6)


def test_cross_attention_rejects_columns_outside_the_text():
    q = torch.zeros(1, GRID.tokens, HEADS * HEAD_DIM)
    text = torch.zeros(1, 8, HEADS * HEAD_DIM)
    with pytest.raises(ValueError, match="outside the 8 text slots"):
        summarize_cross_attention(q, text, HEADS, GRID, 0, {"cats": [9]})


def test_rank3_projection_of_a_rank_one_matrix_has_one_nonzero_component():
    column = torch.arange(6, dtype=torch.float32)[:, None]
    matrix = (column @ torch.ones(1, 6))[None].clone()
    projection = rank3_pca_projection(matrix, power_iterations=2, oversamples=2)
    assert projection.shape == (1, 6, 3)
    assert projection[0, :, 0].abs().max() > 1
    assert projection[0, :, 1:].abs().max() < 1e-4


def test_rank3_projection_equals_the_exact_pca_and_a_constant_map_gives_zeros():
    """The range finder's orthonormalisation (CholeskyQR2) keeps the exact rank-3 PCA on matrices with a clear
    spectral gap, and a map whose rows are all equal (nothing left after centring) gives zeros, not a failure."""
    gen = torch.Generator().manual_seed(3)
    left = torch.linalg.qr(torch.randn(4, 40, 40, generator=gen, dtype=torch.float64)).Q
    right = torch.linalg.qr(torch.randn(4, 30, 30, generator=gen, dtype=torch.float64)).Q
    spectrum = torch.tensor([9.0, 5.0, 3.0] + [0.3 * 0.8 ** i for i in range(27)], dtype=torch.float64)
    matrices = left[:, :, :30] @ torch.diag_embed(spectrum.expand(4, -1)) @ right.transpose(1, 2)
    projection = rank3_pca_projection(matrices.float().clone(), power_iterations=4, oversamples=8,
                                      generator=torch.Generator().manual_seed(0))
    centred = matrices - matrices.mean(dim=1, keepdim=True)
    u, s, _ = torch.linalg.svd(centred)
    exact = u[..., :3] * s[:, None, :3]
    exact = exact * torch.sign(torch.gather(exact, 1, exact.abs().argmax(dim=1, keepdim=True)))
    torch.testing.assert_close(projection.double(), exact, atol=1e-4, rtol=1e-4)
    constant = torch.ones(2, 12, 12) / 12
    flat = rank3_pca_projection(constant, power_iterations=4, oversamples=8)
    assert torch.isfinite(flat).all() and flat.abs().max() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_self_attention_summary_on_cuda_matches_cpu(qk):
    q, k = qk
    cpu = summarize_self_attention(q, k, HEADS, GRID, 0, oversamples=GRID.tokens_per_frame)
    gpu = summarize_self_attention(q.cuda(), k.cuda(), HEADS, GRID, 0, oversamples=GRID.tokens_per_frame)
    torch.testing.assert_close(align_signs(gpu.numpy(), cpu.numpy()), cpu.numpy(), atol=1e-4, rtol=1e-3)
