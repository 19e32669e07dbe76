"""Temporal count consensus: frames above the median count keep their largest instances only."""
import numpy as np

from numina_core.layout import keep_consensus_count


def test_extra_small_instances_are_dropped_down_to_the_median_count():
    frames = np.zeros((4, 8, 8), dtype=np.int32)
    for f in range(4):
        frames[f, 0:3, 0:3] = 1
        frames[f, 5:8, 5:8] = 2
    frames[2, 0, 7] = 3                      # a one-token fragment in frame 2
    frames[3, 4, 0] = 3                      # and in frame 3, beside a bigger fourth instance
    frames[3, 6:8, 0:2] = 4
    out = keep_consensus_count(frames)       # median of 2, 2, 3, 4 instances: 2
    assert [len(np.unique(f[f > 0])) for f in out] == [2, 2, 2, 2]
    assert (out[2] == frames[2] * (frames[2] != 3)).all()           # the fragment went, the rest is untouched
    kept = {tuple(np.argwhere(out[3] == label).min(0)) for label in (1, 2)}
    assert kept == {(0, 0), (5, 5)}                                   # the two largest of frame 3 stay


def test_frames_at_or_below_the_median_are_unchanged():
    frames = np.zeros((3, 6, 6), dtype=np.int32)
    frames[0, 0:2, 0:2] = 1
    frames[1, 0:2, 0:2], frames[1, 4:6, 4:6] = 1, 2
    frames[2, 0:2, 0:2], frames[2, 4:6, 4:6] = 1, 2
    assert (keep_consensus_count(frames) == frames).all()
