"""NUMINA on the testbed: the NUMINA evaluation arms, the mechanism checks (does suppressing an instance's
region remove it, does adding a region create one?) and the layout agreement (does the layout built at the
capture point count what the finished video shows?).

Everything runs the pack's real code: the Numeral Parser's parsing and token mapping, the Wan adapter's
capture and guidance hooks inside ComfyUI's sampler, and numina_core's head selection, layout and refinement.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from testbed import synthetic as sc
from testbed.evaluate import (Arm, TestbedSession, add_prompt_arguments, add_sampling_arguments, load_prompts,
                              register_arm, register_arm_family, sampling_settings)
from testbed.model import SIZE, TestbedTokenizer

from devtools.comfyui import import_pack

PATCH = 2
"""Pixels per token side: the testbed model works in pixel space with Wan's 1×2×2 patches."""


def pack():
    """The pack's modules, imported as ComfyUI would import the pack (ComfyUI must be importable first)."""
    import_pack()
    from numina_pack.nodes import adapters
    from numina_pack.numina_core import config, grid, identify, refine, targets

    return adapters, config, grid, identify, refine, targets


def category_of(noun: str) -> int:
    """The testbed category a prompt noun names ("discs" → red discs)."""
    return next(i for i, c in enumerate(sc.CATEGORIES) if noun in (c.shape, c.plural))


@dataclass
class Pipeline:
    """Capture → head selection → layout → refinement → guided sampling on a testbed session."""

    session: TestbedSession
    preset: str
    overrides: dict
    token_scope: str = "noun"
    layout_counts: list[dict[str, list[int]]] = field(default_factory=list)
    """Per run, each noun's instances per frame in the layout before refinement: a count above the target
    means the run removed instances, below it added some (what the evaluation's JSON keeps)."""

    def __post_init__(self):
        adapters, config, self.grid_module, self.identify, self.refine, self.targets = pack()
        self.adapter = adapters.adapter_for(self.session.model, "testbed")
        self.config = config.preset(self.preset, **self.overrides)
        self.tokenizer = TestbedTokenizer()

    def conditioning(self, prompt: str):
        return self.session.conditioning(prompt), self.session.conditioning(self.session.settings.negative_prompt)

    def capture(self, prompt: str, seed: int, cfg: float, config=None):
        """(targets, capture) of the prompt's pre-generation, at the block and step `config` (default: the
        pipeline's) names."""
        config = config or self.config
        targets = self.targets.build_targets(prompt, self.tokenizer, token_scope=self.token_scope)
        settings = self.session.settings
        positive, negative = self.conditioning(prompt)
        latent = {"samples": torch.zeros(1, 3, settings.frames, SIZE, SIZE)}
        step = config.capture_step_for(settings.steps)
        provenance = self.grid_module.SamplingProvenance(prompt, seed, settings.steps, cfg, settings.sampler,
                                                         settings.scheduler)
        capture = self.adapter.capture_attention(provenance, positive, negative, latent, targets.token_indices,
                                                 config.capture_block_for(self.adapter.blocks), step, config)
        return targets, capture

    def countable_layout(self, capture, targets, config=None):
        return self.identify.identify(capture, targets.counts, config or self.config).layout

    def guided_video(self, prompt: str, seed: int, cfg: float, layout, targets) -> torch.Tensor:
        settings = self.session.settings
        model, _, _ = self.adapter.guided_model(layout, targets.token_indices, self.config, settings.steps, 0)
        return self.session.sample(prompt, [seed], cfg, model=model)[0]

    def run(self, prompt: str, seed: int, cfg: float) -> torch.Tensor:
        targets, capture = self.capture(prompt, seed, cfg)
        identification = self.identify.identify(capture, targets.counts, self.config)
        self.layout_counts.append({noun: identification.layout.counts(noun).tolist() for noun in targets.counts})
        return self.guided_video(prompt, seed, cfg, identification.refined, targets)

    __call__ = run  # a Pipeline is an arm; the evaluation reads its layout_counts


def numina_arm(preset: str, token_scope: str = "noun", **overrides):
    def factory(session: TestbedSession) -> Arm:
        return Pipeline(session, preset, overrides, token_scope)

    return factory


def parse_numina_spec(spec: str, arm: str) -> tuple[str, str, dict]:
    """``<preset>:<JSON overrides>`` (the overrides optional) → (preset, token_scope, config overrides); the key
    ``token_scope`` ("noun" or "phrase") picks the text tokens guided instead of a config field. A bad preset or
    field fails here, before any sampling; `arm` names the arm in messages."""
    preset, _, overrides = spec.partition(":")
    try:
        fields = json.loads(overrides) if overrides else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"arm '{arm}': the overrides are not JSON ({error})") from None
    if not isinstance(fields, dict):
        raise ValueError(f"arm '{arm}': the overrides must be a JSON object")
    token_scope = fields.pop("token_scope", "noun")
    if token_scope not in ("noun", "phrase"):
        raise ValueError(f"arm '{arm}': token_scope must be 'noun' or 'phrase', not {token_scope!r}")
    pack()[1].preset(preset, **fields)
    return preset, token_scope, fields


def numina_arm_for_spec(spec: str):
    """``<preset>:<JSON overrides>`` → a NUMINA arm, for sweeps from the command line (parse_numina_spec)."""
    preset, token_scope, fields = parse_numina_spec(spec, f"numina:{spec}")
    return numina_arm(preset, token_scope, **fields)


register_arm_family("numina", numina_arm_for_spec)
register_arm("numina_reference", numina_arm("reference"))
register_arm("numina_improved", numina_arm("improved"))
register_arm("numina_improved_capture_60pct", numina_arm("improved", reference_step=30))
register_arm("numina_reference_phrase", numina_arm("reference", "phrase"))
register_arm("numina_improved_phrase", numina_arm("improved", "phrase"))


def instance_labels(video: torch.Tensor, category: int) -> np.ndarray:
    """int [F, H/2, W/2] token-grid labels of the category's objects in a video (8-connected components of
    its pixels, ≥ 4 px, a token set when any of its 2×2 pixels is)."""
    classes = sc.classify_pixels(video.float().cpu().numpy())
    labels = np.zeros((classes.shape[0], SIZE // PATCH, SIZE // PATCH), dtype=np.int32)
    for f, frame in enumerate(classes):
        components, count = ndimage.label(frame == category, structure=np.ones((3, 3), bool))
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        components[sizes[components] < sc.MIN_COMPONENT_AREA_PX] = 0
        pooled = components.reshape(SIZE // PATCH, PATCH, SIZE // PATCH, PATCH).max(axis=(1, 3))
        present = np.unique(pooled[pooled > 0])
        renumber = np.zeros(count + 1, dtype=np.int32)
        renumber[present] = np.arange(1, len(present) + 1)
        labels[f] = renumber[pooled]
    return labels


def layout_agreement(session: TestbedSession, prompts: list[str], seed: int, cfg: float,
                     variants: dict[str, dict]) -> dict[str, float]:
    """Fraction of (prompt, noun, frame) where a variant's layout at the capture point counts what the
    finished plain video shows (same seed). Variants are preset name + overrides; variants that capture at
    the same block, step and phase-1 schedule share one capture per prompt."""
    pipeline = Pipeline(session, "reference", {})
    config_module = pack()[1]
    configs = {name: config_module.preset(spec.get("preset", "reference"),
                                          **{k: v for k, v in spec.items() if k != "preset"})
               for name, spec in variants.items()}

    def capture_point(config) -> tuple:
        return (config.capture_block_for(pipeline.adapter.blocks), config.capture_step_for(session.settings.steps),
                config.capture_schedule_steps)

    hits = {name: [] for name in variants}
    for i, prompt in enumerate(prompts):
        prompt_seed = seed + 1000 * i
        captures = {}
        for config in configs.values():
            if capture_point(config) not in captures:
                captures[capture_point(config)] = pipeline.capture(prompt, prompt_seed, cfg, config)
        truth = sc.count_objects(session.sample(prompt, [prompt_seed], cfg)[0])
        for name, config in configs.items():
            targets, capture = captures[capture_point(config)]
            layout = pipeline.countable_layout(capture, targets, config)
            for noun in targets.counts:
                hits[name] += (layout.counts(noun) == truth[:, category_of(noun)]).tolist()
    return {name: float(np.mean(values)) for name, values in hits.items()}


def mechanism_checks(session: TestbedSession, prompts: list[str], seed: int, cfg: float,
                     token_scope: str = "noun", guidance: dict | None = None) -> dict[str, float]:
    """On plain videos: mark one object of the first noun removed (its tokens, every frame), or add one copy of
    the smallest object where the refinement would put it, guide from the same noise, and count again.
    Returns how often the count moved by exactly one in the intended direction (frame-median counts).
    `guidance`: config overrides of the guided videos (e.g. {"suppress_scale": 20})."""
    pipeline = Pipeline(session, "reference", guidance or {}, token_scope)
    grid_module = pipeline.grid_module
    grid = grid_module.TokenGrid(session.settings.frames, SIZE // PATCH, SIZE // PATCH)
    outcomes = {"removed": [], "added": []}
    for i, prompt in enumerate(prompts):
        prompt_seed = seed + 1000 * i
        targets = pipeline.targets.build_targets(prompt, pipeline.tokenizer, token_scope=token_scope)
        noun = next(iter(targets.counts))
        category = category_of(noun)
        plain = session.sample(prompt, [prompt_seed], cfg)[0]
        labels = instance_labels(plain, category)
        before = int(np.median(sc.count_objects(plain)[:, category]))
        counts = [len(np.unique(f[f > 0])) for f in labels]
        if min(counts) >= 1:  # removal: the object nearest the first frame's first object, in every frame
            removal = labels.copy()
            anchor = np.argwhere(labels[0] == 1).mean(axis=0)
            for f in range(grid.frames):
                centres = {v: np.argwhere(labels[f] == v).mean(axis=0) for v in np.unique(labels[f][labels[f] > 0])}
                nearest = min(centres, key=lambda v: np.sum((centres[v] - anchor) ** 2))
                removal[f][labels[f] == nearest] = grid_module.REMOVED
                anchor = centres[nearest]
            layout = grid_module.Layout(grid, {noun: removal})
            after = sc.count_objects(pipeline.guided_video(prompt, prompt_seed, cfg, layout, targets))[:, category]
            outcomes["removed"].append(int(np.median(after)) == before - 1)
        target = max(counts) + 1
        added = pipeline.refine.refine_layout(grid_module.Layout(grid, {noun: labels}), {noun: target},
                                              pipeline.config).layout
        after = sc.count_objects(pipeline.guided_video(prompt, prompt_seed, cfg, added, targets))[:, category]
        outcomes["added"].append(int(np.median(after)) == before + 1)
    return {kind: float(np.mean(values)) if values else float("nan") for kind, values in outcomes.items()} | {
        f"{kind}_n": len(values) for kind, values in outcomes.items()}


def free_box(occupied: np.ndarray, height: int, width: int) -> tuple[int, int] | None:
    """Top-left (y, x) of the first height×width box free in every frame of `occupied` [F, H, W], or None."""
    taken = occupied.any(axis=0)
    for y in range(taken.shape[0] - height + 1):
        for x in range(taken.shape[1] - width + 1):
            if not taken[y:y + height, x:x + width].any():
                return y, x
    return None


def edit_checks(session: TestbedSession, prompts: list[str], seed: int, cfg: float,
                guidance: dict | None = None, token_scope: str = "noun") -> dict[str, float]:
    """The artist's edit, measured: on the plain video's own layout (its objects' tokens per noun), delete one
    object of the first noun on every frame and add one object of the second noun (a box the size of its
    smallest object, or 3×3 tokens, where nothing lies) with the Layout Editor's edit functions, guide from the
    same noise, and count again. Returns how often the first noun's count fell by one and the second's rose
    by one (frame medians), each and both, over the two-noun prompts whose first noun has an object on every
    frame. `guidance`: config overrides of the guided videos; `token_scope`: the text tokens guided."""
    pipeline = Pipeline(session, "improved", guidance or {}, token_scope)  # imports the pack
    from numina_pack.numina_core.layout_edits import apply_edits, parse_edits

    grid = pipeline.grid_module.TokenGrid(session.settings.frames, SIZE // PATCH, SIZE // PATCH)
    outcomes = {"removed": [], "added": [], "both": []}
    for i, prompt in enumerate(prompts):
        targets = pipeline.targets.build_targets(prompt, pipeline.tokenizer, token_scope=token_scope)
        if len(targets.counts) < 2:
            continue
        prompt_seed = seed + 1000 * i
        first, second = list(targets.counts)[:2]
        plain = session.sample(prompt, [prompt_seed], cfg)[0]
        labels = {noun: instance_labels(plain, category_of(noun)) for noun in (first, second)}
        if min(len(np.unique(f[f > 0])) for f in labels[first]) < 1:
            continue
        before = np.median(sc.count_objects(plain), axis=0)
        sizes = [np.ptp(np.argwhere(f == v), axis=0) + 1 for f in labels[second] for v in np.unique(f[f > 0])]
        height, width = (min(sizes, key=lambda s: s[0] * s[1]) if sizes else (3, 3))
        spot = free_box(sum(labels.values()) > 0, int(height), int(width))
        if spot is None:
            continue
        y, x = spot
        edits = parse_edits(json.dumps([
            {"op": "delete", "id": "e1", "noun": first, "frame": None, "target": 1},
            {"op": "add", "id": "e2", "noun": second, "frame": None, "shape": "box",
             "box": [x, y, x + int(width), y + int(height)]}]))
        layout = apply_edits(pipeline.grid_module.Layout(grid, labels), edits).layout
        after = np.median(sc.count_objects(pipeline.guided_video(prompt, prompt_seed, cfg, layout, targets)), axis=0)
        removed = after[category_of(first)] == before[category_of(first)] - 1
        added = after[category_of(second)] == before[category_of(second)] + 1
        outcomes["removed"].append(bool(removed))
        outcomes["added"].append(bool(added))
        outcomes["both"].append(bool(removed and added))
    return {kind: float(np.mean(values)) if values else float("nan") for kind, values in outcomes.items()} | {
        "prompts": len(outcomes["both"])}


def run_studies(args) -> dict:
    """`python -m testbed study`: layout agreement of several layout variants and the mechanism checks,
    on a tuning prompt set (a different prompt seed from the evaluation's)."""
    settings = sampling_settings(args)
    session = TestbedSession.load(args.weights, settings)
    prompts = load_prompts(args.prompts, args.prompt_seed, args.prompt_file)
    variants = json.loads(args.variants)
    guidance = json.loads(args.guidance)
    scopes = args.token_scope or ["noun"]
    report = {"prompts": len(prompts), "prompt_seed": args.prompt_seed, "cfg": args.cfg, "steps": args.steps,
              "sampler": args.sampler, "scheduler": args.scheduler, "guidance": guidance}
    start = time.time()
    if variants:
        report["agreement"] = layout_agreement(session, prompts, args.seed, args.cfg, variants)
        report["agreement_seconds"] = round(time.time() - start, 1)
        print(json.dumps(report, indent=1), flush=True)
    if args.edits:
        start = time.time()
        report["edits"] = edit_checks(session, prompts[: args.edits], args.seed, args.cfg, guidance, scopes[0])
        report["edits_seconds"] = round(time.time() - start, 1)
        print(json.dumps(report, indent=1), flush=True)
    for scope in scopes if args.mechanism else []:
        start = time.time()
        report[f"mechanism_{scope}"] = mechanism_checks(session, prompts[: args.mechanism], args.seed, args.cfg, scope,
                                                        guidance)
        report[f"mechanism_{scope}_seconds"] = round(time.time() - start, 1)
        print(json.dumps(report, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


DEFAULT_VARIANTS = json.dumps({
    "reference": {},
    "improved": {"preset": "improved"},
})


def add_study_arguments(parser) -> None:
    from testbed.model import DEFAULT_WEIGHTS

    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    add_prompt_arguments(parser, prompts=60, prompt_seed=777)  # tuning prompts (the evaluation's seed is 1234)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg", type=float, default=5.0)
    add_sampling_arguments(parser)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help='JSON {"name": {"preset": "improved", "<config field>": value, …}, …}')
    parser.add_argument("--mechanism", type=int, default=0, help="prompts for the mechanism checks (0: skip)")
    parser.add_argument("--edits", type=int, default=0,
                        help="prompts for the hand-edit check: delete one object, add another (0: skip)")
    parser.add_argument("--guidance", default="{}",
                        help='JSON config overrides of the guided videos in the mechanism and edit checks')
    parser.add_argument("--token-scope", action="append", choices=["noun", "phrase"],
                        help="token scope of the mechanism checks, repeatable (default: noun); the edit check "
                             "uses the first")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device")


def verified_arm(name: str, budget: int, strategy: str, preset: str = "improved", overrides: dict | None = None,
                 token_scope: str = "noun"):
    """Count-verified NUMINA (numina_core/verify.py, as the Count-Verified Sampler runs it): NUMINA videos counted
    by the testbed's exact counter until one is exact or `budget` are made; the best is the arm's video. After each
    prompt it prints the videos and phase-1 captures that prompt used and their means so far (per CFG)."""
    def factory(session: TestbedSession) -> Arm:
        pipeline = Pipeline(session, preset, overrides or {}, token_scope)  # imports the pack
        from numina_pack.numina_core import verify
        from testbed.nodes import TestbedExactCounter

        counter = TestbedExactCounter()
        used: dict[float, list[tuple[int, int]]] = {}  # cfg → (videos, captures) per prompt

        def arm(prompt: str, seed: int, cfg: float) -> torch.Tensor:
            targets = pipeline.targets.build_targets(prompt, pipeline.tokenizer, token_scope=pipeline.token_scope)
            captures = {}  # a retargeted try reuses its seed's capture

            def generate(trial) -> torch.Tensor:
                if trial.seed not in captures:
                    captures[trial.seed] = pipeline.capture(prompt, trial.seed, cfg)[1]
                layout = pipeline.identify.identify(captures[trial.seed], trial.layout_targets, pipeline.config).refined
                return pipeline.guided_video(prompt, trial.seed, cfg, layout, targets)

            verification = verify.verify_counts(targets.counts, budget, verify.strategy(strategy, seed, targets.counts),
                                                generate, lambda video: counter.count(video, list(targets.counts)))
            runs = used.setdefault(cfg, [])
            runs.append((len(verification.attempts), len(captures)))
            videos, phase_ones = np.mean(runs, axis=0)
            print(f"# {name} cfg {cfg:g}: prompt {len(runs)}: {runs[-1][0]} videos, {runs[-1][1]} captures; "
                  f"mean {videos:.3f} videos, {phase_ones:.3f} captures per prompt", flush=True)
            return verification.best_result

        return arm

    return factory


def verified_arm_for_spec(spec: str):
    """``<strategy>:<budget>:<preset>:<JSON overrides>`` (preset and overrides optional) → a count-verified arm,
    e.g. ``verified:reseed:4:improved:{"background_suppress_scale": 2}``; preset and overrides as the numina
    arms' (parse_numina_spec)."""
    strategy, budget, rest = (spec.split(":", 2) + ["", ""])[:3]
    pack()
    from numina_pack.numina_core.verify import STRATEGIES

    if strategy not in STRATEGIES:
        raise ValueError(f"arm 'verified:{spec}': unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not budget.isdigit() or int(budget) < 1:
        raise ValueError(f"arm 'verified:{spec}': the budget must be a whole number ≥ 1, not {budget!r}")
    preset, _, overrides = rest.partition(":")
    preset, token_scope, fields = parse_numina_spec(f"{preset or 'improved'}:{overrides}", f"verified:{spec}")
    return verified_arm(f"verified:{spec}", int(budget), strategy, preset, fields, token_scope)


register_arm_family("verified", verified_arm_for_spec)
register_arm("numina_verified_3", verified_arm("numina_verified_3", 3, "reseed"))
register_arm("numina_verified_5", verified_arm("numina_verified_5", 5, "reseed"))
register_arm("numina_retarget_3", verified_arm("numina_retarget_3", 3, "retarget"))
register_arm("numina_retarget_5", verified_arm("numina_retarget_5", 5, "retarget"))
