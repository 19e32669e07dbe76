"""Cost of the CPU part of NUMINA: head selection + countable layout + refinement for one capture.

Prints a table: stage, seconds (median of --repeats), for F frames × N nouns on an H×W token grid
(default: Wan2.1 at 832×480×81, 21×30×52, 3 nouns, 12 heads), on synthetic attention with instances.
    python scripts/benchmark_layout.py [--frames 21 --height 30 --width 52 --nouns 3 --heads 12]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from numina_core.capture import AttentionCapture, summarize_cross_attention, summarize_self_attention  # noqa: E402
from numina_core.config import preset  # noqa: E402
from numina_core.grid import TokenGrid  # noqa: E402
from numina_core.head_selection import select_heads  # noqa: E402
from numina_core.layout import build_countable_layout  # noqa: E402
from numina_core.refine import refine_layout  # noqa: E402
from devtools.synthetic_attention import cross_attention_qk, place_discs, self_attention_qk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--height", type=int, default=30)
    parser.add_argument("--width", type=int, default=52)
    parser.add_argument("--nouns", type=int, default=3)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="reference")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    grid = TokenGrid(args.frames, args.height, args.width)
    rng = np.random.default_rng(0)
    discs = place_discs(2 * args.nouns, grid, 3, rng)
    maps = {f"noun{i}": np.where((discs > 2 * i) & (discs <= 2 * i + 2), discs, 0) for i in range(args.nouns)}
    kinds = ["separable"] + ["noise"] * (args.heads - 1)
    qk = self_attention_qk(discs, grid, kinds, 32)
    columns = {noun: [2 + i] for i, noun in enumerate(maps)}
    q, k = cross_attention_qk(maps, grid, args.heads, 32, 512, columns)
    capture = AttentionCapture(grid, summarize_self_attention(qk, qk, args.heads, grid, 0),
                               summarize_cross_attention(q, k, args.heads, grid, 0, columns))
    config = preset(args.preset)
    targets = {noun: 3 for noun in maps}
    times = {"head selection": [], "countable layout": [], "refinement": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        selection = select_heads(capture, config)
        mid = time.perf_counter()
        layout = build_countable_layout(selection, config, targets)
        end = time.perf_counter()
        refine_layout(layout, targets, config)
        times["head selection"].append(mid - start)
        times["countable layout"].append(end - mid)
        times["refinement"].append(time.perf_counter() - end)
    print(f"grid {grid}, {args.nouns} nouns, {args.heads} heads, preset {args.preset}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"| stage | seconds (median of {args.repeats}) |\n|---|---|")
    total = 0.0
    for stage, values in times.items():
        total += statistics.median(values)
        print(f"| {stage} | {statistics.median(values):.3f} |")
    print(f"| total | {total:.3f} |")


if __name__ == "__main__":
    main()
