"""Start the REAL headless ComfyUI server for tests, with this pack installed, and talk to it.

    with ComfyServer(tmp_path / "comfy") as server:      # CPU, free port, own base directory
        info = server.object_info()                      # GET /object_info
        prompt_id = server.post_prompt(graph)            # POST /prompt (API-format graph)
        entry = server.wait(prompt_id)                   # polls GET /history/<id> until done
        data = server.view(entry_file)                   # GET /view for an output file

The server runs `python main.py --cpu --listen 127.0.0.1 --port <free> --base-directory <dir>`
from the checkout `devtools.comfyui.comfyui_path()` with the interpreter running the tests (the dev
venv), so models/, input/, output/, temp/, user/ and custom_nodes/ all live under <dir>. The pack
is linked into <dir>/custom_nodes/ (pass install_pack=False for a bare server). Its console goes to
<dir>/server.log, whose tail is included in every error. `stop()` ends the whole process group:
SIGTERM, then SIGKILL after a grace period; `kill()` is an abrupt SIGKILL for interruption tests.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

from devtools.comfyui import REPO_ROOT, comfyui_path

PACK_FOLDER_NAME = "numina-count-control"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MODEL_LOADER_FOLDERS = {"UNETLoader": "diffusion_models", "CLIPLoader": "text_encoders", "VAELoader": "vae"}
"""The core loaders the example workflows use, and the models folder each reads."""


def write_empty_model_files(base_dir: Path, workflows: list[dict]) -> None:
    """An empty file for every model the workflows' loaders name, under base_dir/models/<folder>/, so their
    combo values are valid on a server started there (loading them then fails, at the loader)."""
    for workflow in workflows:
        for node in workflow["nodes"]:
            if node["type"] in MODEL_LOADER_FOLDERS:
                folder = base_dir / "models" / MODEL_LOADER_FOLDERS[node["type"]]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / node["widgets_values"][0]).write_bytes(b"")


class ComfyServerError(RuntimeError):
    pass


class ComfyServer:
    """One ComfyUI server process; use as a context manager or call start()/stop()."""

    def __init__(self, base_dir: Path, port: int | None = None, install_pack: bool = True,
                 extra_args: tuple[str, ...] = (), python: str = sys.executable,
                 comfyui: Path | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.install_pack = install_pack
        self.extra_args = tuple(extra_args)
        self.python = python
        self.comfyui = Path(comfyui) if comfyui else comfyui_path()
        self.process: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        """Launch the server and wait until /object_info answers."""
        if self.process is not None:
            raise ComfyServerError("server already started")
        (self.base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
        if self.install_pack:
            link = self.base_dir / "custom_nodes" / PACK_FOLDER_NAME
            if not link.exists():
                link.symlink_to(REPO_ROOT, target_is_directory=True)
        command = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base_dir), "--disable-auto-launch", *self.extra_args]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=self.comfyui, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComfyServerError(f"ComfyUI exited with {self.process.returncode} while starting:\n"
                                       f"{self.log_tail()}")
            try:
                self._request("GET", "/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.3)
        self.stop()
        raise ComfyServerError(f"ComfyUI did not answer within {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server's process group at once (simulates a crash or a pulled plug)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """End the server: SIGTERM to its process group, SIGKILL after `grace` seconds."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
            except ProcessLookupError:
                pass
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP API ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float = 30.0) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def object_info(self, node_class: str | None = None) -> dict:
        path = "/object_info" + (f"/{urllib.parse.quote(node_class)}" if node_class else "")
        return json.loads(self._request("GET", path))

    def post_prompt(self, graph: dict) -> str:
        """Queue an API-format graph; returns its prompt id. A graph ComfyUI rejects raises
        ComfyServerError with the server's explanation (node_errors)."""
        try:
            answer = json.loads(self._request("POST", "/prompt", {"prompt": graph, "client_id": self.client_id}))
        except urllib.error.HTTPError as error:
            raise ComfyServerError(f"ComfyUI rejected the graph: {error.read().decode(errors='replace')}") from error
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The history entry of a finished prompt, or None while it is queued or running."""
        return json.loads(self._request("GET", f"/history/{prompt_id}")).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.2, stall_timeout: float | None = None,
             progress: Callable[[str], None] | None = None) -> dict:
        """Wait for a prompt to finish; returns its history entry, raises if it errored. With `stall_timeout`,
        give up only when the server's log (where sampling prints its progress) has not grown for that many
        seconds, however long the prompt takes; `progress` gets the log's last progress line as it changes."""
        deadline = time.monotonic() + (stall_timeout if stall_timeout is not None else timeout)
        last_size, last_line = -1, ""
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error":
                    raise ComfyServerError(f"prompt {prompt_id} failed: {json.dumps(status.get('messages'))}")
                return entry
            if self.process is not None and self.process.poll() is not None:
                raise ComfyServerError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            if stall_timeout is not None:
                size = self.log_path.stat().st_size if self.log_path.exists() else 0
                if size != last_size:
                    last_size, deadline = size, time.monotonic() + stall_timeout
                    line = self.progress_line()
                    if progress is not None and line and line != last_line:
                        progress(line)
                    last_line = line
            time.sleep(poll)
        what = f"made no progress for {stall_timeout} s" if stall_timeout is not None else f"not finished after {timeout} s"
        raise ComfyServerError(f"prompt {prompt_id} {what}:\n{self.log_tail()}")

    def progress_line(self) -> str:
        """The last progress-bar state in the log (tqdm redraws its line with carriage returns)."""
        tail = self.log_tail(600).replace("\r", "\n").strip().splitlines()
        return tail[-1].strip() if tail else ""

    def view(self, file: dict) -> bytes:
        """Bytes of an output file as listed in a history entry ({filename, subfolder, type})."""
        query = urllib.parse.urlencode({"filename": file["filename"], "subfolder": file.get("subfolder", ""),
                                        "type": file.get("type", "output")})
        return self._request("GET", f"/view?{query}")
