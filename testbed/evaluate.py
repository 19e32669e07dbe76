"""Count-accuracy evaluation of sampling arms on the testbed model.

An *arm* is a function ``(prompt, seed, cfg) -> video`` returning ``[F, H, W, 3]`` in [0, 1]
(ComfyUI IMAGE frames). Arms are built by factories registered in ``ARMS`` from a
:class:`TestbedSession`; more arms (e.g. the NUMINA presets) plug in with :func:`register_arm`.
Every video is counted exactly (``testbed.synthetic.count_objects``) and scored
with :func:`testbed.synthetic.count_metrics`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import comfy.sample
from . import synthetic as sc
from .model import DEFAULT_CFG, DEFAULT_WEIGHTS, FRAMES, SIZE, encode_text, load_testbed_model

Arm = Callable[[str, int, float], torch.Tensor]
ArmFactory = Callable[["TestbedSession"], Arm]


@dataclass
class SamplingSettings:
    steps: int = 20
    sampler: str = "euler"
    scheduler: str = "simple"
    frames: int = FRAMES
    negative_prompt: str = ""


@dataclass
class TestbedSession:
    """The loaded model plus the sampling settings every arm shares."""

    model: object  # comfy.model_patcher.ModelPatcher
    settings: SamplingSettings = field(default_factory=SamplingSettings)

    @classmethod
    def load(cls, weights: Path = DEFAULT_WEIGHTS, settings: SamplingSettings | None = None) -> "TestbedSession":
        return cls(load_testbed_model(weights), settings or SamplingSettings())

    def conditioning(self, prompt: str) -> list:
        """ComfyUI CONDITIONING for ``prompt`` from the model's own word embedding."""
        context = encode_text(prompt, self.model.model.model_config.word_embedding)
        return [[context, {}]]

    def sample(self, prompt: str, seeds: list[int], cfg: float, model=None) -> torch.Tensor:
        """One batched ComfyUI sampling call; element i uses the noise of ``seeds[i]`` exactly as a
        batch-1 run with that seed would. ``model`` replaces the session's (e.g. a guided clone).
        Returns [len(seeds), F, H, W, 3] in [0, 1]."""
        s = self.settings
        latent = torch.zeros(1, 3, s.frames, SIZE, SIZE)
        noise = torch.cat([comfy.sample.prepare_noise(latent, seed) for seed in seeds])
        samples = comfy.sample.sample(
            model or self.model, noise, s.steps, cfg, s.sampler, s.scheduler,
            self.conditioning(prompt), self.conditioning(s.negative_prompt),
            latent.repeat(len(seeds), 1, 1, 1, 1), disable_pbar=True, seed=seeds[0],
        )
        return torch.stack([sc.video_to_image_frames(v) for v in samples])


def baseline_arm(session: TestbedSession) -> Arm:
    """Plain ComfyUI sampling with the given seed."""

    def arm(prompt: str, seed: int, cfg: float) -> torch.Tensor:
        return session.sample(prompt, [seed], cfg)[0]

    return arm


def seed_search_arm(session: TestbedSession, tries: int = 5) -> Arm:
    """Best of ``tries`` seeds (seed, seed+1, …) by the exact count: an oracle upper bound of re-rolling."""

    def arm(prompt: str, seed: int, cfg: float) -> torch.Tensor:
        request = sc.parse_prompt(prompt)
        videos = session.sample(prompt, [seed + i for i in range(tries)], cfg)
        scores = [sc.count_metrics([request], [sc.count_objects(v)]).count_acc for v in videos]
        return videos[int(np.argmax(scores))]  # argmax keeps the earliest seed on ties

    return arm


ARMS: dict[str, ArmFactory] = {"baseline": baseline_arm, "seed_search": seed_search_arm}
ARM_FAMILIES: dict[str, Callable[[str], ArmFactory]] = {}
"""Arms named ``family:spec`` (e.g. ``numina:improved:{"suppress_scale": 20}``): the family turns the spec
into a factory, so a sweep needs no registered name per variant."""


def register_arm(name: str, factory: ArmFactory) -> None:
    """Adds an arm (e.g. a NUMINA preset) that ``evaluate`` can run by name."""
    ARMS[name] = factory


def register_arm_family(family: str, factory_for_spec: Callable[[str], ArmFactory]) -> None:
    """Adds arms named ``family:spec``; ``factory_for_spec`` raises ValueError for a bad spec."""
    ARM_FAMILIES[family] = factory_for_spec


def arm_factory(name: str) -> ArmFactory:
    """The factory of a registered arm or of a ``family:spec`` arm."""
    if name in ARMS:
        return ARMS[name]
    family, _, spec = name.partition(":")
    if spec and family in ARM_FAMILIES:
        return ARM_FAMILIES[family](spec)
    raise ValueError(f"unknown arm '{name}'; known: {', '.join(ARMS)}, or "
                     + ", ".join(f"'{f}:…'" for f in ARM_FAMILIES))


def load_prompts(n: int, prompt_seed: int, prompt_file: Path | None) -> list[str]:
    """Prompts from ``prompt_file`` (one per line, testbed grammar) or ``n`` generated from ``prompt_seed``."""
    if prompt_file is not None:
        prompts = [line.strip() for line in prompt_file.read_text().splitlines() if line.strip()]
        for prompt in prompts:
            sc.parse_prompt(prompt)  # fail early, naming the bad line
        return prompts
    return [sc.make_prompt(spec) for spec in sc.sample_prompt_specs(n, prompt_seed)]


def evaluate(
    session: TestbedSession, arms: list[str], prompts: list[str], cfgs: list[float], seed: int,
    counts: dict[str, dict[float, list]] | None = None, layout_counts: dict[str, dict[float, list]] | None = None,
) -> dict[str, dict[float, sc.CountingMetrics]]:
    """Runs every arm at every CFG on every prompt (prompt i uses seed ``seed + 1000·i``). ``counts``, when
    given, receives each video's exact counts per frame and category: counts[arm][cfg][prompt index];
    ``layout_counts`` likewise each noun's per-frame instances in the layout before refinement, for arms that
    keep them (an arm with a ``layout_counts`` list, as the NUMINA pipeline)."""
    results: dict[str, dict[float, sc.CountingMetrics]] = {}
    requests = [sc.parse_prompt(p) for p in prompts]
    for name in arms:
        arm = arm_factory(name)(session)
        results[name] = {}
        for cfg in cfgs:
            t0 = time.time()
            layouts_before = len(getattr(arm, "layout_counts", []))
            measured = [sc.count_objects(arm(p, seed + 1000 * i, cfg)) for i, p in enumerate(prompts)]
            results[name][cfg] = sc.count_metrics(requests, measured)
            if counts is not None:
                counts.setdefault(name, {})[cfg] = [m.tolist() for m in measured]
            if layout_counts is not None and hasattr(arm, "layout_counts"):
                layout_counts.setdefault(name, {})[cfg] = arm.layout_counts[layouts_before:]
            print(f"# {name} cfg {cfg:g}: {len(prompts)} prompts in {time.time() - t0:.1f}s", flush=True)
    return results


def format_results(results: dict[str, dict[float, sc.CountingMetrics]]) -> str:
    """Plain-text tables: headline metrics per (arm, CFG), then CountAcc by requested count."""
    lines = ["arm           cfg  CountAcc  1-cat  2-cat     TC  missing  prompts"]
    for name, by_cfg in results.items():
        for cfg, m in by_cfg.items():
            lines.append(
                f"{name:<12} {cfg:>4g}  {m.count_acc:8.3f}  {m.count_acc_one_category:5.3f}  "
                f"{m.count_acc_two_categories:5.3f}  {m.temporal_consistency:5.3f}  {m.missing_category_rate:7.3f}  {m.n_prompts:7d}"
            )
    lines.append("")
    lines.append("CountAcc by requested count k: acc (under / over) [pairs]")
    for name, by_cfg in results.items():
        for cfg, m in by_cfg.items():
            cells = [f"k={k}: {a:.2f} ({u:.2f}/{o:.2f}) [{n}]" for k, (a, u, o, n) in m.by_count.items()]
            lines.append(f"{name:<12} {cfg:>4g}  " + "  ".join(cells))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arm", action="append", help=f"arm to run, repeatable (default: baseline); known: {', '.join(ARMS)}; or "
                        "'numina:<preset>:<JSON config overrides>'")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="testbed weights (.safetensors)")
    add_prompt_arguments(parser, prompts=200, prompt_seed=1234)
    parser.add_argument("--cfg", type=float, action="append", help=f"CFG scale, repeatable (default: 1 and {DEFAULT_CFG:g})")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed base")
    add_sampling_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--device", help="cuda or cpu (default: cuda if available)")


def add_prompt_arguments(parser: argparse.ArgumentParser, prompts: int, prompt_seed: int) -> None:
    """--prompts, --prompt-seed and --prompt-file, as load_prompts takes them."""
    parser.add_argument("--prompts", type=int, default=prompts, help="number of generated prompts")
    parser.add_argument("--prompt-seed", type=int, default=prompt_seed, help="seed of the generated prompt set")
    parser.add_argument("--prompt-file", type=Path, help="one prompt per line instead of generated prompts")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The SamplingSettings every run of a command shares (sampling_settings reads them back)."""
    parser.add_argument("--steps", type=int, default=SamplingSettings.steps)
    parser.add_argument("--sampler", default=SamplingSettings.sampler, help="ComfyUI sampler name")
    parser.add_argument("--scheduler", default=SamplingSettings.scheduler)
    parser.add_argument("--frames", type=int, default=FRAMES)


def sampling_settings(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings(steps=args.steps, sampler=args.sampler, scheduler=args.scheduler, frames=args.frames)


def run_from_args(args: argparse.Namespace) -> dict:
    settings = sampling_settings(args)
    session = TestbedSession.load(args.weights, settings)
    prompts = load_prompts(args.prompts, args.prompt_seed, args.prompt_file)
    cfgs = args.cfg or [1.0, DEFAULT_CFG]
    results: dict[str, dict[float, sc.CountingMetrics]] = {}
    counts: dict[str, dict[float, list]] = {}
    layout_counts: dict[str, dict[float, list]] = {}
    for arm in args.arm or ["baseline"]:
        # report after each arm, so a run cut short still leaves its finished arms behind
        results.update(evaluate(session, [arm], prompts, cfgs, args.seed, counts, layout_counts))
        print(format_results(results), flush=True)
        if args.json:
            payload = {
                "settings": asdict(settings), "weights": str(args.weights), "prompts": prompts, "seed": args.seed,
                "results": {a: {str(cfg): asdict(m) for cfg, m in by.items()} for a, by in results.items()},
                "counts": {a: {str(cfg): c for cfg, c in by.items()} for a, by in counts.items()},
                "layout_counts": {a: {str(cfg): c for cfg, c in by.items()} for a, by in layout_counts.items()},
            }
            args.json.write_text(json.dumps(payload, indent=1))
    return results
