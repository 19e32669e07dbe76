"""Command line of the CountBench runner; `python -m numina_eval.bench --help`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..counting import PROTOCOLS, first_seed, seed_search, summarize
from ..detection import DEFAULT_MODEL_ID, DetectorUnavailableError, GroundingDinoDetector
from .dataset import load_prompts
from .report import write_report
from .runner import generate, make_jobs
from .scoring import load_clip_scorer, score_jobs
from .workflow import load_workflow

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers separated by commas: {text!r}") from error
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"give distinct seeds, e.g. 0,1,2: {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m numina_eval.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--bench", required=True, help="CountBench folder (prompts.txt + noun_counts.jsonl) or jsonl")
        sub.add_argument("--out", required=True, type=Path, help="results folder (resumable)")
        sub.add_argument("--seeds", type=_seeds, help="comma-separated seeds; the first is the single-seed "
                                                     "baseline, all together give seed search (default 0)")
        sub.add_argument("--limit", type=int, help="only the first N prompts")
        sub.add_argument("--protocol", choices=sorted(PROTOCOLS), default="numina", help="counting protocol")
        sub.add_argument("--detector", default=DEFAULT_MODEL_ID, help="GroundingDINO folder or Hugging Face id")
        sub.add_argument("--models-dir", action="append", type=Path, default=[],
                         help="folder(s) holding detector folders, e.g. ComfyUI/models/grounding-dino")
        sub.add_argument("--no-download", action="store_true", help="never download detector weights")
        sub.add_argument("--clip-model", default=DEFAULT_CLIP, help="CLIP folder or id, used only if on disk")
        sub.add_argument("--device", default="cpu", help="torch device for scoring, e.g. cuda")

    run = commands.add_parser("run", help="generate over ComfyUI servers (resuming), then score")
    common(run)
    run.add_argument("--workflow", required=True, help="API-format workflow JSON with {{prompt}} etc.")
    run.add_argument("--server", action="append", required=True, help="ComfyUI URL; repeat for more servers")
    run.add_argument("--job-timeout", type=float, default=3600.0, help="seconds one video may take")
    run.add_argument("--no-score", action="store_true", help="only generate")
    score = commands.add_parser("score", help="score what a run collected")
    common(score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prompts = load_prompts(args.bench)[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    run_file = args.out / "run.json"
    previous = json.loads(run_file.read_text()) if run_file.is_file() else {}
    seeds = args.seeds or previous.get("seeds") or [0]
    jobs = make_jobs(prompts, seeds)
    settings = {"bench": str(args.bench), "prompts": str(len(prompts)), "seeds": ",".join(map(str, seeds))}

    if args.command == "run":
        workflow = load_workflow(args.workflow)
        run_file.write_text(json.dumps({"seeds": seeds, "workflow": str(args.workflow), "servers": args.server}))
        result = generate(jobs, workflow, args.server, args.out, job_timeout=args.job_timeout)
        settings |= {"workflow": str(args.workflow), "servers": ", ".join(args.server)}
        if args.no_score:
            return 0 if result.unfinished == 0 else 3
    else:
        settings |= {k: str(v) for k, v in previous.items() if k in ("workflow", "servers")}

    protocol = PROTOCOLS[args.protocol]
    try:
        detector = GroundingDinoDetector.load(args.detector, search_dirs=args.models_dir,
                                              allow_download=not args.no_download, device=args.device)
    except DetectorUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    clip, clip_note = load_clip_scorer(args.clip_model, args.device)

    def counter(frames, nouns):
        return detector.count(frames, nouns, protocol)[1]

    videos = score_jobs(jobs, args.out, protocol, counter, f"{detector.source} | {protocol.describe()}", clip)
    summaries = [summarize(first_seed(videos, seeds), f"single seed ({seeds[0]})")]
    if len(seeds) > 1:
        summaries.append(summarize(seed_search(videos), f"seed search (best of {len(seeds)})"))
    settings |= {"protocol": protocol.describe(), "detector": detector.source, "CLIP": clip_note}
    paths = write_report(args.out, summaries, videos, settings)
    for s in summaries:
        print(f"{s.label}: CountAcc {s.count_acc:.4f}, TC {s.tc:.4f}, failures {s.failures}/{s.prompts}")
    print(f"results: {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
