"""Shared test setup: where the real ComfyUI checkout is, how to import it and the pack, and the
one summary line the integration tier must print."""
from __future__ import annotations

from pathlib import Path

import pytest

from devtools.comfyui import (PACK_MODULE_NAME, REPO_ROOT, comfyui_commit, comfyui_missing_reason, comfyui_path,
                              comfyui_version, import_comfyui, import_pack)

SHARED_DIR = REPO_ROOT.parent / "shared"
__all__ = ["PACK_MODULE_NAME", "REPO_ROOT", "SHARED_DIR", "comfyui_path", "import_comfyui", "import_pack"]


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
        line = (f"integration tier: {_integration_ran} tests ran against ComfyUI {comfyui_commit()} "
                f"({comfyui_version()}, {comfyui_path()})")
    terminalreporter.write_line(line, bold=True, yellow=bool(reason))
