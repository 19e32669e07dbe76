"""Layout refinement (method.md §5): per noun and frame, remove the smallest instances while there are too
many; add copies of the smallest instance (or a disc) at the cheapest grid position while there are too few.

Cost of a candidate centre c: C_o + λ_c·‖c − c⁰‖² + λ_t·‖c − c′‖², with C_o the template pixels that
fall on instances, c⁰ the centre of the frame's instances and c′ where the same addition was placed in
the previous frame.

Fixes of the released code's bugs (method.md §10), where this deviates on purpose:
* an added instance never overwrites an existing one: it takes only the template pixels that are free,
  and a candidate with no free pixel is not a candidate;
* the template never leaves the frame: candidates whose box leaves the frame are excluded as in the
  reference, and a disc larger than the frame is shrunk to fit (the reference wrapped around);
* when no position is left (a frame full of instances), the shortfall is reported instead of writing
  out of place;
* the template is the smallest of the frame's instances *before* refinement (or the disc when it had
  none), never an addition. The released code takes the smallest region including additions, but its
  additions are whole copies of the template (it overwrites), and ties go to the lower, detected label,
  so its template is the same unless an overwrite shrank a region, which never happens here. Taking
  additions into account here would copy clipped additions, so templates shrank to a few pixels
  (issue 11: additions of 20, 12, 4 and 4 pixels for a 36-pixel template).

Whole additions (`whole_additions`, *(deviation)*, on in `improved`): clipping to free pixels still
leaves fragments, because C_o charges 1 per overlapped pixel against squared distances, so a position
with a single free pixel can win. With whole_additions a candidate must have every template pixel free
(of the noun's instances, and of other nouns' with avoid_other_nouns): the addition is the whole
template or nothing. Candidates are first the grid of placement_grid_step, then, when no grid position
is free, every position; when none is free the frame's shortfall is reported. This changes which
position wins wherever the released code would overlap, so `reference` keeps the overlap cost and
clipping.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import correlate

from .config import NuminaConfig
from .grid import FIRST_ADDED, REMOVED, Layout, TokenGrid, instance_labels


@dataclass
class RefinementResult:
    """The refined layout and, per noun, the frames where the target could not be reached."""

    layout: Layout
    shortfall: dict[str, list[int]] = field(default_factory=dict)

    @property
    def needs_guidance(self) -> bool:
        """True if any frame of any noun has something to remove or to add."""
        return any(((labels == REMOVED) | (labels >= FIRST_ADDED)).any() for labels in self.layout.labels.values())


def disc_template(radius: int) -> np.ndarray:
    """(2r+1)² box with the pixels y² + x² ≤ r² set."""
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return ys * ys + xs * xs <= radius * radius


def smallest_instance(frame: np.ndarray) -> int:
    """Label of the instance with the fewest pixels (ties: the lowest label)."""
    labels = instance_labels(frame)
    sizes = [(int((frame == label).sum()), int(label)) for label in labels]
    return min(sizes)[1]


def addition_template(original: np.ndarray, config: NuminaConfig, grid: TokenGrid) -> np.ndarray:
    """The bounding-box crop of the smallest instance's mask in the frame's `original` label map (before
    any addition), or a disc when it has no instance."""
    if (original > 0).any():
        mask = original == smallest_instance(original)
        rows, cols = np.nonzero(mask)
        return mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    radius = min(config.circle_radius, (min(grid.height, grid.width) - 1) // 2)
    return disc_template(max(0, radius))


def place_addition(occupied: np.ndarray, template: np.ndarray, reference_centre: tuple[float, float],
                   previous_centre: tuple[float, float] | None, config: NuminaConfig) -> tuple[int, int] | None:
    """The centre (cy, cx) of least cost for `template` on a frame whose `occupied` pixels are taken, or None
    when there is no candidate. A candidate must leave at least one template pixel free, or, with
    whole_additions, all of them. Candidate centres run from ⌊t/2⌋ in steps of placement_grid_step (with
    whole_additions, every position when no grid position is free); the first minimum in scan order wins."""
    height, width = occupied.shape
    t_h, t_w = template.shape
    if t_h > height or t_w > width:
        return None
    overlap_all = np.rint(correlate(occupied.astype(np.float64), template.astype(np.float64), mode="valid"))
    # The grid of the released code: centres ⌊t/2⌋, ⌊t/2⌋ + step, … whose template box stays in the frame.
    step = config.placement_grid_step
    tops = np.arange(0, height - t_h + 1, step)
    lefts = np.arange(0, width - t_w + 1, step)
    centre = _cheapest_centre(overlap_all, tops, lefts, template, reference_centre, previous_centre, config)
    if centre is None and config.whole_additions and step > 1:
        every_top, every_left = np.arange(height - t_h + 1), np.arange(width - t_w + 1)
        centre = _cheapest_centre(overlap_all, every_top, every_left, template, reference_centre,
                                  previous_centre, config)
    return centre


def _cheapest_centre(overlap_all: np.ndarray, tops: np.ndarray, lefts: np.ndarray, template: np.ndarray,
                     reference_centre: tuple[float, float], previous_centre: tuple[float, float] | None,
                     config: NuminaConfig) -> tuple[int, int] | None:
    """The least-cost centre among the boxes with top-left corners `tops` × `lefts`, or None."""
    overlap = overlap_all[np.ix_(tops, lefts)]
    cy, cx = np.meshgrid(tops + template.shape[0] // 2, lefts + template.shape[1] // 2, indexing="ij")
    cost = overlap + config.lambda_center * ((cy - reference_centre[0]) ** 2 + (cx - reference_centre[1]) ** 2)
    if previous_centre is not None:
        cost = cost + config.lambda_temporal * ((cy - previous_centre[0]) ** 2 + (cx - previous_centre[1]) ** 2)
    allowed = overlap == 0 if config.whole_additions else overlap < template.sum()
    cost = np.where(allowed, cost, np.inf)
    best = int(np.argmin(cost))
    if not np.isfinite(cost.flat[best]):
        return None
    return int(cy.flat[best]), int(cx.flat[best])


def refine_frame(frame: np.ndarray, target: int, previous_centres: list[tuple[int, int]] | None,
                 config: NuminaConfig, grid: TokenGrid, other_nouns: np.ndarray | None = None
                 ) -> tuple[list[tuple[int, int]], bool]:
    """Refine one frame's label map in place to `target` instances.

    Returns the centres of the instances added here (for the next frame's temporal term) and whether the
    target was reached. `other_nouns` marks pixels taken by other nouns when avoid_other_nouns is set.
    """
    count = len(instance_labels(frame))
    while count > target:
        frame[frame == smallest_instance(frame)] = REMOVED
        count -= 1
    added_centres: list[tuple[int, int]] = []
    next_label = max(FIRST_ADDED, int(frame.max()) + 1)
    template = addition_template(frame, config, grid) if count < target else None
    while count < target:
        instances = frame > 0
        rows, cols = np.nonzero(instances)
        reference = (rows.mean(), cols.mean()) if len(rows) else (grid.height / 2, grid.width / 2)
        order = len(added_centres)
        previous = previous_centres[order] if previous_centres and order < len(previous_centres) else None
        occupied = instances if other_nouns is None else instances | other_nouns
        centre = place_addition(occupied, template, reference, previous, config)
        if centre is None:
            return added_centres, False
        top, left = centre[0] - template.shape[0] // 2, centre[1] - template.shape[1] // 2
        window = frame[top : top + template.shape[0], left : left + template.shape[1]]
        window[template & (window <= 0)] = next_label
        added_centres.append(centre)
        next_label += 1
        count += 1
    return added_centres, True


def refine_layout(layout: Layout, targets: dict[str, int], config: NuminaConfig) -> RefinementResult:
    """Refine every noun (in `targets` order) to its target count in every frame; returns a new layout."""
    for noun, target in targets.items():
        if noun not in layout.labels:
            raise ValueError(f"noun {noun!r} has no layout; the layout has {layout.nouns}")
        if target < 1:
            raise ValueError(f"target count of {noun!r} is {target}; NUMINA needs a count of at least 1")
    refined = layout.copy()
    refined.targets = dict(targets)
    shortfall: dict[str, list[int]] = {}
    for noun, target in targets.items():
        labels = refined.labels[noun]
        previous: list[tuple[int, int]] | None = None
        for f in range(layout.grid.frames):
            others = None
            if config.avoid_other_nouns:
                others = np.zeros(layout.grid.shape[1:], dtype=bool)
                for other, other_labels in refined.labels.items():
                    if other != noun:
                        others |= other_labels[f] > 0
            added, reached = refine_frame(labels[f], target, previous, config, layout.grid, others)
            previous = added or None
            if not reached:
                shortfall.setdefault(noun, []).append(f)
    return RefinementResult(refined, shortfall)
