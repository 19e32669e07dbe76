"""Results table (markdown, CSV, JSON) and the per-numeral accuracy chart."""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..counting import Summary, VideoScore


def _fmt(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.4f}"


def write_report(out_dir: Path, summaries: Sequence[Summary], videos: Sequence[VideoScore],
                 settings: dict[str, str]) -> dict[str, Path]:
    """Write results.md, results.json, videos.csv and per_numeral.png into `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"markdown": out_dir / "results.md", "json": out_dir / "results.json",
             "csv": out_dir / "videos.csv", "chart": out_dir / "per_numeral.png"}
    lines = ["# CountBench results", ""] + [f"- **{k}**: {v}" for k, v in settings.items()] + [""]
    lines += ["| selection | prompts | failures | CountAcc | TC | CLIP score |", "|---|---|---|---|---|---|"]
    lines += [f"| {s.label} | {s.prompts} | {s.failures} | {s.count_acc:.4f} | {s.tc:.4f} | {_fmt(s.clip_score)} |"
              for s in summaries]
    numerals = sorted({n for s in summaries for n in s.per_numeral})
    if numerals:
        lines += ["", "Accuracy per target numeral (fraction of frames counted exactly, over the "
                      "(prompt, noun) pairs asking for that number):", "",
                  "| selection | " + " | ".join(str(n) for n in numerals) + " |",
                  "|---|" + "---|" * len(numerals)]
        lines += [f"| {s.label} | " + " | ".join(f"{s.per_numeral[n]:.3f}" if n in s.per_numeral else "-"
                                                 for n in numerals) + " |" for s in summaries]
        lines += ["| pairs | " + " | ".join(str(summaries[0].per_numeral_pairs.get(n, 0)) for n in numerals) + " |"]
    failures = [v for v in videos if v.failed]
    lines += ["", f"## Failures ({len(failures)} of {len(videos)} videos; each scored 0)", ""]
    lines += [f"- prompt {v.prompt_id}, seed {v.seed}: {v.status}: {v.error}" for v in failures] or ["none"]
    paths["markdown"].write_text("\n".join(lines) + "\n")

    paths["json"].write_text(json.dumps({"settings": settings, "summaries": [asdict(s) for s in summaries],
                                         "videos": [asdict(v) for v in videos]}, indent=1))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt_id", "seed", "status", "count_acc", "tc", "clip_score", "targets", "error"])
        for v in videos:
            writer.writerow([v.prompt_id, v.seed, v.status, f"{v.count_acc:.6f}", f"{v.tc:.6f}",
                             "" if v.clip_score is None else f"{v.clip_score:.6f}", json.dumps(v.targets), v.error])
    _bar_chart(paths["chart"], summaries, numerals)
    return paths


def _bar_chart(path: Path, summaries: Sequence[Summary], numerals: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(numerals) + 2), 3.2), dpi=120)
    width = 0.8 / max(1, len(summaries))
    for index, summary in enumerate(summaries):
        xs = [i + (index - (len(summaries) - 1) / 2) * width for i in range(len(numerals))]
        axes.bar(xs, [summary.per_numeral.get(n, 0.0) for n in numerals], width, label=summary.label)
    axes.set_xticks(range(len(numerals)), [str(n) for n in numerals])
    axes.set_xlabel("target count")
    axes.set_ylabel("count accuracy")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
