"""Capture reducer: from one block's attention inputs to the compact per-head summaries that head
selection and layout need (method.md §2–§3), without ever materialising the full L×L attention.

Self-attention: for every frame f and head h, the intra-frame attention A = softmax(Q_f K_fᵀ/√d) over the
HW keys of the same frame (the reference's renormalised diagonal block), column-centred and reduced to
its rank-3 PCA projection P = U·S (HW×3). The three head scores and the layout's colour features are
all functions of P, so P is all that is kept: F·N_h·HW·3 floats (4.7 MB for Wan2.1-1.3B at 480p).

Cross-attention: for every noun, frame and head, the softmax probability over all text slots, averaged
over the noun's token columns: r_h(p) (method.md §2), kept per head so that the head can be chosen later.

*(deviation)* The reference replaces block ℓ*'s self-attention output at t* by this intra-frame attention;
here the block's output is left untouched (phase 1 stops there anyway, and the pre-generation preview is
the model's own prediction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .grid import SamplingProvenance, TokenGrid, VideoGeometry

DEFAULT_CHUNK_BYTES = 512 * 1024 * 1024
"""Working-memory budget of one chunk of intra-frame attention matrices."""


@dataclass
class AttentionCapture:
    """What phase 1 keeps from block ℓ* at step t*, on the CPU.

    projections: float32 [F, N_h, HW, 3], rank-3 PCA projection of each head's intra-frame attention.
    cross_maps: noun → float32 [F, N_h, HW], token-averaged cross-attention probabilities per head.
    geometry places the grid on the video; provenance is the run it was captured in (None in tests that
    build captures by hand).
    """

    grid: TokenGrid
    projections: torch.Tensor
    cross_maps: dict[str, torch.Tensor]
    step: int = -1
    block: int = -1
    sigma: float = float("nan")
    geometry: VideoGeometry = field(default_factory=VideoGeometry)
    provenance: SamplingProvenance | None = None

    @classmethod
    def empty(cls, grid: TokenGrid, step: int, block: int, geometry: VideoGeometry,
              provenance: SamplingProvenance | None = None) -> "AttentionCapture":
        """The capture of a prompt with no counted noun: no heads, no maps."""
        return cls(grid, torch.zeros(grid.frames, 0, grid.tokens_per_frame, 3), {}, step, block,
                   geometry=geometry, provenance=provenance)

    @property
    def heads(self) -> int:
        return int(self.projections.shape[1])


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[L, N_h·d] → [N_h, L, d] (the layout attention functions receive is [B, L, N_h·d])."""
    length, width = x.shape
    return x.view(length, heads, width // heads).transpose(0, 1)


def _orthonormalise(y: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of each y [n, R, k] (k small), by Cholesky QR twice in float64
    (CholeskyQR2): one batched k×k Cholesky factorisation and triangular solve per pass. cuSOLVER's batched
    Householder QR took 22–41 ms a call at the 5B capture's shapes (this: 0.6 ms), about 0.9 plain steps of a
    6-step phase 1 (docs/measurements.md). The ridge keeps a rank-deficient y (tiny grids, a constant attention map)
    factorisable; its null directions then come out near zero instead of as arbitrary unit vectors, which the
    projection never uses."""
    basis = y.double()
    for _ in range(2):
        gram = basis.transpose(1, 2) @ basis
        ridge = 1e-12 * gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-300)
        lower = torch.linalg.cholesky(gram + ridge[:, None, None] * torch.eye(gram.shape[-1], dtype=gram.dtype,
                                                                                device=gram.device))
        basis = torch.linalg.solve_triangular(lower, basis.transpose(1, 2), upper=False).transpose(1, 2)
    return basis.to(y.dtype)


def rank3_pca_projection(matrices: torch.Tensor, power_iterations: int, oversamples: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Rank-3 PCA projection U·S of each column-centred matrix in a batch [n, R, C] → [n, R, 3].

    Randomized range finder (Halko et al.) with power iterations, then an exact eigendecomposition of the
    small (3+p)×(3+p) Gram matrix instead of a batched SVD (cheaper on GPU). Component signs are fixed so
    that each component's largest-magnitude entry is positive (the PCA sign is otherwise arbitrary).
    The matrices are centred in place.
    """
    matrices -= matrices.mean(dim=1, keepdim=True)
    n, _, cols = matrices.shape
    rank = min(3 + oversamples, cols)
    probe = torch.randn(cols, rank, generator=generator, dtype=torch.float32, device="cpu")
    y = matrices @ probe.to(matrices.device, matrices.dtype)
    for _ in range(power_iterations):
        y = _orthonormalise(y)
        z = _orthonormalise(matrices.transpose(1, 2) @ y)
        y = matrices @ z
    q = _orthonormalise(y)
    small = q.transpose(1, 2) @ matrices
    gram = small @ small.transpose(1, 2)
    eigenvalues, eigenvectors = torch.linalg.eigh(gram.double())
    top_vectors = eigenvectors[..., -3:].flip(-1).to(matrices.dtype)
    singular = eigenvalues[..., -3:].flip(-1).clamp_min(0).sqrt().to(matrices.dtype)
    projection = (q @ top_vectors) * singular[:, None, :]
    if projection.shape[-1] < 3:
        projection = torch.nn.functional.pad(projection, (0, 3 - projection.shape[-1]))
    peak = projection.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(torch.gather(projection, 1, peak))
    return projection * torch.where(signs == 0, torch.ones_like(signs), signs)


def summarize_self_attention(q: torch.Tensor, k: torch.Tensor, heads: int, grid: TokenGrid, row: int, *,
                             power_iterations: int = 4, oversamples: int = 8,
                             chunk_bytes: int = DEFAULT_CHUNK_BYTES, seed: int = 0) -> torch.Tensor:
    """Rank-3 PCA projections of every head's intra-frame self-attention for batch row `row`.

    q, k: [B, L, N_h·d] as the attention function receives them (after QK-norm and RoPE).
    Returns float32 [F, N_h, HW, 3] on the CPU. Works frame-chunk by frame-chunk on q's device.
    """
    if q.shape[1] != grid.tokens:
        raise ValueError(f"self-attention has {q.shape[1]} tokens, the grid {grid} has {grid.tokens}")
    hw = grid.tokens_per_frame
    qh = split_heads(q[row], heads)
    kh = split_heads(k[row], heads)
    head_dim = qh.shape[-1]
    scale = 1.0 / math.sqrt(head_dim)
    per_frame_bytes = heads * hw * hw * 4 * 3  # probabilities + matmul temporaries
    frames_per_chunk = max(1, chunk_bytes // per_frame_bytes)
    generator = torch.Generator().manual_seed(seed)
    out = torch.empty(grid.frames, heads, hw, 3, dtype=torch.float32)
    for start in range(0, grid.frames, frames_per_chunk):
        stop = min(grid.frames, start + frames_per_chunk)
        tokens = slice(start * hw, stop * hw)
        qc = qh[:, tokens].float().reshape(heads, stop - start, hw, head_dim).transpose(0, 1)
        kc = kh[:, tokens].float().reshape(heads, stop - start, hw, head_dim).transpose(0, 1)
        qc = qc.reshape(-1, hw, head_dim)
        kc = kc.reshape(-1, hw, head_dim)
        probabilities = torch.softmax(torch.bmm(qc, kc.transpose(1, 2)).mul_(scale), dim=-1)
        projection = rank3_pca_projection(probabilities, power_iterations, oversamples, generator)
        out[start:stop] = projection.reshape(stop - start, heads, hw, 3).cpu()
        del probabilities, projection
    return out


def summarize_cross_attention(q: torch.Tensor, k: torch.Tensor, heads: int, grid: TokenGrid, row: int,
                              noun_tokens: dict[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """Token-averaged cross-attention probabilities per noun, frame and head for batch row `row`.

    q: [B, L, N_h·d] video queries; k: [B, L_text, N_h·d] text keys (all slots take part in the softmax,
    padding included, as in Wan). Returns noun → float32 [F, N_h, HW] on the CPU. One head at a time,
    so the extra memory is one [L, L_text] probability matrix.
    """
    if q.shape[1] != grid.tokens:
        raise ValueError(f"cross-attention has {q.shape[1]} video tokens, the grid {grid} has {grid.tokens}")
    text_length = k.shape[1]
    for noun, columns in noun_tokens.items():
        if not columns or min(columns) < 0 or max(columns) >= text_length:
            raise ValueError(f"token columns {list(columns)} of {noun!r} are outside the {text_length} text slots")
    qh = split_heads(q[row], heads)
    kh = split_heads(k[row], heads)
    scale = 1.0 / math.sqrt(qh.shape[-1])
    index = {noun: torch.as_tensor(list(cols), device=q.device) for noun, cols in noun_tokens.items()}
    out = {noun: torch.empty(grid.frames, heads, grid.tokens_per_frame) for noun in noun_tokens}
    for h in range(heads):
        probabilities = torch.softmax((qh[h].float() @ kh[h].float().T).mul_(scale), dim=-1)
        for noun, cols in index.items():
            out[noun][:, h] = probabilities[:, cols].mean(dim=1).view(grid.frames, -1).cpu()
        del probabilities
    return out
