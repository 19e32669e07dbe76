"""Phase-1 variants on the testbed: a short schedule to the capture's noise level, and a phase 1 that finishes
the video itself when the refined layout needs no correction.

    python -m testbed.phase_one --prompts 40 --schedules 0 2 4 --device cpu --json out/short.json

For every tuning prompt (prompt seed 777) and schedule: the capture, the `improved` (and `reference`) layout
at the capture point, its agreement with the finished plain video's counts (as `layout_agreement` scores it),
whether its counts equal those of the full schedule's layout, and the CountAcc of the NUMINA video guided
by its refined layout.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from devtools.comfyui import import_comfyui


def short_schedule_study(session, prompts: list[str], seed: int, cfg: float, schedules: list[int]) -> dict:
    """Per schedule (0 = the full schedule): layout agreement with the plain video (improved, reference),
    count identity with the full schedule's layout, CountAcc of the guided video."""
    from testbed import numina_arms
    from testbed import synthetic as sc

    improved = numina_arms.Pipeline(session, "improved", {})
    reference_config = numina_arms.pack()[1].preset("reference")
    agreement = {k: {"improved": [], "reference": []} for k in schedules}
    same_counts = {k: [] for k in schedules}
    measured = {k: [] for k in schedules}
    requests = [sc.parse_prompt(p) for p in prompts]
    for i, prompt in enumerate(prompts):
        prompt_seed = seed + 1000 * i
        truth = sc.count_objects(session.sample(prompt, [prompt_seed], cfg)[0])
        full_counts = None
        for k in schedules:
            targets, capture = improved.capture(prompt, prompt_seed, cfg,
                                                improved.config.replace(capture_schedule_steps=k))
            identification = improved.identify.identify(capture, targets.counts, improved.config)
            reference_layout = improved.countable_layout(capture, targets, reference_config)
            counts = {noun: identification.layout.counts(noun) for noun in targets.counts}
            full_counts = counts if k == schedules[0] else full_counts
            for noun in targets.counts:
                category = truth[:, numina_arms.category_of(noun)]
                agreement[k]["improved"] += (counts[noun] == category).tolist()
                agreement[k]["reference"] += (reference_layout.counts(noun) == category).tolist()
                same_counts[k] += (counts[noun] == full_counts[noun]).tolist()
            video = improved.guided_video(prompt, prompt_seed, cfg, identification.refined, targets)
            measured[k].append(sc.count_objects(video))
    return {str(k): {"agreement_improved": float(np.mean(agreement[k]["improved"])),
                     "agreement_reference": float(np.mean(agreement[k]["reference"])),
                     "same_counts_as_first_schedule": float(np.mean(same_counts[k])),
                     "count_acc": sc.count_metrics(requests, measured[k]).count_acc,
                     "noun_frames": len(same_counts[k])} for k in schedules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.phase_one", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--prompt-seed", type=int, default=777, help="tuning prompts (evaluation uses 1234)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--schedules", type=int, nargs="+", default=[0, 2, 4],
                        help="capture_schedule_steps values; the first is the one the others are compared with")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import_comfyui(cpu=(args.device == "cpu") if args.device else None)
    from testbed.evaluate import SamplingSettings, TestbedSession, load_prompts

    session = TestbedSession.load(settings=SamplingSettings(steps=args.steps))
    prompts = load_prompts(args.prompts, args.prompt_seed, None)
    start = time.time()
    with torch.inference_mode():  # as ComfyUI's server samples
        schedules = short_schedule_study(session, prompts, args.seed, args.cfg, args.schedules)
    report = {"prompts": len(prompts), "prompt_seed": args.prompt_seed, "cfg": args.cfg, "steps": args.steps,
              "schedules": schedules}
    report["seconds"] = round(time.time() - start, 1)
    print(json.dumps(report, indent=1), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
