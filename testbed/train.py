"""Seeded, resumable training of the testbed model on synthetic counting videos.

Each step renders a fresh batch on the training device (``testbed.synthetic``),
captions it with the prompt grammar (10 % empty captions, for classifier-free guidance) and takes
one rectified-flow step in bf16 autocast with AdamW; an EMA of the weights is what gets published.

Checkpoints are written as bf16 safetensors shards of at most ``SHARD_BYTES`` each (the device
machine returns files of at most 16 MiB): ``raw-*.safetensors`` (training weights, what a resume
continues from), ``ema-*.safetensors`` (the EMA, what gets published) and ``state.json`` (step,
seed, loss curve). A resume starts AdamW's moments and the EMA afresh from the raw weights, with a
short learning-rate warm-up; that keeps each checkpoint small enough to travel.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import synthetic as sc
from .model import (
    FRAMES,
    SAMPLING_SHIFT,
    SIZE,
    UNET_CONFIG,
    WORD_EMBEDDING_KEY,
    build_wan,
    new_word_embedding,
    token_slots,
)

SHARD_BYTES = 15 * 1024 * 1024
EMPTY_CAPTION_RATE = 0.1
# A few batches of single frames, so that a one-frame sample (fast on CPU, used in tests) is in-distribution.
SINGLE_FRAME_RATE = 0.1


@dataclass
class TrainConfig:
    out: Path
    resume: Path | None = None
    minutes: float = 8.0
    max_steps: int | None = None
    batch: int = 32
    lr: float = 4e-4
    warmup_steps: int = 200
    resume_warmup_steps: int = 50
    weight_decay: float = 0.01
    ema_decay: float = 0.998
    seed: int = 0
    save_every_minutes: float = 2.0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"


class TestbedNet(torch.nn.Module):
    """What is trained: the Wan backbone plus the per-word text embedding feeding its context."""

    def __init__(self, device: torch.device | str):
        super().__init__()
        self.wan = build_wan(device=device)
        self.words = new_word_embedding(device=device)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        context = self.words(slots)  # padding id 0 embeds to zeros
        return self.wan(x, sigma * 1000.0, context)

    def export_state(self) -> dict[str, torch.Tensor]:
        """Flat bf16 state dict: WanModel keys plus the word embedding (the published format)."""
        state = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in self.wan.state_dict().items()}
        state[WORD_EMBEDDING_KEY] = self.words.weight.detach().to(torch.bfloat16).contiguous().cpu()
        return state

    @torch.no_grad()
    def import_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        self.words.weight.copy_(state.pop(WORD_EMBEDDING_KEY).float())
        self.wan.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def sample_sigmas(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """σ from a logit-normal, shifted like ComfyUI's flow schedule at ``SAMPLING_SHIFT``; 10 % uniform."""
    u = torch.sigmoid(torch.randn(batch, generator=generator, device=device))
    uniform = torch.rand(batch, generator=generator, device=device)
    u = torch.where(torch.rand(batch, generator=generator, device=device) < 0.1, uniform, u)
    return SAMPLING_SHIFT * u / (1 + (SAMPLING_SHIFT - 1) * u)


def make_batch(
    batch: int, frames: int, generator: torch.Generator, rng: random.Random, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(videos [B,3,F,64,64] in [-1,1], context slots [B,16]) with random prompts and 10 % empty captions."""
    scene = sc.sample_scenes(None, generator, batch=batch, frames=frames, size=SIZE, device=device)
    video = sc.render_scenes(scene, frames=frames, size=SIZE)
    counts = scene.counts().cpu().tolist()
    prompts = []
    for row in counts:
        present = [c for c, n in enumerate(row) if n > 0]
        rng.shuffle(present)  # category order in the prompt is free
        prompt = "" if rng.random() < EMPTY_CAPTION_RATE else sc.make_prompt({c: row[c] for c in present})
        prompts.append(sc.VOCABULARY.encode(prompt))
    return video, token_slots(prompts, device=device)


def save_shards(state: dict[str, torch.Tensor], directory: Path, stem: str) -> list[Path]:
    """Writes ``state`` as ``stem-00.safetensors``, ``stem-01.safetensors``… each under SHARD_BYTES."""
    for old in directory.glob(f"{stem}-*.safetensors"):
        old.unlink()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if size + nbytes > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    paths = []
    for i, shard in enumerate(shards):
        path = directory / f"{stem}-{i:02d}.safetensors"
        save_file(shard, str(path), metadata={"format": "pt", "model": "numina-testbed-wan"})
        paths.append(path)
    return paths


def load_shards(directory: Path, stem: str) -> dict[str, torch.Tensor]:
    paths = sorted(directory.glob(f"{stem}-*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"no {stem}-*.safetensors in {directory}")
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        state.update(load_file(str(path)))
    return state


def lr_at(step: int, start_step: int, config: TrainConfig) -> float:
    warm = config.resume_warmup_steps if start_step > 0 else config.warmup_steps
    return config.lr * min(1.0, (step - start_step + 1) / warm)


def train(config: TrainConfig) -> dict:
    """Trains until ``minutes`` or ``max_steps`` run out; returns the final state record."""
    device = torch.device(config.device)
    config.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    net = TestbedNet(device)
    record: dict = {"step": 0, "seed": config.seed, "unet_config": UNET_CONFIG, "loss_curve": [], "segments": []}
    if config.resume is not None:
        net.import_state(load_shards(config.resume, "raw"))
        record = json.loads((config.resume / "state.json").read_text())
    start_step = record["step"]
    # data and noise streams depend on (seed, step at start), so a resumed run does not replay its data
    generator = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + start_step)
    rng = random.Random(config.seed * 7_919 + start_step)
    ema = TestbedNet(device)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    t0 = time.time()
    last_save = t0
    step = start_step
    loss_sum = torch.zeros((), device=device)

    def save() -> None:
        record["step"] = step
        save_shards(net.export_state(), config.out, "raw")
        save_shards(ema.export_state(), config.out, "ema")
        (config.out / "state.json").write_text(json.dumps(record, indent=1))

    while True:
        elapsed = time.time() - t0
        if elapsed > config.minutes * 60 or (config.max_steps is not None and step - start_step >= config.max_steps):
            break
        frames = 1 if rng.random() < SINGLE_FRAME_RATE else FRAMES
        x0, slots = make_batch(config.batch, frames, generator, rng, device)
        sigma = sample_sigmas(config.batch, generator, device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        s = sigma[:, None, None, None, None]
        xt = (1 - s) * x0 + s * noise
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, start_step, config)
        with autocast:
            pred = net(xt, sigma, slots)
        loss = torch.nn.functional.mse_loss(pred.float(), noise - x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step == start_step:
            no_grad = [n for n, p in net.named_parameters() if p.grad is None]
            print(f"first step: loss {loss.item():.4f}, parameters without gradient: {no_grad or 'none'}", flush=True)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        # EMA warms up from the (re)start so a short segment still averages only trained weights
        decay = min(config.ema_decay, (1 + step - start_step) / (10 + step - start_step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - decay)
        step += 1
        loss_sum += loss.detach()
        if step % 100 == 0:
            mean = loss_sum.item() / min(100, step - start_step)
            loss_sum.zero_()
            record["loss_curve"].append([step, round(mean, 5), round(time.time() - t0, 1)])
            print(f"step {step} loss {mean:.4f} lr {lr_at(step, start_step, config):.2e} {time.time() - t0:.0f}s", flush=True)
        if time.time() - last_save > config.save_every_minutes * 60:
            save()
            last_save = time.time()
    record["segments"].append({"start": start_step, "end": step, "seconds": round(time.time() - t0, 1), "device": str(device)})
    save()
    steps_done = step - start_step
    print(f"done: {steps_done} steps in {time.time() - t0:.0f}s ({steps_done / max(time.time() - t0, 1e-9):.2f} it/s)", flush=True)
    return record


def publish(checkpoint: Path, target: Path) -> Path:
    """Joins a checkpoint's EMA shards into one bf16 safetensors file (the committed weights)."""
    state = load_shards(checkpoint, "ema")
    record = json.loads((checkpoint / "state.json").read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in state.items()},
        str(target),
        metadata={"format": "pt", "model": "numina-testbed-wan", "step": str(record["step"]), "seed": str(record["seed"])},
    )
    return target

