"""Whole-video cost of NUMINA inside ComfyUI's real sampling, as ratios to plain sampling measured in the same
process, with random weights at the real architectures (no weights can be downloaded here), loaded through
ComfyUI's own state-dict loader and sampled as ComfyUI's server samples: under torch.inference_mode.

Arms per model (each timed end to end, CUDA-synchronised, peak GPU memory per arm):
  plain         KSampler, every step
  numina        phase 1 on the run's whole schedule to t* (the preset's capture step; the cost of
                `improved (late capture)`) + identify + phase 2 guided on a layout with removals, additions and
                background suppression in every frame (correction_layout)
  easycache     the same, ComfyUI's EasyCache node on phase 1 (the capture step forced)
  short         the same, phase 1 on a short schedule (--schedule-steps; by default the `improved` preset's
                own, so `--arms plain short` measures the pack's default)
  finish        phase 1 that finishes the video itself (the refined layout needed no correction); its
                latent must equal plain's
Phase 2 is sampled once per model; easycache and short reuse its time.

    python scripts/benchmark_gpu.py                                   # every model, 832×480×81, 50 steps
    python scripts/benchmark_gpu.py --models wan2.1-1.3b --steps 50
    python scripts/benchmark_gpu.py --attention sage --models wan2.1-1.3b --steps 4 --arms plain numina
    python scripts/benchmark_gpu.py --attention xformers --models wan2.1-1.3b --arms plain numina
    python scripts/benchmark_gpu.py --smoke --schedule-steps 1 --json out/smoke.json   # CPU, tiny, 4 steps
    python scripts/benchmark_gpu.py --models wan2.2-5b --arms plain short                  # the pack's default
    python scripts/benchmark_gpu.py --models wan2.2-5b --arms plain short --profile        # op tables
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.comfyui import comfyui_commit, comfyui_version, import_comfyui, import_pack  # noqa: E402


@dataclass(frozen=True)
class ModelSpec:
    """A model at its real size, and the video it is benchmarked on."""

    family: str
    """'wan2.1' (16 latent channels; also each Wan2.2 A14B expert), 'wan2.2-5b' (48) or 'cogvideox-5b'."""
    dim: int
    layers: int
    ffn: int
    frames: int
    height: int
    width: int
    experts: int = 1
    """2: the Wan2.2 A14B chain (high-noise expert, then low-noise expert from half the steps)."""


MODELS = {
    "wan2.1-1.3b": ModelSpec("wan2.1", 1536, 30, 8960, 81, 480, 832),
    "wan2.2-5b": ModelSpec("wan2.2-5b", 3072, 30, 14336, 81, 480, 832),
    "wan2.1-14b": ModelSpec("wan2.1", 5120, 40, 13824, 81, 480, 832),
    "wan2.2-a14b": ModelSpec("wan2.1", 5120, 40, 13824, 81, 480, 832, experts=2),
    "cogvideox-5b": ModelSpec("cogvideox-5b", 3072, 42, 0, 49, 480, 720),
}
SMOKE_MODELS = {
    "wan2.1-tiny": ModelSpec("wan2.1", 256, 3, 512, 9, 64, 96),
    "wan2.2-5b-tiny": ModelSpec("wan2.2-5b", 256, 3, 512, 9, 64, 96),
    "wan2.2-a14b-tiny": ModelSpec("wan2.1", 256, 3, 512, 9, 64, 96, experts=2),
}
ARMS = ["plain", "numina", "easycache", "short", "finish"]
NOUN_TOKENS = {"noun0": [3], "noun1": [5], "noun2": [7]}


@dataclass
class Measured:
    seconds: float
    peak_gib: float


@dataclass
class ModelResult:
    model: str
    steps: int
    capture_step: int
    arms: dict[str, Measured] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    """Seconds of the parts: phase 1 of each arm, identify, phase 2."""
    finish_equals_plain: bool | None = None
    modulated_calls: int = 0
    profiles: dict[str, str] = field(default_factory=dict)
    """With --profile: torch.profiler operator tables of one plain and one guided (phase 2) run, and of the short
    arm's phase 1."""
    error: str | None = None


def on_cuda() -> bool:
    import comfy.model_management

    return comfy.model_management.get_torch_device().type == "cuda"


def synchronize() -> None:
    if on_cuda():
        torch.cuda.synchronize()


def timed(fn):
    """(result, Measured) of fn(): wall seconds between device synchronisations, peak allocated GiB."""
    synchronize()
    if on_cuda():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fn()
    synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if on_cuda() else float("nan")
    return result, Measured(seconds, peak)


def random_wan_state_dict(spec: ModelSpec, seed: int, dtype: torch.dtype, device: str) -> dict:
    """Random weights with the keys and shapes of ComfyUI's WanModel at `spec` (built on the meta device, so
    even 14B costs no host memory), N(0, 1/fan_in), biases 0, norms 1; generated on `device`."""
    import comfy.ldm.wan.model
    import comfy.ops

    channels = 48 if spec.family == "wan2.2-5b" else 16
    with torch.device("meta"):
        model = comfy.ldm.wan.model.WanModel(model_type="t2v", patch_size=(1, 2, 2), dim=spec.dim, ffn_dim=spec.ffn,
                                             freq_dim=256, text_dim=4096, in_dim=channels, out_dim=channels,
                                             num_heads=spec.dim // 128, num_layers=spec.layers,
                                             operations=comfy.ops.disable_weight_init)
    generator = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("bias"):
            state[name] = torch.zeros(tensor.shape, dtype=dtype, device=device)
        elif "norm" in name:
            state[name] = torch.ones(tensor.shape, dtype=dtype, device=device)
        else:
            fan_in = math.prod(tensor.shape[1:]) if tensor.ndim > 1 else tensor.numel()
            state[name] = (torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32)
                           / max(1, fan_in) ** 0.5).to(dtype)
    return state


def load_models(spec: ModelSpec, device: str) -> list:
    """ModelPatchers from ComfyUI's loader (bf16 weights, as the released checkpoints), one per expert."""
    import comfy.sd

    models = []
    for expert in range(spec.experts):
        if spec.family == "cogvideox-5b":
            from devtools.cogvideox_models import cogvideox_state_dict

            state = cogvideox_state_dict("cogvideox-5b", seed=expert, dtype=torch.bfloat16, device=device,
                                         **({} if spec.dim == 3072 else {"heads": spec.dim // 64,
                                                                          "layers": spec.layers}))
        else:
            state = random_wan_state_dict(spec, expert, torch.bfloat16, device)
        models.append(comfy.sd.load_diffusion_model_state_dict(state))
        del state
        if device == "cuda":
            torch.cuda.empty_cache()
    return models


def latent_and_conditioning(spec: ModelSpec):
    if spec.family == "cogvideox-5b":
        from devtools import cogvideox_models as cog

        return (cog.empty_latent(spec.frames, spec.height, spec.width)["samples"], cog.random_conditioning(1, 24),
                cog.random_conditioning(2, 24))
    from devtools.wan_models import empty_latent, random_conditioning

    return (empty_latent(spec.family, spec.frames, spec.height, spec.width)["samples"], random_conditioning(1, 24),
            random_conditioning(2, 24))


def correction_layout(grid, nouns):
    """Every frame of every noun: one instance kept (6×6 tokens, or what fits) and, beside it, one removed and one
    added for the first noun, one removed for the second, one added for the others. Every mechanism runs, and
    the second noun, over-counted only, has its background suppressed under every background_suppress_nouns
    setting, so the guided step takes the dense path whichever the preset uses."""
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED, Layout

    side = max(1, min(6, grid.height, grid.width // 3))
    rng = np.random.default_rng(0)
    labels = {}
    for index, noun in enumerate(nouns):
        corrections = [REMOVED, FIRST_ADDED] if index == 0 else [REMOVED] if index == 1 else [FIRST_ADDED]
        frames = np.zeros(grid.shape, dtype=np.int32)
        for f in range(grid.frames):
            y, x = rng.integers(0, grid.height - side + 1), rng.integers(0, grid.width - 3 * side + 1)
            for slot, label in enumerate([1] + corrections):
                frames[f, y:y + side, x + slot * side:x + (slot + 1) * side] = label
        labels[noun] = frames
    return Layout(grid, labels)


class Bench:
    """One model's arms, sampled as KSampler (one expert) or two chained KSamplerAdvanced (two experts)."""

    def __init__(self, name: str, spec: ModelSpec, steps: int, schedule_steps: int, device: str, overrides: dict):
        import comfy.sample
        from numina_pack.nodes.adapters import adapter_for
        from numina_pack.numina_core.config import preset

        self.name, self.spec, self.steps, self.schedule_steps = name, spec, steps, schedule_steps
        self.experts = load_models(spec, device)
        self.adapter = adapter_for(self.experts[0], "benchmark")
        self.config = preset("improved", **overrides)
        self.block = self.config.capture_block_for(self.adapter.blocks)
        self.step = self.config.capture_step_for(steps)
        latent, self.positive, self.negative = latent_and_conditioning(spec)
        self.latent = self.adapter.prepare_latent(latent)
        self.noise = comfy.sample.prepare_noise(self.latent, 0)
        self.switch = steps // 2 if spec.experts == 2 else steps
        """Step where the low-noise expert takes over (as ComfyUI's A14B template: half the steps)."""

    def provenance(self):
        from numina_pack.numina_core.grid import SamplingProvenance

        return SamplingProvenance("benchmark", 0, self.steps, 5.0, "uni_pc", "simple")

    def sample(self, models: list) -> torch.Tensor:
        """KSampler, or the A14B chain: expert 1 steps 0..switch with leftover noise, expert 2 to the end."""
        import comfy.sample

        def run(model, noise, latent, start, last):
            return comfy.sample.sample(model, noise, self.steps, 5.0, "uni_pc", "simple", self.positive,
                                       self.negative, latent, start_step=start, last_step=last,
                                       force_full_denoise=last == self.steps, disable_pbar=True, seed=0)

        if len(models) == 1:
            return run(models[0], self.noise, self.latent, None, None)
        leftover = run(models[0], self.noise, self.latent, 0, self.switch)
        return run(models[1], torch.zeros_like(self.noise), leftover, self.switch, self.steps)

    def warm_up(self) -> None:
        """Two steps per expert: weights onto the device, kernels, allocator."""
        import comfy.sample

        for model in self.experts:
            comfy.sample.sample(model, self.noise, 2, 5.0, "uni_pc", "simple", self.positive, self.negative,
                                self.latent, disable_pbar=True, seed=0)

    def phase_one(self, model, schedule_steps: int = 0, finish=None):
        from numina_pack.nodes.adapters import adapter_for

        return adapter_for(model, "benchmark").run_phase_one(
            self.provenance(), self.positive, self.negative, {"samples": self.latent}, NOUN_TOKENS, self.block,
            self.step, self.config.replace(capture_schedule_steps=schedule_steps), finish=finish)

    def guided_models(self):
        """Phase 2's models (one per expert) and the first expert's guidance hook."""
        from numina_pack.nodes.adapters import adapter_for

        layout = correction_layout(self.adapter.token_grid(self.latent), NOUN_TOKENS)
        guided, hooks = [], []
        for expert, model in enumerate(self.experts):
            first = 0 if expert == 0 else self.switch
            clone, hook, _ = adapter_for(model, "benchmark").guided_model(layout, NOUN_TOKENS, self.config,
                                                                          self.steps, first)
            guided.append(clone)
            hooks.append(hook)
        return guided, hooks

    def profile_tables(self, runs: dict, rows: int = 20) -> dict[str, str]:
        """Operator tables of each of `runs` (name: a function that samples), untimed, after the timed arms: where
        a guided step or phase 1 spends what plain sampling does not. Sorted by self device time (self CPU time
        on the CPU); headed by the run's wall seconds and, on the GPU, the seconds the device was busy, so that
        time the device waited for the host shows as their difference."""
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda() else [])
        key = "self_cuda_time_total" if on_cuda() else "self_cpu_time_total"
        tables = {}
        for name, run in runs.items():
            with profile(activities=activities) as profiler:
                start = time.perf_counter()
                run()
                synchronize()
                wall = time.perf_counter() - start
            events = profiler.key_averages()
            heading = f"wall {wall:.3f} s"
            if on_cuda():  # device-side events only: an operator's own row repeats its kernels' time
                busy = sum(event.self_device_time_total for event in events
                           if event.device_type == DeviceType.CUDA) / 1e6
                heading += f", device busy {busy:.3f} s (kernels and copies, summed)"
            tables[name] = heading + "\n" + events.table(sort_by=key, row_limit=rows)
        return tables

    def run(self, arms: list[str], profile: bool = False) -> ModelResult:
        from numina_pack.numina_core.identify import identify

        result = ModelResult(self.name, self.steps, self.step)
        counts = {noun: 2 for noun in NOUN_TOKENS}
        self.warm_up()
        plain = None
        if "plain" in arms:
            plain, result.arms["plain"] = timed(lambda: self.sample(self.experts))
        phase_two = None
        if any(arm in arms for arm in ("numina", "easycache", "short")):
            guided, hooks = self.guided_models()
            _, phase_two = timed(lambda: self.sample(guided))
            result.parts["phase 2"] = phase_two.seconds
            result.modulated_calls = sum(hook.modulated_calls for hook in hooks if hook is not None)
            if profile:
                result.profiles = self.profile_tables({"plain": lambda: self.sample(self.experts),
                                                       "guided": lambda: self.sample(guided)})
        phase_one_models = {"numina": (self.experts[0], 0), "short": (self.experts[0], self.schedule_steps)}
        if "easycache" in arms:
            from comfy_extras.nodes_easycache import EasyCacheNode

            cached = EasyCacheNode.execute(self.experts[0], 0.2, 0.15, 0.95, False).args[0]
            phase_one_models["easycache"] = (cached, 0)
        for arm in ("numina", "easycache", "short"):
            if arm not in arms:
                continue
            model, schedule = phase_one_models[arm]
            phase, measured = timed(lambda: self.phase_one(model, schedule))
            _, identified = timed(lambda: identify(phase.capture, counts, self.config))
            result.parts[f"phase 1 {arm}"] = measured.seconds
            result.parts[f"identify {arm}"] = identified.seconds
            result.arms[arm] = Measured(measured.seconds + identified.seconds + phase_two.seconds,
                                        max(measured.peak_gib, phase_two.peak_gib))
        if profile and "short" in arms:
            result.profiles.update(self.profile_tables(
                {"phase 1 short": lambda: self.phase_one(self.experts[0], self.schedule_steps)}))
        if "finish" in arms and self.spec.experts == 1:
            def no_correction_needed(capture) -> bool:
                identify(capture, counts, self.config)  # the decision's cost; this arm's layout needs nothing
                return True

            phase, result.arms["finish"] = timed(lambda: self.phase_one(self.experts[0], finish=no_correction_needed))
            result.finish_equals_plain = None if plain is None else bool(torch.equal(phase.samples, plain))
        return result


def ratio_table(results: list[ModelResult], card: str) -> str:
    lines = ["| model | steps (t*) | plain s | " + " | ".join(f"{arm} / plain" for arm in ARMS[1:]) +
             " | peak GiB plain / numina / easycache / short / finish |",
             "|---|---|---|" + "---|" * (len(ARMS) - 1) + "---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.steps} | failed: {r.error.splitlines()[-1][:120]} |")
            continue
        if "plain" in r.arms:
            plain = r.arms["plain"].seconds
            cells = [f"{r.arms[a].seconds / plain:.3f}" if a in r.arms else "—" for a in ARMS[1:]]
        else:  # plain ran in another process (e.g. on a second GPU): seconds, to be divided there
            plain = float("nan")
            cells = [f"{r.arms[a].seconds:.1f} s" if a in r.arms else "—" for a in ARMS[1:]]
        peaks = " / ".join(f"{r.arms[a].peak_gib:.1f}" if a in r.arms else "—" for a in ARMS)
        lines.append(f"| {r.model} | {r.steps} ({r.capture_step}) | {plain:.1f} | {' | '.join(cells)} | {peaks} |")
    return "\n".join(lines) + f"\n\ncard: {card}"


ATTENTION_BACKENDS = {
    "sdpa": ({"use_pytorch_cross_attention": True}, "attention_pytorch"),
    "sage": ({"use_sage_attention": True}, "attention_sage"),
    "xformers": ({}, "attention_xformers"),
}
"""--attention → (ComfyUI's command-line arguments for it, the host attention function ComfyUI must then pick)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help=f"default: all of {list(MODELS)}")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--schedule-steps", type=int, help="phase-1 steps of the 'short' arm (default: the benchmarked "
                                                              "config's capture_schedule_steps: the improved preset's, "
                                                              "the pack's default, unless --overrides sets it)")
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--attention", choices=list(ATTENTION_BACKENDS), default="sdpa",
                        help="ComfyUI's attention backend for the host's attention (guidance rows always use SDPA); "
                             "xformers is ComfyUI's choice wherever the package is installed")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, tiny models, 4 steps (capture at step 2): checks that the script runs")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='config fields to change on the improved preset, JSON (e.g. \'{"reference_step": 30}\')')
    parser.add_argument("--profile", action="store_true",
                        help="after the timed arms, print operator tables of one plain and one guided run (needs an "
                             "arm with phase 2, e.g. numina) and, with the short arm, of its phase 1")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    cli_args, expected_backend = ATTENTION_BACKENDS[args.attention]
    import_comfyui(cpu=args.smoke, **cli_args)
    import comfy.ldm.modules.attention
    import comfy.utils

    chosen = comfy.ldm.modules.attention.optimized_attention.__name__
    if chosen != expected_backend:
        sys.exit(f"--attention {args.attention}: ComfyUI chose {chosen}, not {expected_backend} (is the backend's "
                 "package installed and importable?)")

    comfy.utils.PROGRESS_BAR_ENABLED = False
    import_pack()
    if args.schedule_steps is None:
        from numina_pack.numina_core.config import preset

        args.schedule_steps = preset("improved", **args.overrides).capture_schedule_steps
    catalogue = SMOKE_MODELS if args.smoke else MODELS
    names = args.models or list(catalogue)
    steps = 4 if args.smoke else args.steps
    device = "cpu" if args.smoke else "cuda"
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    header = (f"ComfyUI {comfyui_version()} ({comfyui_commit()}), torch {torch.__version__}, {card}, attention "
              f"{args.attention}, uni_pc/simple, cfg 5, improved preset {json.dumps(args.overrides)}, short arm "
              f"{args.schedule_steps} steps")
    print(header, flush=True)
    results = []
    for name in names:
        spec = catalogue[name]
        start = time.perf_counter()
        try:
            with torch.inference_mode():  # as ComfyUI's server runs every prompt
                bench = Bench(name, spec, steps, args.schedule_steps, device, args.overrides)
                results.append(bench.run(args.arms, args.profile))
                del bench
        except Exception:
            results.append(ModelResult(name, steps, -1, error=traceback.format_exc()))
            print(results[-1].error, file=sys.stderr, flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
        summary = {key: value for key, value in asdict(results[-1]).items() if key != "profiles"}
        print(f"# {name}: {time.perf_counter() - start:.0f} s; {json.dumps(summary)}", flush=True)
        for run_name, table in results[-1].profiles.items():
            print(f"## {name}, {run_name} run\n{table}", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"header": header, "results": [asdict(r) for r in results]}, indent=1))
    print(ratio_table(results, card))


if __name__ == "__main__":
    main()
