"""Shared test setup: where the real ComfyUI checkout is, how to import it and the pack, and the
one summary line the integration tier must print."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
PACK_MODULE_NAME = "numina_pack"


def comfyui_path() -> Path:
    """$COMFYUI_PATH, else the path in the repo's .comfyui-path file, else $HOME/ComfyUI."""
    if os.environ.get("COMFYUI_PATH"):
        return Path(os.environ["COMFYUI_PATH"])
    path_file = REPO_ROOT / ".comfyui-path"
    if path_file.is_file():
        return Path(path_file.read_text().strip())
    return Path.home() / "ComfyUI"


def comfyui_missing_reason() -> str | None:
    path = comfyui_path()
    if not (path / "comfy" / "ldm" / "wan" / "model.py").is_file():
        return f"no ComfyUI checkout at {path} (set COMFYUI_PATH or run ../shared/tools/comfyui-setup.sh)"
    return None


def comfyui_commit() -> str:
    path = comfyui_path()
    marker = path / ".numina-comfyui-commit"
    if marker.is_file():
        return marker.read_text().strip()[:12]
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def import_comfyui() -> Path:
    """Put the real ComfyUI checkout on sys.path and import what the model path needs, with the
    CLI arguments a headless CPU run would have."""
    path = comfyui_path()
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (initialises the CPU device)
    return path


def import_pack():
    """Import the pack the way ComfyUI does (a package from its folder), under a fixed name."""
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


_integration_ran = 0
_integration_skip_reason: str | None = None


@pytest.fixture(scope="session")
def comfyui():
    """The real ComfyUI checkout, imported; skips (loudly, see the summary line) when absent."""
    global _integration_skip_reason
    reason = comfyui_missing_reason()
    if reason:
        _integration_skip_reason = reason
        pytest.skip(f"INTEGRATION TIER SKIPPED: {reason}")
    return import_comfyui()


@pytest.fixture(scope="session")
def pack(comfyui):
    """The pack imported as ComfyUI would import it (after ComfyUI itself)."""
    return import_pack()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def pytest_runtest_logreport(report):
    global _integration_ran
    if report.when == "call" and "integration" in report.keywords and not report.skipped:
        _integration_ran += 1


def pytest_terminal_summary(terminalreporter):
    reason = comfyui_missing_reason() or _integration_skip_reason
    if reason:
        line = f"integration tier: skipped ({reason})"
    else:
        line = f"integration tier: {_integration_ran} tests ran against ComfyUI {comfyui_commit()}"
    terminalreporter.write_line(line, bold=True, yellow=bool(reason))
