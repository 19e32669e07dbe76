"""The CountBench runner against two REAL headless ComfyUI servers: one is killed while it runs a
job (the job moves to the other), then a second run resumes without redoing finished videos and
scores everything with a tiny random GroundingDINO written by the test.

Takes about a minute on 2 CPU cores, most of it starting ComfyUI twice in parallel."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import REPO_ROOT
from devtools.server import ComfyServer
from devtools.tiny_grounding_dino import write_tiny_grounding_dino

pytestmark = pytest.mark.slow

BAD_SEED = 0x1000000  # one above EmptyImage's colour maximum: ComfyUI refuses these jobs

# A solid frame batch coloured by the seed, blurred, passed through the test's hold node (below), saved as
# one PNG per frame named after the job (identical frames would be folded into one by an animated WEBP
# encoder); the prompt text goes into an unconnected node.
WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 6, "color": "{{seed}}"}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "5": {"class_type": "NuminaTestHoldAfterFirstJob", "inputs": {"images": ["2", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "bench/{{job}}"}},
    "4": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}} | {{counts}}"}},
}

# The test must kill server A while it runs a job, whatever the machine's speed: on a server whose base
# directory holds HOLD_FILE, every job after the first waits until the process is killed.
HOLD_FILE = "hold-after-first-job"
HOLD_NODE = f'''
import os, time
import folder_paths

finished = []


class HoldAfterFirstJob:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "hold"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"images": ("IMAGE",)}}}}

    @classmethod
    def IS_CHANGED(cls, images):
        return float("nan")  # never cached: every job passes through

    def hold(self, images):
        hold = os.path.join(folder_paths.base_path, "{HOLD_FILE}")
        while finished and os.path.exists(hold):
            time.sleep(0.05)
        finished.append(1)
        return (images,)


NODE_CLASS_MAPPINGS = {{"NuminaTestHoldAfterFirstJob": HoldAfterFirstJob}}
'''


def install_hold_node(server: ComfyServer, hold: bool) -> None:
    folder = server.base_dir / "custom_nodes" / "numina_test_hold"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(HOLD_NODE)
    if hold:
        (server.base_dir / HOLD_FILE).write_text("the test kills this server while a job waits here")
PROMPTS = [{"id": 1, "prompt": "Two cats on a sofa.", "noun_counts": {"cat": 2}},
           {"id": 2, "prompt": "A dog and a car.", "noun_counts": {"dog": 1, "car": 1}},
           {"id": 3, "prompt": "Three birds.", "noun_counts": {"bird": 3}}]


def start_both(tmp_path):
    servers = [ComfyServer(tmp_path / name, install_pack=False) for name in ("server_a", "server_b")]
    for server, hold in zip(servers, (True, False)):
        install_hold_node(server, hold)
    errors = []

    def start(server):
        try:
            server.start()
        except Exception as error:  # reported below, after both attempts
            errors.append(error)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return servers


def running(server) -> bool:
    with urllib.request.urlopen(server.url + "/queue", timeout=5) as response:
        return bool(json.loads(response.read())["queue_running"])


def bench_command(tmp_path, servers, *extra):
    command = [sys.executable, "-m", "numina_eval.bench", "run", "--bench", str(tmp_path / "bench.jsonl"),
               "--workflow", str(tmp_path / "workflow.json"), "--out", str(tmp_path / "out"),
               "--seeds", f"7,{0x00FF00},{BAD_SEED}"]
    for server in servers:
        command += ["--server", server.url]
    return command + list(extra)


def test_two_servers_one_killed_then_resume_and_score(comfyui, tmp_path):
    (tmp_path / "bench.jsonl").write_text("\n".join(json.dumps(p) for p in PROMPTS))
    (tmp_path / "workflow.json").write_text(json.dumps(WORKFLOW))
    write_tiny_grounding_dino(tmp_path / "models" / "tiny-gdino")
    server_a, server_b = start_both(tmp_path)
    try:
        # --- run 1: kill server A while it is executing a job -------------------------------
        runner = subprocess.Popen(bench_command(tmp_path, [server_a, server_b], "--no-score"), cwd=REPO_ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        videos = tmp_path / "out" / "videos"
        while time.monotonic() < deadline:
            done_on_a = [d for d in videos.glob("*/done.json") if server_a.url in d.read_text()]
            if done_on_a and running(server_a):
                break
            assert runner.poll() is None, f"runner ended before server A could be killed:\n{runner.stdout.read()}"
            time.sleep(0.05)
        else:
            pytest.fail("server A never finished a job and started another")
        server_a.kill()
        log_1, _ = runner.communicate(timeout=180)
        assert runner.returncode == 0, log_1
        assert "goes back to the queue" in log_1

        done = {d.parent.name: json.loads(d.read_text()) for d in videos.glob("*/done.json")}
        failed = {d.parent.name for d in videos.glob("*/failed.json")}
        good_keys = {f"{p['id']}_seed{s}" for p in PROMPTS for s in (7, 0x00FF00)}
        assert set(done) == good_keys, log_1
        assert failed == {f"{p['id']}_seed{BAD_SEED}" for p in PROMPTS}
        assert {r["server"] for r in done.values()} == {server_a.url, server_b.url}
        sent = json.loads((videos / "2_seed7" / "workflow.json").read_text())
        assert sent["1"]["inputs"]["color"] == 7
        assert sent["4"]["inputs"]["value"] == 'A dog and a car. | {"dog": 1, "car": 1}'
        assert sent["3"]["inputs"]["filename_prefix"] == "bench/2_seed7"

        # --- run 2: resume on server B only, then score --------------------------------------
        redo = videos / "3_seed7"
        for path in redo.iterdir():
            path.unlink()
        redo.rmdir()
        kept = {key: (videos / key / "done.json").stat().st_mtime_ns for key in good_keys - {"3_seed7"}}
        log_2 = subprocess.run(
            bench_command(tmp_path, [server_b], "--detector", "tiny-gdino", "--models-dir", str(tmp_path / "models"),
                          "--no-download", "--clip-model", str(tmp_path / "no-clip-here")),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert log_2.returncode == 0, log_2.stdout + log_2.stderr
        assert "9 jobs: 5 already done, 4 to run on 1 server(s)" in log_2.stdout
        assert {key: (videos / key / "done.json").stat().st_mtime_ns for key in kept} == kept
        assert json.loads((redo / "done.json").read_text())["server"] == server_b.url
    finally:
        server_a.stop()
        server_b.stop()

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    single, search = results["summaries"]
    assert single["label"] == "single seed (7)" and search["label"] == "seed search (best of 3)"
    assert (single["prompts"], single["failures"]) == (3, 0)
    assert search["count_acc"] >= single["count_acc"]
    assert search["clip_score"] is None and "unavailable" in results["settings"]["CLIP"]
    statuses = [(v["prompt_id"], v["seed"], v["status"]) for v in results["videos"]]
    assert [s for s in statuses if s[2] != "ok"] == [(str(p["id"]), BAD_SEED, "failed") for p in PROMPTS]
    for video in results["videos"]:
        if video["status"] == "ok":
            assert len(video["frame_counts"]) == 6  # every frame of the 6 PNGs, numina protocol
            assert set(video["frame_counts"][0]) == set(video["targets"])
        else:
            assert (video["count_acc"], video["tc"]) == (0.0, 0.0) and "rejected" in video["error"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "## Failures (3 of 9 videos; each scored 0)" in markdown
    assert (tmp_path / "out" / "per_numeral.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "videos.csv").read_text().count("\n") == 10
