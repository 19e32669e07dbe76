"""The few ComfyUI HTTP endpoints the runner needs: POST /prompt, GET /history/<id>, GET /view."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid


class ServerUnreachable(RuntimeError):
    """The server did not answer (down, restarting, wrong URL); the job can go to another server."""


class PromptRejected(RuntimeError):
    """ComfyUI answered and refused or failed the job; retrying elsewhere would not help."""


class ComfyClient:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _get(self, path: str) -> bytes:
        return self._call(urllib.request.Request(self.url + path))

    def _call(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            raise ServerUnreachable(f"{self.url}: {error}") from error

    def queue(self, graph: dict) -> str:
        body = json.dumps({"prompt": graph, "client_id": self.client_id}).encode()
        request = urllib.request.Request(self.url + "/prompt", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            return json.loads(self._call(request))["prompt_id"]
        except urllib.error.HTTPError as error:
            raise PromptRejected(f"{self.url} rejected the workflow: {error.read().decode(errors='replace')}") from error

    def result(self, prompt_id: str) -> dict | None:
        """The finished history entry, or None while queued or running; raises PromptRejected if
        the run errored."""
        try:
            entry = json.loads(self._get(f"/history/{prompt_id}")).get(prompt_id)
        except urllib.error.HTTPError as error:
            raise ServerUnreachable(f"{self.url}: history answered {error.code}") from error
        if entry is None or entry.get("status", {}).get("completed") is None:
            return None
        if entry["status"].get("status_str") == "error":
            messages = [m for m in entry["status"].get("messages", []) if m and m[0] == "execution_error"]
            detail = messages[-1][1].get("exception_message", "") if messages else "execution error"
            raise PromptRejected(f"{self.url} failed the job: {str(detail).strip()}")
        return entry

    def download(self, file: dict) -> bytes:
        query = urllib.parse.urlencode({"filename": file["filename"], "subfolder": file.get("subfolder", ""),
                                        "type": file.get("type", "output")})
        try:
            return self._get(f"/view?{query}")
        except urllib.error.HTTPError as error:
            raise PromptRejected(f"{self.url}: output {file['filename']} not downloadable ({error.code})") from error


def output_files(entry: dict) -> list[dict]:
    """Files a finished prompt wrote: saved outputs, or its previews where it saved nothing."""
    files = [f for node in entry.get("outputs", {}).values() for items in node.values() if isinstance(items, list)
             for f in items if isinstance(f, dict) and "filename" in f]
    saved = [f for f in files if f.get("type", "output") == "output"]
    return saved or files
