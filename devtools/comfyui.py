"""Where the real ComfyUI checkouts are, and how scripts and tests import ComfyUI and the pack.

The one place that answers "which ComfyUI?" for the set-up script, the test command, the tests, the
demo, the testbed and the benchmarks:

1. ``$COMFYUI_PATH`` when set (one checkout);
2. else the paths listed in ``.comfyui-path`` at the repository root (one per line, ``~`` allowed);
3. else ``$HOME/ComfyUI-2026`` (ComfyUI 0.33, what artists run) and ``$HOME/ComfyUI`` (Oct 2025, the
   oldest supported); only where neither exists, ``.comfy-carry/ComfyUI`` (a copy carried to the GPU
   machine).

The first checkout that exists is the primary one (the demo and the scripts use it); the test command
runs the integration tier against every one that exists.

Run as a script it prints the checkouts: ``python3 devtools/comfyui.py [--primary|--all]``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_MODULE_NAME = "numina_pack"
"""The package name the pack is imported under outside ComfyUI (ComfyUI names it after its folder)."""


def candidate_paths() -> list[Path]:
    if os.environ.get("COMFYUI_PATH"):
        return [Path(os.environ["COMFYUI_PATH"])]
    listed = REPO_ROOT / ".comfyui-path"
    if listed.is_file():
        lines = [line.strip() for line in listed.read_text().splitlines()]
        return [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
    home = Path.home()
    return [home / "ComfyUI-2026", home / "ComfyUI", REPO_ROOT / ".comfy-carry" / "ComfyUI"]


def is_checkout(path: Path) -> bool:
    return (Path(path) / "comfy" / "ldm" / "wan" / "model.py").is_file()


CARRIED_CHECKOUT = REPO_ROOT / ".comfy-carry" / "ComfyUI"


def checkouts() -> list[Path]:
    """Every ComfyUI checkout present, primary first (the carried copy only where no other is)."""
    present = [path for path in candidate_paths() if is_checkout(path)]
    others = [path for path in present if path != CARRIED_CHECKOUT]
    return others or present


def comfyui_path() -> Path:
    """The primary checkout, or the first candidate when none exists (callers then say it is missing)."""
    present = checkouts()
    return present[0] if present else candidate_paths()[0]


def comfyui_missing_reason() -> str | None:
    if checkouts():
        return None
    tried = ", ".join(str(path) for path in candidate_paths())
    return (f"no ComfyUI checkout at {tried} (see README.md, Development: fetch one and run "
            "../shared/tools/comfyui-setup.sh, or set COMFYUI_PATH)")


def comfyui_commit(path: Path | None = None) -> str:
    path = Path(path) if path else comfyui_path()
    marker = path / ".numina-comfyui-commit"
    if marker.is_file():
        return marker.read_text().strip()[:12]
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def comfyui_version(path: Path | None = None) -> str:
    path = Path(path) if path else comfyui_path()
    version_file = path / "comfyui_version.py"
    if not version_file.is_file():
        return "unknown"
    namespace: dict = {}
    exec(version_file.read_text(), namespace)
    return namespace.get("__version__", "unknown")


def import_comfyui(cpu: bool | None = True, **cli_args) -> Path:
    """Put the primary checkout on sys.path and import what the model path needs, with the arguments a
    headless run would have (cpu=True: the CPU; None: the CPU only where CUDA is absent) and any other of
    ComfyUI's command-line arguments (e.g. use_pytorch_cross_attention=True). ComfyUI picks its device and
    attention backend when comfy.model_management is first imported, so the first call decides."""
    if "comfy.model_management" in sys.modules:
        return Path(sys.modules["comfy.model_management"].__file__).parents[1]
    path = comfyui_path()
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import torch

    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    for name, value in cli_args.items():
        if not hasattr(comfy.cli_args.args, name):
            raise ValueError(f"ComfyUI has no command-line argument {name!r}")
        setattr(comfy.cli_args.args, name, value)
    import comfy.model_management  # noqa: F401  (picks the device from the arguments above)
    return path


def import_pack():
    """Import the pack the way ComfyUI does (a package from its folder), under PACK_MODULE_NAME."""
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "--primary"
    if which == "--all":
        print("\n".join(str(path) for path in checkouts()))
    else:
        print(comfyui_path())
