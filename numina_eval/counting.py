"""Count scoring, pure: turns per-frame detections into counts and counts into the paper's metrics.

Two evaluation protocols are supported as data (`CountProtocol`):

* ``NUMINA_PROTOCOL`` — the authors' `eval_counting.py`: every frame, box threshold 0.32, text
  threshold 0.25, one caption per noun, count = number of boxes, no de-duplication.
* ``T2V_COMPBENCH_PROTOCOL`` — T2V-CompBench's generative-numeracy script: 16 uniformly spaced
  frames, box threshold 0.4, boxes of all nouns pooled and merged where IoU > 0.9 (the
  higher-scoring box survives, greedily in detection order), and a box only counts for a noun
  when its decoded phrase equals that noun.

Both score a frame as the fraction of nouns whose count is exact, average frames into a video
score and videos into a benchmark score (CountAcc). A missing or failed video is a failure that
scores 0 on every metric; it is kept in the tally, never skipped.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Counts = Mapping[str, int]


@dataclass(frozen=True)
class CountProtocol:
    """How frames are picked and detections turned into counts."""

    name: str
    box_threshold: float
    text_threshold: float
    num_frames: int | None  # None: every frame
    merge_iou: float | None  # None: keep every box; else merge pooled boxes with IoU above it
    label_must_match: bool  # count a box for a noun only when its decoded phrase is that noun

    def frame_indices(self, total_frames: int) -> list[int]:
        """Indices of the frames this protocol evaluates, out of `total_frames`."""
        if total_frames <= 0:
            return []
        if self.num_frames is None or total_frames <= self.num_frames:
            return list(range(total_frames))
        # Truncating linspace, first and last frame included, as T2V-CompBench samples.
        return [int(i) for i in np.linspace(0, total_frames - 1, self.num_frames).astype(int)]

    def describe(self) -> str:
        frames = "all frames" if self.num_frames is None else f"{self.num_frames} uniform frames"
        merge = "no merging" if self.merge_iou is None else f"merge boxes at IoU > {self.merge_iou}"
        return (f"{self.name}: {frames}, box threshold {self.box_threshold}, "
                f"text threshold {self.text_threshold}, {merge}")


NUMINA_PROTOCOL = CountProtocol("numina", box_threshold=0.32, text_threshold=0.25,
                                num_frames=None, merge_iou=None, label_must_match=False)
T2V_COMPBENCH_PROTOCOL = CountProtocol("t2v-compbench", box_threshold=0.4, text_threshold=0.25,
                                       num_frames=16, merge_iou=0.9, label_must_match=True)
PROTOCOLS: dict[str, CountProtocol] = {p.name: p for p in (NUMINA_PROTOCOL, T2V_COMPBENCH_PROTOCOL)}


@dataclass(frozen=True)
class Detection:
    """One box the detector returned for the caption of `noun`."""

    noun: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    label: str  # phrase decoded from the tokens above the text threshold


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x0,y0,x1,y1 boxes (0 for empty boxes)."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_duplicate_boxes(detections: Sequence[Detection], iou_threshold: float) -> list[Detection]:
    """Greedy merge in detection order: a box overlapping an already kept box by IoU above the
    threshold is folded into it, and the kept slot takes whichever of the two scores higher."""
    kept: list[Detection] = []
    for det in detections:
        for slot, other in enumerate(kept):
            if box_iou(det.box, other.box) > iou_threshold:
                if det.score > other.score:
                    kept[slot] = det
                break
        else:
            kept.append(det)
    return kept


def count_frame(detections: Mapping[str, Sequence[Detection]], protocol: CountProtocol) -> dict[str, int]:
    """Counts per noun for one frame from the boxes each noun's caption returned (already
    filtered by the box threshold)."""
    if protocol.merge_iou is None:
        survivors = [d for noun in detections for d in detections[noun]]
    else:
        pooled = [d for noun in detections for d in detections[noun]]
        survivors = merge_duplicate_boxes(pooled, protocol.merge_iou)
    counts = {noun: 0 for noun in detections}
    for det in survivors:
        noun = det.noun
        if protocol.label_must_match and _normalise(det.label) != _normalise(noun):
            continue
        counts[noun] += 1
    return counts


def _normalise(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def frame_score(counts: Counts, targets: Counts) -> float:
    """Fraction of target nouns whose detected count equals the target."""
    if not targets:
        raise ValueError("frame_score needs at least one target noun")
    return sum(int(counts.get(noun, 0)) == int(n) for noun, n in targets.items()) / len(targets)


def count_accuracy(frame_counts: Sequence[Counts], targets: Counts) -> float:
    """CountAcc of one video: the mean frame score over its evaluated frames (0 with no frames)."""
    if not frame_counts:
        return 0.0
    return float(np.mean([frame_score(c, targets) for c in frame_counts]))


def temporal_consistency(frame_counts: Sequence[Counts], nouns: Sequence[str]) -> float:
    """TC of one video: over adjacent frame pairs and nouns, the fraction where the count does not
    change. A single frame is trivially consistent (1); no frames is a failure (0)."""
    if not frame_counts or not nouns:
        return 0.0
    if len(frame_counts) == 1:
        return 1.0
    agreements = [int(a.get(noun, 0)) == int(b.get(noun, 0))
                  for a, b in zip(frame_counts[:-1], frame_counts[1:]) for noun in nouns]
    return float(np.mean(agreements))


def noun_accuracy(frame_counts: Sequence[Counts], noun: str, target: int) -> float:
    """Fraction of frames where `noun` is counted exactly `target` times."""
    if not frame_counts:
        return 0.0
    return float(np.mean([int(c.get(noun, 0)) == int(target) for c in frame_counts]))


@dataclass
class VideoScore:
    """Scores of one generated video (one prompt, one seed)."""

    prompt_id: str
    seed: int
    targets: dict[str, int]
    status: str = "ok"  # "ok", "missing" or "failed"
    error: str = ""
    frame_counts: list[dict[str, int]] = field(default_factory=list)
    count_acc: float = 0.0
    tc: float = 0.0
    clip_score: float | None = None  # None: CLIP unavailable

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def per_noun_accuracy(self) -> dict[str, float]:
        return {noun: (0.0 if self.failed else noun_accuracy(self.frame_counts, noun, n))
                for noun, n in self.targets.items()}


def score_video(prompt_id: str, seed: int, targets: Counts, frame_counts: Sequence[Counts],
                clip_score: float | None = None) -> VideoScore:
    """Score one video from its per-frame counts."""
    targets = {k: int(v) for k, v in targets.items()}
    frames = [dict(c) for c in frame_counts]
    return VideoScore(prompt_id=prompt_id, seed=seed, targets=targets, frame_counts=frames,
                      count_acc=count_accuracy(frames, targets),
                      tc=temporal_consistency(frames, list(targets)), clip_score=clip_score)


def failed_video(prompt_id: str, seed: int, targets: Counts, status: str, error: str,
                 clip_available: bool) -> VideoScore:
    """A video that was not produced or could not be read: 0 on every metric, kept in the tally."""
    if status not in ("missing", "failed"):
        raise ValueError(f"failed_video: status must be 'missing' or 'failed', got {status!r}")
    return VideoScore(prompt_id=prompt_id, seed=seed, targets={k: int(v) for k, v in targets.items()},
                      status=status, error=error, clip_score=0.0 if clip_available else None)


@dataclass
class Summary:
    """Benchmark-level figures over one video per prompt."""

    label: str
    prompts: int
    failures: int
    count_acc: float
    tc: float
    clip_score: float | None
    per_numeral: dict[int, float]
    per_numeral_pairs: dict[int, int]


def per_numeral_accuracy(videos: Sequence[VideoScore]) -> tuple[dict[int, float], dict[int, int]]:
    """Accuracy per target numeral: over all (prompt, noun) pairs asking for n objects, the mean
    fraction of frames where that noun is counted exactly n (failures contribute 0). Also returns
    the number of pairs behind each figure."""
    sums: dict[int, float] = {}
    pairs: dict[int, int] = {}
    for video in videos:
        for noun, acc in video.per_noun_accuracy().items():
            n = video.targets[noun]
            sums[n] = sums.get(n, 0.0) + acc
            pairs[n] = pairs.get(n, 0) + 1
    return {n: sums[n] / pairs[n] for n in sorted(sums)}, {n: pairs[n] for n in sorted(pairs)}


def summarize(videos: Sequence[VideoScore], label: str) -> Summary:
    """Mean CountAcc, TC and CLIP score over videos (failures included as 0)."""
    if not videos:
        return Summary(label, 0, 0, 0.0, 0.0, None, {}, {})
    clip_values = [v.clip_score for v in videos]
    clip = None if any(c is None for c in clip_values) else float(np.mean(clip_values))
    per_numeral, pairs = per_numeral_accuracy(videos)
    return Summary(label=label, prompts=len(videos), failures=sum(v.failed for v in videos),
                   count_acc=float(np.mean([v.count_acc for v in videos])),
                   tc=float(np.mean([v.tc for v in videos])), clip_score=clip,
                   per_numeral=per_numeral, per_numeral_pairs=pairs)


def group_by_prompt(videos: Sequence[VideoScore]) -> dict[str, list[VideoScore]]:
    groups: dict[str, list[VideoScore]] = {}
    for video in videos:
        groups.setdefault(video.prompt_id, []).append(video)
    return groups


def first_seed(videos: Sequence[VideoScore], seeds: Sequence[int]) -> list[VideoScore]:
    """One video per prompt: the one made with the first seed of `seeds` (a plain single run)."""
    chosen = []
    for prompt_id, group in group_by_prompt(videos).items():
        by_seed = {v.seed: v for v in group}
        if seeds[0] not in by_seed:
            raise ValueError(f"prompt {prompt_id} has no video for seed {seeds[0]}")
        chosen.append(by_seed[seeds[0]])
    return chosen


def seed_search(videos: Sequence[VideoScore]) -> list[VideoScore]:
    """The paper's seed-search baseline: per prompt, the seed with the best CountAcc (ties go to
    the earlier video in `videos`, i.e. the earlier seed)."""
    chosen = []
    for group in group_by_prompt(videos).values():
        best = group[0]
        for video in group[1:]:
            if video.count_acc > best.count_acc:
                best = video
        chosen.append(best)
    return chosen


_COUNT_ENTRY = re.compile(r"^\s*(?P<noun>[^:=]+?)\s*[:=]\s*(?P<count>[+-]?\d+)\s*$")


def parse_noun_counts(text: str) -> dict[str, int]:
    """Targets from a JSON object ``{"cat": 3}`` or a list like ``cat: 3, dog: 2`` (also ``=`` and
    ``;`` or new lines as separators). Raises ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("no nouns given; write e.g. 'cat: 3, dog: 2' or {\"cat\": 3}")
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from error
        entries = list(raw.items())
    else:
        entries = []
        for part in re.split(r"[,;\n]", text):
            if not part.strip():
                continue
            match = _COUNT_ENTRY.match(part)
            if match is None:
                raise ValueError(f"cannot read {part.strip()!r}; write each noun as 'noun: count'")
            entries.append((match["noun"], match["count"]))
    counts: dict[str, int] = {}
    for noun, count in entries:
        noun = str(noun).strip()
        if not noun:
            raise ValueError("empty noun")
        if isinstance(count, bool) or not isinstance(count, (int, str)) or not str(count).lstrip("+-").isdigit():
            raise ValueError(f"count for {noun!r} must be a whole number, got {count!r}")
        if int(count) < 0:
            raise ValueError(f"count for {noun!r} must not be negative, got {count}")
        if noun in counts:
            raise ValueError(f"noun {noun!r} is given twice")
        counts[noun] = int(count)
    return counts
