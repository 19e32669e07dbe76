"""Queue (prompt, seed) jobs over one or more ComfyUI servers, collect their outputs, resume.

State lives in the output folder, one sub-folder per job under videos/: `done.json` once the
outputs are downloaded, `failed.json` when ComfyUI refused or failed the job. A rerun skips done
jobs and retries failed and unfinished ones. A job whose server stops answering goes back to the
queue for the other servers; with no server left the rest stay unfinished (reported missing).
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .client import ComfyClient, PromptRejected, ServerUnreachable, output_files
from .dataset import BenchPrompt
from .workflow import fill_workflow


@dataclass(frozen=True)
class Job:
    prompt: BenchPrompt
    seed: int

    @property
    def key(self) -> str:
        safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.prompt.prompt_id)
        return f"{safe_id}_seed{self.seed}"


def make_jobs(prompts: Sequence[BenchPrompt], seeds: Sequence[int]) -> list[Job]:
    return [Job(p, s) for p in prompts for s in seeds]


def job_dir(out_dir: Path, job: Job) -> Path:
    return Path(out_dir) / "videos" / job.key


def job_state(out_dir: Path, job: Job) -> tuple[str, dict]:
    """("done", record), ("failed", record) or ("missing", {})."""
    folder = job_dir(out_dir, job)
    for state in ("done", "failed"):
        marker = folder / f"{state}.json"
        if marker.is_file():
            return state, json.loads(marker.read_text())
    return "missing", {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: a killed runner never leaves a half-written marker


@dataclass
class GenerationReport:
    done: int
    skipped: int
    failed: int
    unfinished: int
    dead_servers: list[str]


def generate(jobs: Sequence[Job], workflow: dict, servers: Sequence[str], out_dir: Path,
             job_timeout: float = 3600.0, poll: float = 0.5,
             log: Callable[[str], None] = print) -> GenerationReport:
    """Run every job not already done, spread over `servers` (one job in flight per server)."""
    out_dir = Path(out_dir)
    todo: queue.Queue[Job] = queue.Queue()
    skipped = 0
    for job in jobs:
        if job_state(out_dir, job)[0] == "done":
            skipped += 1
        else:
            todo.put(job)
    total, lock = todo.qsize(), threading.Lock()
    tally = {"done": 0, "failed": 0}
    dead: list[str] = []
    log(f"{len(jobs)} jobs: {skipped} already done, {total} to run on {len(servers)} server(s)")

    def finished(kind: str, job: Job, server: str, seconds: float, note: str = "") -> None:
        with lock:
            tally[kind] += 1
            n = tally["done"] + tally["failed"]
        log(f"[{n}/{total}] {kind} {job.key} on {server} ({seconds:.1f} s){': ' + note if note else ''}")

    def worker(url: str) -> None:
        client = ComfyClient(url)
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            folder = job_dir(out_dir, job)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "failed.json").unlink(missing_ok=True)
            started = time.monotonic()
            try:
                files = _run_one(client, job, workflow, folder, job_timeout, poll)
            except ServerUnreachable as error:
                todo.put(job)  # another server takes it over
                with lock:
                    dead.append(url)
                log(f"server {url} unreachable ({error}); its job {job.key} goes back to the queue")
                return
            except (PromptRejected, TimeoutError) as error:
                _write_json(folder / "failed.json", {"error": str(error), "server": url})
                finished("failed", job, url, time.monotonic() - started, str(error)[:300])
                continue
            _write_json(folder / "done.json", {"prompt_id": job.prompt.prompt_id, "seed": job.seed, "server": url,
                                               "files": files, "seconds": time.monotonic() - started})
            finished("done", job, url, time.monotonic() - started)

    threads = [threading.Thread(target=worker, args=(url,), daemon=True) for url in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    unfinished = todo.qsize()
    if unfinished:
        log(f"{unfinished} job(s) unfinished: no server left; rerun to resume")
    return GenerationReport(tally["done"], skipped, tally["failed"], unfinished, dead)


def _run_one(client: ComfyClient, job: Job, workflow: dict, folder: Path, timeout: float, poll: float) -> list[str]:
    graph = fill_workflow(workflow, job.prompt.prompt, job.seed, job.prompt.noun_counts, job.prompt.prompt_id, job.key)
    (folder / "workflow.json").write_text(json.dumps(graph, indent=1))  # what was sent, for reproduction
    prompt_id = client.queue(graph)
    deadline = time.monotonic() + timeout
    while (entry := client.result(prompt_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not finished after {timeout} s on {client.url}")
        time.sleep(poll)
    files = output_files(entry)
    if not files:
        raise PromptRejected(f"{client.url} finished the job but it saved no image or video")
    names = []
    for index, file in enumerate(files):
        name = f"{index:03d}_{Path(file['filename']).name}"
        (folder / name).write_bytes(client.download(file))
        names.append(name)
    return names
