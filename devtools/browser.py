"""Drive the REAL ComfyUI frontend (the comfyui-frontend-package the server serves) in headless Chromium.

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        frontend = Frontend.open(browser, server.url)        # waits for window.app and its graph
        frontend.open_template("numina-count-control", "numina_wan21_t2v_1.3b")
        state = frontend.graph_state()                       # nodes, widgets and their options
        frontend.screenshot(path)

The browser is Debian's `chromium` (Playwright's own browser download does not work where this pack
is developed); `browser_missing_reason()` says why the tier cannot run. The handles used here
(`window.app`, `app.graph`, `app.nodeOutputs`, `app.extensionManager.command`) are the ones the
frontend exposes to extensions in versions 1.27 to 1.49 (docs/browser-tier.md).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM_PATH = Path(os.environ.get("NUMINA_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium's own update/sync probes make the sandboxed
# machine refuse connections; --disable-dev-shm-usage keeps small /dev/shm containers from crashing it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1600, "height": 1000}
# Below a canvas scale of about 0.5 LiteGraph draws no text: screenshots zoom to at least this.
READABLE_SCALE = 0.6
# The frontend's full-screen loading mask (PrimeVue BlockUI) and its Run button, as an artist sees them.
LOADING_MASK = ".p-blockui-mask"
RUN_BUTTON = "button:has-text('Run')"


def browser_missing_reason() -> str | None:
    """Why the browser tier cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is not installed (pip install -r requirements-dev.txt)"
    if not (CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)):
        found = shutil.which("chromium")
        hint = f" (one is at {found}: set NUMINA_CHROMIUM)" if found else ""
        return f"no Chromium at {CHROMIUM_PATH}{hint}; install it with: apt-get install -y chromium"
    return None


def launch_chromium(playwright: "Playwright") -> "Browser":
    return playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)


# Runs in the page: every node with what an artist sees of it (type known to the frontend, widgets
# with their values and allowed values, images shown on it).
_GRAPH_STATE_JS = """() => app.graph._nodes.map(node => ({
  id: String(node.id), type: node.type, title: node.title, mode: node.mode,
  registered: !!LiteGraph.registered_node_types[node.type],
  size: [node.size[0], node.size[1]], min_size: node.computeSize ? Array.from(node.computeSize()) : null,
  widgets: (node.widgets || []).filter(w => w.name).map(w => {
    let values = w.options && w.options.values;
    if (typeof values === 'function') values = values(w, node);
    return {name: w.name, type: String(w.type), value: (typeof w.value === 'object' && w.value !== null) ? null : w.value,
            value_kind: w.value === null ? 'null' : typeof w.value,
            values: Array.isArray(values) ? values : null,
            min: w.options ? w.options.min : undefined, max: w.options ? w.options.max : undefined};
  }),
}))"""

# The dialogs and toasts the frontend raises (missing nodes, missing models, execution errors).
_ALERTS_JS = """() => [...document.querySelectorAll('[role=dialog], [role=alertdialog], .p-toast-message, .p-dialog')]
  .filter(el => el.offsetParent !== null || getComputedStyle(el).position === 'fixed')
  .map(el => el.innerText.trim()).filter(Boolean)"""

# Dropping a file on the canvas, exactly as the browser delivers an artist's drag and drop.
_DROP_FILE_JS = """([name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, {type: 'application/json'}));
  const canvas = document.querySelector('#graph-canvas') || document.querySelector('canvas');
  const rect = canvas.getBoundingClientRect();
  const at = {clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2};
  for (const type of ['dragenter', 'dragover', 'drop'])
    canvas.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true, ...at}));
}"""


class Frontend:
    """One page of the ComfyUI frontend, with the actions and read-outs the browser tests need."""

    def __init__(self, page: "Page", url: str) -> None:
        self.page = page
        self.url = url
        self.console_errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))

    @classmethod
    def open(cls, browser: "Browser", url: str, viewport: dict[str, int] = VIEWPORT,
             timeout_s: float = 120.0) -> "Frontend":
        frontend = cls(browser.new_page(viewport=viewport), url)
        frontend.page.goto(url, timeout=timeout_s * 1000)
        frontend.page.wait_for_function("window.app && window.app.graph && window.LiteGraph && app.extensionManager",
                                        timeout=timeout_s * 1000)
        frontend.page.wait_for_load_state("networkidle")
        frontend.wait_until_unblocked(timeout_s)
        return frontend

    def wait_until_unblocked(self, timeout_s: float = 30.0) -> None:
        """Wait until the frontend's full-screen loading mask (PrimeVue BlockUI, up while the app starts and
        while a dropped file loads) is gone. BlockUI keeps one mask for good when a second block starts during
        the first one's 150 ms leave animation: its animationend handler then removes the second mask, not its
        own. An artist never drops a file that fast; a test must wait as an artist does, or a stuck mask eats
        every later click."""
        try:
            self.page.wait_for_function("selector => !document.querySelector(selector)", arg=LOADING_MASK,
                                    timeout=timeout_s * 1000)
        except Exception as error:
            masks = self.page.evaluate("selector => [...document.querySelectorAll(selector)].map(m => m.className)",
                                       LOADING_MASK)
            raise AssertionError(f"the frontend's loading mask stays up after {timeout_s} s: {masks}") from error

    def close_dialogs(self, attempts: int = 5) -> None:
        """Close what the frontend opens on its own (the first-run template browser, notices)."""
        for _ in range(attempts):
            if not self.page.locator("[role=dialog]:visible").count():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)
        raise AssertionError(f"a dialog stays open: {self.alerts()}")

    @property
    def version(self) -> str:
        return self.page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || 'unknown'")

    # -- loading workflows -------------------------------------------------------------------------

    def open_template(self, pack: str, name: str, timeout_s: float = 30.0) -> None:
        """Open a pack's template as an artist does: Templates browser → the pack → the template's card."""
        page = self.page
        if not page.locator(f"text=/^{pack}$/").first.is_visible():
            page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        page.locator(f"text=/^{pack}$/").first.click(timeout=timeout_s * 1000)
        card = page.locator(f"h3:text-is('{name}')").first
        card.click(timeout=timeout_s * 1000)
        self._wait_for_workflow(name, timeout_s)

    def drop_workflow(self, file_name: str, workflow: dict, timeout_s: float = 30.0) -> None:
        """Drag a workflow file (UI or API format) onto the canvas."""
        self.close_dialogs()
        self.page.evaluate("() => app.graph.clear()")
        self.page.evaluate(_DROP_FILE_JS, [file_name, json.dumps(workflow)])
        self.page.wait_for_function("n => app.graph._nodes.length >= n", arg=1, timeout=timeout_s * 1000)
        self.wait_until_unblocked(timeout_s)

    def _wait_for_workflow(self, name: str, timeout_s: float) -> None:
        self.page.wait_for_function(
            "name => app.graph._nodes.length > 0 && (app.extensionManager.workflow?.activeWorkflow?.filename ?? name) === name",
            arg=name, timeout=timeout_s * 1000)
        time.sleep(0.5)  # the frontend resizes and draws the loaded nodes after this settles

    # -- reading the frontend's state --------------------------------------------------------------

    def graph_state(self) -> list[dict[str, Any]]:
        return self.page.evaluate(_GRAPH_STATE_JS)

    def alerts(self) -> list[str]:
        return self.page.evaluate(_ALERTS_JS)

    def node_outputs(self) -> dict[str, dict]:
        """app.nodeOutputs: what the frontend received for each executed node (images, ui text)."""
        return self.page.evaluate("() => JSON.parse(JSON.stringify(app.nodeOutputs || {}))")

    def text_on_node(self, node_id: str) -> str:
        """All text the frontend shows on a node: its text widgets, DOM widgets and (Vue node mode) its element."""
        return self.page.evaluate(
            """id => { const node = app.graph.getNodeById(id); const parts = [];
               for (const w of node.widgets || []) {
                 if (typeof w.value === 'string') parts.push(w.value);
                 const element = w.element || w.inputEl;
                 if (element) parts.push(element.value ?? '', element.innerText ?? '');
               }
               const vueNode = document.querySelector(`[data-node-id="${id}"]`);
               if (vueNode) parts.push(vueNode.innerText);
               return parts.join('\\n'); }""", node_id)

    # -- acting ------------------------------------------------------------------------------------

    def click_run(self) -> None:
        self.close_dialogs()
        self.page.locator(RUN_BUTTON).first.click()

    def wait_until_idle(self, server_url: str, timeout_s: float = 600.0) -> None:
        """Wait until the server's queue is empty and the frontend no longer marks a node as running."""
        deadline = time.monotonic() + timeout_s
        self.page.wait_for_timeout(500)
        while time.monotonic() < deadline:
            idle = self.page.evaluate(
                """async () => { const q = await (await fetch('/api/queue')).json();
                   return q.queue_running.length === 0 && q.queue_pending.length === 0 && app.runningNodeId == null; }""")
            if idle:
                return
            self.page.wait_for_timeout(500)
        raise TimeoutError(f"the queue of {server_url} was not empty after {timeout_s} s")

    def hide_minimap(self) -> None:
        """The minimap (frontend ≥ 1.28) covers the lower right of every screenshot."""
        self.page.evaluate("""async () => { try { await app.extensionManager.setting.set('Comfy.Minimap.Visible', false); }
                                            catch (error) { /* older frontends have no minimap */ } }""")

    def frame_nodes(self, node_ids: list[str] | None = None, min_scale: float = READABLE_SCALE) -> None:
        """Frame these nodes (default: all), never zooming out below the scale at which node text is drawn."""
        self.page.evaluate(
            """([ids, minScale]) => { const canvas = app.canvas;
               const nodes = app.graph._nodes.filter(n => !ids || ids.includes(String(n.id)));
               const title = LiteGraph.NODE_TITLE_HEIGHT;
               const left = Math.min(...nodes.map(n => n.pos[0])), top = Math.min(...nodes.map(n => n.pos[1] - title));
               const right = Math.max(...nodes.map(n => n.pos[0] + n.size[0]));
               const bottom = Math.max(...nodes.map(n => n.pos[1] + n.size[1]));
               const element = canvas.canvas, margin = 120;
               const scale = Math.max(minScale, Math.min(1.2, (element.clientWidth - 2 * margin) / (right - left),
                                                         (element.clientHeight - 2 * margin) / (bottom - top)));
               canvas.ds.scale = scale;
               canvas.ds.offset = [margin / scale - left, margin / scale - top];
               canvas.setDirty(true, true); }""", [node_ids, min_scale])
        self.page.wait_for_timeout(400)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
