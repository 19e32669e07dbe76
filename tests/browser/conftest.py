"""Browser tier: the real ComfyUI frontend in headless Chromium (Debian's package) driven by Playwright,
against the real headless ComfyUI server with this pack installed. Prints one summary line:
`browser tier: N tests ran (...)` or `browser tier: skipped (<why>)`.

Screenshots go to $NUMINA_BROWSER_ARTIFACTS, default tests/browser/artifacts/ (ignored by git)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.browser import VIEWPORT, Frontend, browser_missing_reason, launch_chromium
from devtools.comfyui import comfyui_commit, comfyui_missing_reason
from devtools.server import ComfyServer

BROWSER_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = Path(os.environ.get("NUMINA_BROWSER_ARTIFACTS", BROWSER_DIR / "artifacts"))

_ran = 0
_skip_reason: str | None = None
_versions: dict[str, str] = {}


def tier_missing_reason() -> str | None:
    reason = comfyui_missing_reason()
    return f"no ComfyUI checkout: {reason}" if reason else browser_missing_reason()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session; skips (loudly, see the summary line) without it."""
    global _skip_reason
    reason = tier_missing_reason()
    if reason:
        _skip_reason = reason
        pytest.skip(f"BROWSER TIER SKIPPED: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        _versions["Chromium"] = browser.version
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def start_frontend(chromium) -> Callable[[ComfyServer], Frontend]:
    """Opens a fresh page of a server's frontend, ready for an artist: first-run dialogs closed, no minimap."""
    def start(server: ComfyServer, viewport: dict[str, int] = VIEWPORT) -> Frontend:
        frontend = Frontend.open(chromium, server.url, viewport)
        frontend.close_dialogs()
        frontend.hide_minimap()
        _versions["frontend"] = frontend.version
        return frontend
    return start


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BROWSER_DIR in item.path.parents:
            item.add_marker(pytest.mark.browser)


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the real ComfyUI frontend in headless Chromium")


def pytest_runtest_logreport(report):
    global _ran
    if report.when == "call" and "browser" in report.keywords and (not report.skipped or hasattr(report, "wasxfail")):
        _ran += 1


def pytest_terminal_summary(terminalreporter):
    reason = tier_missing_reason() or _skip_reason
    if reason:
        line = f"browser tier: skipped ({reason})"
    else:
        versions = ", ".join(f"{name} {version}" for name, version in _versions.items())
        line = f"browser tier: {_ran} tests ran ({versions}, ComfyUI {comfyui_commit()}; screenshots in {ARTIFACTS_DIR})"
    terminalreporter.write_line(line, bold=True, yellow=bool(reason))
