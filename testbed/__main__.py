"""Command line: ``python -m testbed train|publish|evaluate|study ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from devtools.comfyui import import_comfyui


def main(argv: list[str] | None = None) -> int:
    # the device must be known before comfy is imported (it picks its device at import)
    device_only = argparse.ArgumentParser(add_help=False)
    device_only.add_argument("--device")
    device = device_only.parse_known_args(argv)[0].device
    import_comfyui(cpu=(device == "cpu") if device else None)

    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the testbed model (seeded, resumable)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    train.add_argument("--resume", type=Path, help="checkpoint folder to continue from")
    train.add_argument("--minutes", type=float, default=8.0, help="wall-clock training budget")
    train.add_argument("--max-steps", type=int, help="stop after this many steps of this run")
    train.add_argument("--batch", type=int, default=32)
    train.add_argument("--lr", type=float, default=4e-4)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save-every-minutes", type=float, default=2.0)
    train.add_argument("--device", help="cuda or cpu (default: cuda if available)")

    publish = commands.add_parser("publish", help="join a checkpoint's EMA shards into one bf16 file")
    publish.add_argument("checkpoint", type=Path)
    publish.add_argument("--to", type=Path, help="target file (default: testbed/weights/testbed_wan_count.safetensors)")

    evaluate = commands.add_parser("evaluate", help="count accuracy of sampling arms")
    from testbed import numina_arms  # registers the NUMINA arms
    from testbed.evaluate import add_arguments

    add_arguments(evaluate)
    study = commands.add_parser("study", help="layout agreement at the capture point and mechanism checks")
    numina_arms.add_study_arguments(study)

    args = parser.parse_args(argv)
    if args.command == "train":
        from testbed.train import TrainConfig, train as run_training

        config = TrainConfig(
            out=args.out, resume=args.resume, minutes=args.minutes, max_steps=args.max_steps, batch=args.batch,
            lr=args.lr, seed=args.seed, save_every_minutes=args.save_every_minutes,
        )
        if args.device:
            config.device = args.device
        run_training(config)
    elif args.command == "publish":
        from testbed.model import DEFAULT_WEIGHTS
        from testbed.train import publish as publish_weights

        print(publish_weights(args.checkpoint, args.to or DEFAULT_WEIGHTS))
    elif args.command == "study":
        with torch.inference_mode():  # as ComfyUI's server samples; uni_pc, for one, leaves autograd on otherwise
            numina_arms.run_studies(args)
    else:
        from testbed.evaluate import run_from_args

        with torch.inference_mode():
            run_from_args(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
