"""Count-verified generation: make a video, count it, and try again until the counts are right or the
budget of videos is spent; keep the best try.

Pure: the caller passes `generate` (a try → its result, e.g. a NUMINA video) and `count` (a result → per noun
the count in each frame), so the same loop runs inside the ComfyUI node (a VAE decode and a detector) and on
the testbed (its exact counter). A *strategy* decides what each try is from the tries before it:

- "reseed": NUMINA at seed s, then s + 1, … (the paper's combined mode, seed search with NUMINA, Tab. 7);
- "retarget": after a wrong NUMINA try, guide the same seed once more from the same capture, with each
  miscounted noun's layout target pushed past the miscount by as much as the video missed it (drew 4 of 3 →
  refine the layout to 2), then move on to the next seed.

The best try has exact counts in every frame, else the smallest total absolute count error over nouns and
frames, else it is the earliest.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Result = TypeVar("Result")
Counts = dict[str, list[int]]
"""Per noun, the count in each counted frame."""

RESEED = "reseed"
RETARGET = "retarget"
STRATEGIES = (RESEED, RETARGET)


@dataclass(frozen=True)
class Try:
    """What one try generates: NUMINA at `seed` with the layout refined toward `layout_targets`."""

    seed: int
    layout_targets: dict[str, int]

    def retargeted(self, targets: Mapping[str, int]) -> bool:
        return self.layout_targets != dict(targets)


@dataclass(frozen=True)
class Attempt:
    """One finished try and what the counter saw in it."""

    index: int
    trial: Try
    counts: Counts
    error: int
    """Total absolute count error over nouns and frames; 0 means every frame holds every target."""

    @property
    def exact(self) -> bool:
        return self.error == 0


@dataclass
class Verification(Generic[Result]):
    """Every try's counts, which one is kept, and the kept try's result (the others are not held)."""

    attempts: list[Attempt]
    best: Attempt
    best_result: Result


NextTry = Callable[[list[Attempt]], Try]


def count_error(counts: Mapping[str, Sequence[int]], targets: Mapping[str, int]) -> int:
    """Σ over nouns and frames of |count − target|. A noun the counter did not report is an error (a counter
    must report every noun, in at least one frame)."""
    missing = [noun for noun in targets if not counts.get(noun)]
    if missing:
        raise ValueError(f"the counter reported no frames for {missing}; it must count every noun")
    return sum(abs(int(c) - target) for noun, target in targets.items() for c in counts[noun])


def typical_count(frame_counts: Sequence[int]) -> int:
    """The lower median of a noun's per-frame counts: what the video shows in most frames."""
    ordered = sorted(int(c) for c in frame_counts)
    return ordered[(len(ordered) - 1) // 2]


def reseed(seed: int, targets: Mapping[str, int]) -> NextTry:
    """NUMINA at seed, seed + 1, … toward the requested counts."""
    def next_try(attempts: list[Attempt]) -> Try:
        return Try(seed + len(attempts), dict(targets))

    return next_try


def retarget(seed: int, targets: Mapping[str, int]) -> NextTry:
    """After a wrong try at a new seed, the same seed toward targets corrected by the miscount; then the next
    seed. A corrected target stays ≥ 1 (0 would tell the guidance to remove every instance)."""
    def next_try(attempts: list[Attempt]) -> Try:
        if not attempts:
            return Try(seed, dict(targets))
        last = attempts[-1]
        if last.trial.retargeted(targets):
            return Try(last.trial.seed + 1, dict(targets))
        corrected = {noun: max(1, target + target - typical_count(last.counts[noun]))
                     for noun, target in targets.items()}
        if corrected == dict(targets):  # every noun's typical count is right: only some frames are off
            return Try(last.trial.seed + 1, dict(targets))
        return Try(last.trial.seed, corrected)

    return next_try


def strategy(name: str, seed: int, targets: Mapping[str, int]) -> NextTry:
    if name == RESEED:
        return reseed(seed, targets)
    if name == RETARGET:
        return retarget(seed, targets)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def verify_counts(targets: Mapping[str, int], budget: int, next_try: NextTry,
                  generate: Callable[[Try], Result], count: Callable[[Result], Mapping[str, Sequence[int]]],
                  on_attempt: Callable[[Attempt], None] | None = None) -> Verification[Result]:
    """Generate and count tries until one is exact or `budget` tries are done; keep the best (exact, else the
    smallest count error, else the earliest). `on_attempt` sees each try once counted (progress, reports)."""
    if budget < 1:
        raise ValueError(f"the budget must allow at least one video, got {budget}")
    attempts: list[Attempt] = []
    best_result: Result | None = None
    best: Attempt | None = None
    while len(attempts) < budget:
        trial = next_try(attempts)
        result = generate(trial)
        counts = {noun: [int(c) for c in frames] for noun, frames in count(result).items()}
        attempt = Attempt(len(attempts), trial, counts, count_error(counts, targets))
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)
        if best is None or attempt.error < best.error:  # strict: ties keep the earlier try
            best, best_result = attempt, result
        if attempt.exact:
            break
    return Verification(attempts, best, best_result)


def attempt_report(attempt: Attempt, targets: Mapping[str, int]) -> str:
    """One line per try: seed, what the layout aimed at when retargeted, each noun's counts per frame."""
    aim = ""
    if attempt.trial.retargeted(targets):
        aim = " (layout aimed at " + ", ".join(f"{n} {c}" for n, c in attempt.trial.layout_targets.items()) + ")"
    nouns = " · ".join(f"{noun} " + " ".join(map(str, attempt.counts[noun])) + f" of {target}"
                       for noun, target in targets.items())
    verdict = "exact" if attempt.exact else f"off by {attempt.error}"
    return f"try {attempt.index + 1}: seed {attempt.trial.seed}{aim}: {nouns} → {verdict}"


def verification_report(verification: Verification, targets: Mapping[str, int], budget: int) -> str:
    """What the node shows: each try's counts, then which try was kept and why."""
    lines = [attempt_report(a, targets) for a in verification.attempts]
    best = verification.best
    if best.exact:
        lines.append(f"kept try {best.index + 1}: every frame has the right counts "
                     f"({len(verification.attempts)} of {budget} videos used)")
    else:
        lines.append(f"no try was exact in every frame; kept try {best.index + 1}, the closest "
                     f"(off by {best.error} over all frames; all {budget} videos used)")
    return "\n".join(lines)
