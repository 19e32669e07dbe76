"""Makes ComfyUI's ``comfy`` package importable for the testbed's command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_comfyui() -> Path:
    """$COMFYUI_PATH, else the carried copy ``.comfy-carry/ComfyUI``, else ``$HOME/ComfyUI``."""
    candidates = [os.environ.get("COMFYUI_PATH"), REPO_ROOT / ".comfy-carry" / "ComfyUI", Path.home() / "ComfyUI"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "comfy" / "ldm" / "wan" / "model.py").is_file():
            return Path(candidate)
    raise RuntimeError("no ComfyUI checkout found: set COMFYUI_PATH to one")


def import_comfy(cpu: bool | None = None) -> Path:
    """Puts ComfyUI on ``sys.path`` with default CLI arguments; ``cpu`` None means: CPU if no CUDA."""
    if "comfy.model_management" in sys.modules:
        return Path(sys.modules["comfy.model_management"].__file__).parents[1]
    path = find_comfyui()
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import torch

    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    import comfy.model_management  # noqa: F401  (picks the device from the arguments above)

    return path
