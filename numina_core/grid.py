"""The token grid and the layout container shared by every stage of the method."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BACKGROUND = 0
REMOVED = -1
FIRST_ADDED = 100
"""Layout label convention of the reference: 0 background, 1–99 detected, −1 removed, ≥ 100 added."""
MAX_DETECTED = FIRST_ADDED - 1


@dataclass(frozen=True)
class TokenGrid:
    """The DiT patch grid of one video: F latent frames of H×W tokens, flattened frame-major,
    row-major (token (f, y, x) has index f·H·W + y·W + x, as Wan's patch embedding flattens)."""

    frames: int
    height: int
    width: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def tokens(self) -> int:
        return self.frames * self.tokens_per_frame

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.frames, self.height, self.width)

    def __str__(self) -> str:
        return f"{self.frames}×{self.height}×{self.width}"


@dataclass(frozen=True)
class VideoGeometry:
    """How the token grid lies on the decoded video: `spatial_factor` pixels per token side (VAE stride ×
    patch size) and `temporal_stride` video frames per latent frame after the first."""

    spatial_factor: int = 1
    temporal_stride: int = 1


@dataclass(frozen=True)
class FinishedRun:
    """A finished latent video and a fingerprint of the latent it was sampled from."""

    samples: object
    """The finished latent (a torch tensor, as the sampler returned it)."""
    source: tuple
    """(shape, sum, sum of squares) of the input latent: another input must not get this video."""


@dataclass(frozen=True)
class SamplingProvenance:
    """The run a capture came from: what the guided run must repeat to start from the same noise and
    steer the same tokens. `capture_id` tells captures of the same settings apart (e.g. re-runs)."""

    prompt: str
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    capture_id: str = ""
    finished: "FinishedRun | None" = field(default=None, compare=False, repr=False)
    """The video phase 1 sampled to the end because the refined layout needed no correction (None: it stopped
    at the capture). A guided run of these settings with nothing to correct returns it instead of sampling again."""

    def mismatches(self, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str) -> list[str]:
        """Names and values of the sampling settings that differ from this run's."""
        ours = {"seed": self.seed, "steps": self.steps, "cfg": self.cfg, "sampler_name": self.sampler_name,
                "scheduler": self.scheduler}
        theirs = {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler_name, "scheduler": scheduler}
        return [f"{name} {theirs[name]!r} (captured with {ours[name]!r})" for name in ours if ours[name] != theirs[name]]


@dataclass
class Layout:
    """Per-noun instance label maps on the token grid, one int32 array [F, H, W] per noun.

    Labels: 0 background, 1–99 instances found in the pre-generation, −1 instances to remove,
    ≥ 100 instances to add. `targets` are the requested counts the layout is (or will be) refined to.
    `spatial_factor` (pixels per token side) and `temporal_stride` (video frames per latent frame after
    the first) place the layout on the video for previews and masks. `provenance` is the capture's run,
    when the layout came from one.
    """

    grid: TokenGrid
    labels: dict[str, np.ndarray]
    targets: dict[str, int] = field(default_factory=dict)
    spatial_factor: int = 1
    temporal_stride: int = 1
    provenance: SamplingProvenance | None = None

    def __post_init__(self) -> None:
        for noun, array in self.labels.items():
            if tuple(array.shape) != self.grid.shape:
                raise ValueError(f"layout of {noun!r} has shape {tuple(array.shape)}, grid is {self.grid.shape}")

    @property
    def nouns(self) -> list[str]:
        return list(self.labels)

    def counts(self, noun: str) -> np.ndarray:
        """Instances (detected or added, not removed) of `noun` in each frame, int [F]."""
        return np.array([len(instance_labels(frame)) for frame in self.labels[noun]], dtype=np.int64)

    def copy(self) -> "Layout":
        return Layout(self.grid, {n: a.copy() for n, a in self.labels.items()}, dict(self.targets),
                      self.spatial_factor, self.temporal_stride, self.provenance)

    @property
    def geometry(self) -> VideoGeometry:
        return VideoGeometry(self.spatial_factor, self.temporal_stride)

    def summary(self) -> str:
        """One line per noun: counts per frame, and the target where one is set."""
        lines = []
        for noun in self.nouns:
            counts = self.counts(noun)
            target = self.targets.get(noun)
            tail = f" (target {target})" if target is not None else ""
            lines.append(f"{noun}: {' '.join(str(c) for c in counts)}{tail}")
        return "\n".join(lines)


def instance_labels(frame: np.ndarray) -> np.ndarray:
    """Sorted labels of the instances present in one frame's label map (labels > 0)."""
    values = np.unique(frame)
    return values[values > 0]
