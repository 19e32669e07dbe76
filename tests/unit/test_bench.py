"""Runner pieces that need no server: prompt files, placeholders, frame reading, scoring state,
report files."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from numina_eval.bench.client import output_files
from numina_eval.bench.dataset import BenchPrompt, load_prompts
from numina_eval.bench.report import write_report
from numina_eval.bench.runner import Job, job_dir, job_state, make_jobs
from numina_eval.bench.scoring import read_frames, score_jobs
from numina_eval.bench.workflow import fill_workflow, load_workflow
from numina_eval.counting import NUMINA_PROTOCOL, T2V_COMPBENCH_PROTOCOL, first_seed, seed_search, summarize
from tests.conftest import SHARED_DIR

DEV_JSONL = SHARED_DIR / "countbench-dev" / "countbench_dev.jsonl"


def test_authors_folder_is_aligned_line_by_line(tmp_path):
    (tmp_path / "prompts.txt").write_text("Three cats on a sofa.\nA dog and two birds.")  # no final newline
    (tmp_path / "noun_counts.jsonl").write_text('{"cats": 3}\n{"dog": 1, "birds": 2}\n')
    prompts = load_prompts(tmp_path)
    assert [(p.prompt_id, p.prompt, p.noun_counts) for p in prompts] == [
        ("001", "Three cats on a sofa.", {"cats": 3}), ("002", "A dog and two birds.", {"dog": 1, "birds": 2})]


def test_misaligned_or_bad_files_are_refused(tmp_path):
    (tmp_path / "prompts.txt").write_text("a\nb\n")
    (tmp_path / "noun_counts.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match="2 prompts but .* 1 lines"):
        load_prompts(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "x", "noun_counts": {"cat": 1.5}}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: count for 'cat'"):
        load_prompts(bad)


@pytest.mark.skipif(not DEV_JSONL.is_file(), reason="../shared/countbench-dev is absent")
def test_shared_dev_split_loads():
    prompts = load_prompts(DEV_JSONL)
    assert len(prompts) == 105
    assert prompts[0].prompt_id == "1" and prompts[0].noun_counts == {"astronaut": 1}
    assert all(noun in p.prompt for p in prompts for noun in p.noun_counts)


def test_placeholders_are_filled_and_seed_becomes_an_integer(tmp_path):
    graph = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}, high quality", "clip": ["2", 0]}},
             "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": 20}},
             "4": {"class_type": "Count", "inputs": {"nouns": "{{counts}}", "prefix": "bench/{{job}}_{{id}}"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(graph))
    filled = fill_workflow(load_workflow(path), "Two cats.", 7, {"cats": 2}, "005", "005_seed7")
    assert filled["1"]["inputs"] == {"text": "Two cats., high quality", "clip": ["2", 0]}
    assert filled["3"]["inputs"]["seed"] == 7
    assert json.loads(filled["4"]["inputs"]["nouns"]) == {"cats": 2}
    assert filled["4"]["inputs"]["prefix"] == "bench/005_seed7_005"
    assert graph["3"]["inputs"]["seed"] == "{{seed}}", "the template must stay untouched"


def test_ui_format_and_missing_prompt_placeholder_are_explained(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(ValueError, match="Export \\(API\\)"):
        load_workflow(ui)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"1": {"class_type": "X", "inputs": {"text": "cats"}}}))
    with pytest.raises(ValueError, match="no \\{\\{prompt\\}\\} placeholder"):
        load_workflow(plain)


def test_output_files_prefers_saved_outputs_over_previews():
    entry = {"outputs": {"5": {"images": [{"filename": "a.webp", "subfolder": "", "type": "output"}],
                               "animated": [True]},
                         "6": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]}}}
    assert [f["filename"] for f in output_files(entry)] == ["a.webp"]
    only_preview = {"outputs": {"6": entry["outputs"]["6"]}}
    assert [f["filename"] for f in output_files(only_preview)] == ["p.png"]


def test_read_frames_decodes_animations_and_stills_in_order(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (8, 6), c) for c in colours]
    images[0].save(tmp_path / "000_anim.webp", save_all=True, append_images=images[1:], lossless=True)
    images[2].save(tmp_path / "001_still.png")
    frames = read_frames([tmp_path / "000_anim.webp", tmp_path / "001_still.png"])
    assert [tuple(int(x) for x in f[0, 0]) for f in frames] == colours + [colours[2]]
    assert frames[0].shape == (6, 8, 3) and frames[0].dtype == np.uint8


def _done(out_dir, job, frames_count):
    folder = job_dir(out_dir, job)
    folder.mkdir(parents=True)
    # distinct frames: encoders fold identical consecutive frames into one
    images = [Image.new("RGB", (4, 4), (40 * i, 0, 0)) for i in range(frames_count)]
    images[0].save(folder / "000_x.webp", save_all=True, append_images=images[1:], lossless=True)
    (folder / "done.json").write_text(json.dumps({"files": ["000_x.webp"]}))


def test_scoring_counts_missing_failed_and_unreadable_videos_as_zero(tmp_path):
    prompts = load_prompts(_write_jsonl(tmp_path, [("1", {"cat": 2}), ("2", {"dog": 1}), ("3", {"car": 1})]))
    jobs = make_jobs(prompts, [0, 1])
    for job in jobs[:3]:
        _done(tmp_path, job, 4)
    failed = job_dir(tmp_path, jobs[3])
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"error": "out of memory"}))
    broken = job_dir(tmp_path, jobs[4])
    broken.mkdir(parents=True)
    (broken / "done.json").write_text(json.dumps({"files": ["gone.mp4"]}))
    # jobs[5] never ran
    calls = []

    def counter(frames, nouns):
        calls.append(len(frames))
        return [{noun: 2 for noun in nouns}] * len(frames)

    videos = score_jobs(jobs, tmp_path, NUMINA_PROTOCOL, counter, "fake", log=lambda _: None)
    assert [(v.status, v.count_acc) for v in videos] == [
        ("ok", 1.0), ("ok", 1.0), ("ok", 0.0), ("failed", 0.0), ("failed", 0.0), ("missing", 0.0)]
    assert videos[3].error == "out of memory" and "no output" in videos[5].error
    assert calls == [4, 4, 4]
    assert job_state(tmp_path, jobs[0])[0] == "done"
    # counts are cached per counter tag: rescoring does not count again, a new tag does
    score_jobs(jobs, tmp_path, NUMINA_PROTOCOL, counter, "fake", log=lambda _: None)
    assert calls == [4, 4, 4]
    score_jobs(jobs, tmp_path, T2V_COMPBENCH_PROTOCOL, counter, "other", log=lambda _: None)
    assert calls == [4, 4, 4, 4, 4, 4]

    single = summarize(first_seed(videos, [0, 1]), "single")
    best = summarize(seed_search(videos), "best")
    # seed 0: cat right (1), dog counted 2 instead of 1 (0), car unreadable (0)
    assert (single.count_acc, single.failures) == (pytest.approx(1 / 3), 1)
    assert (best.count_acc, best.failures) == (pytest.approx(1 / 3), 1)  # seed 1 fails dog and car
    paths = write_report(tmp_path, [single, best], videos, {"protocol": NUMINA_PROTOCOL.describe()})
    markdown = paths["markdown"].read_text()
    assert "| single | 3 | 1 | 0.3333 |" in markdown
    assert "prompt 3, seed 1: missing" in markdown and "unavailable" in markdown
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed", "failed", "missing"]
    assert json.loads(paths["json"].read_text())["summaries"][0]["per_numeral"] == {"1": 0.0, "2": 1.0}
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_job_keys_are_file_name_safe_and_unique():
    assert Job(BenchPrompt("a/b c", "x", {"x": 1}), 3).key == "a_b_c_seed3"
    assert Job(BenchPrompt("1", "x", {"x": 1}), 3).key != Job(BenchPrompt("1", "x", {"x": 1}), 4).key


def _write_jsonl(tmp_path, items):
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "prompt": f"some {next(iter(c))}", "noun_counts": c})
                              for i, c in items))
    return path
