"""Cost of NUMINA's capture and guidance inside ComfyUI's real Wan sampling, as ratios to plain sampling
measured in the same process (random weights at the real architecture; no weights can be downloaded).

Prints a table: plain step time, the capture run's extra cost in plain steps, and the guided step time
as a ratio to the plain step, for a layout with removals and additions on every frame of every noun.
    python scripts/benchmark_gpu.py                      # Wan2.1-1.3B at 832×480×81 on CUDA
    python scripts/benchmark_gpu.py --dim 5120 --layers 40 --ffn 13824   # 14B-shaped
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_sample(model, latent, steps, seed, positive, negative, last_step=None) -> list[float]:
    """Per-step seconds of one comfy.sample.sample call (CUDA-synchronised in the step callback)."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    marks = [time.perf_counter()]

    def callback(step, x0, x, total):
        torch.cuda.synchronize()
        marks.append(time.perf_counter())

    comfy.sample.sample(model, noise, steps, 5.0, "uni_pc", "simple", positive, negative, latent,
                        last_step=last_step, callback=callback, disable_pbar=True, seed=seed)
    return list(np.diff(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--ffn", type=int, default=8960)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--capture-step", type=int, default=3)
    parser.add_argument("--nouns", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (a smoke test of the script)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import comfyui_path, import_pack

    sys.path.insert(0, str(comfyui_path()))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = args.cpu
    import comfy.sd

    pack = import_pack()
    from numina_pack.nodes.adapters import wan
    from numina_pack.nodes.sampling import NuminaAttentionCaptureKSampler
    from numina_pack.numina_core.config import preset
    from numina_pack.numina_core.grid import FIRST_ADDED, REMOVED, Layout
    from numina_pack.numina_core.guidance import build_guidance_plan
    from numina_pack.numina_core.targets import NuminaTargets
    from devtools.wan_models import empty_latent, random_conditioning, tiny_wan_state_dict

    if args.cpu:
        torch.cuda.synchronize = lambda: None
    # bf16, as the released checkpoints: float32 weights would make ComfyUI compute in float32.
    state = {k: v.to(torch.bfloat16) for k, v in
             tiny_wan_state_dict("wan2.1", dim=args.dim, layers=args.layers, ffn=args.ffn).items()}
    model = comfy.sd.load_diffusion_model_state_dict(state)
    del state
    latent = empty_latent("wan2.1", args.frames, args.height, args.width)["samples"]
    positive, negative = random_conditioning(1, 24), random_conditioning(2, 24)
    grid = wan.token_grid(model, latent, "benchmark")
    nouns = {f"noun{i}": [3 + 2 * i] for i in range(args.nouns)}
    targets = NuminaTargets("benchmark", {n: 2 for n in nouns}, nouns)
    config = preset("reference")

    timed_sample(model, latent, 2, 0, positive, negative)  # warm-up: load, kernels, allocator
    plain = timed_sample(model, latent, args.steps, 0, positive, negative)
    plain_step = statistics.median(plain[1:])

    torch.cuda.synchronize()
    start = time.perf_counter()
    capture = NuminaAttentionCaptureKSampler.execute(
        model, 0, args.steps, 5.0, "uni_pc", "simple", positive, negative, {"samples": latent}, targets,
        args.layers // 2, args.capture_step, "reference").args[0]
    torch.cuda.synchronize()
    capture_seconds = time.perf_counter() - start
    capture_extra = (capture_seconds - sum(plain[: args.capture_step + 1])) / plain_step

    labels = {}
    rng = np.random.default_rng(0)
    for noun in nouns:  # every frame: one instance kept, one removed, one added (6×6 tokens each)
        frames = np.zeros(grid.shape, dtype=np.int32)
        for f in range(grid.frames):
            y, x = rng.integers(0, grid.height - 6), rng.integers(0, grid.width - 18)
            frames[f, y : y + 6, x : x + 6] = 1
            frames[f, y : y + 6, x + 6 : x + 12] = REMOVED
            frames[f, y : y + 6, x + 12 : x + 18] = FIRST_ADDED
        labels[noun] = frames
    plan = build_guidance_plan(Layout(grid, labels), nouns, config)
    hook = wan.CrossAttentionGuidanceHook(plan, config, args.steps, 0, 1.0, 1, "benchmark")
    guided = timed_sample(wan.install_guidance(model, hook), latent, args.steps, 0, positive, negative)
    guided_step = statistics.median(guided[1:])
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if not args.cpu else float("nan")

    print(f"Wan dim {args.dim}, {args.layers} blocks, latent {tuple(latent.shape)}, token grid {grid} "
          f"({grid.tokens} tokens), {args.steps} uni_pc steps, cfg 5, device "
          f"{'cpu' if args.cpu else torch.cuda.get_device_name()}")
    print(f"capture: block {capture.block}, step {capture.step}; guidance: {len(plan.rows)} rows × "
          f"{len(plan.columns)} text tokens, {hook.modulated_calls} modulated block calls")
    print("| measure | value |\n|---|---|")
    print(f"| plain step (median) | {plain_step:.3f} s |")
    print(f"| capture run, extra over plain steps 0..t* | {capture_extra:+.2f} plain steps |")
    print(f"| guided step (median) / plain step | {guided_step / plain_step:.3f} |")
    print(f"| peak allocated | {peak:.2f} GiB |")


if __name__ == "__main__":
    main()
