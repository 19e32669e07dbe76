"""scripts/benchmark_gpu.py runs end to end on tiny models on the CPU (so it cannot silently rot): every arm
of a one-expert model and the two-expert A14B chain, a phase 1 that finishes the video gives plain's latent, and
--profile gives operator tables of a plain and a guided run."""
import json
import math
import os
import subprocess
import sys

from devtools.comfyui import REPO_ROOT, comfyui_path


def test_benchmark_smoke_measures_every_arm(comfyui, tmp_path):
    out = tmp_path / "smoke.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "benchmark_gpu.py"), "--smoke", "--schedule-steps", "1",
                    "--models", "wan2.1-tiny", "wan2.2-a14b-tiny", "--profile", "--json", str(out)],
                   check=True, timeout=900, env={**os.environ, "COMFYUI_PATH": str(comfyui_path())})
    results = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"wan2.1-tiny", "wan2.2-a14b-tiny"}
    single, chain = results["wan2.1-tiny"], results["wan2.2-a14b-tiny"]
    assert single["error"] is None and chain["error"] is None
    assert single["capture_step"] == 2 and single["steps"] == 4
    assert set(single["arms"]) == {"plain", "numina", "easycache", "short", "finish"}
    assert set(chain["arms"]) == {"plain", "numina", "easycache", "short"}
    for result in (single, chain):
        assert all(arm["seconds"] > 0 and math.isfinite(arm["seconds"]) for arm in result["arms"].values())
        assert result["modulated_calls"] > 0  # phase 2 really guided
    assert single["finish_equals_plain"] is True
    for result in (single, chain):  # --profile: the operator tables of a plain and a guided run
        assert set(result["profiles"]) == {"plain", "guided"}
        for table in result["profiles"].values():
            assert table.count("aten::") >= 10 and "Self CPU time total" in table


def test_benchmark_without_the_plain_arm_reports_seconds(comfyui, tmp_path):
    """A model too slow for plain and NUMINA in one command (14B at 50 steps) runs its arms in two processes,
    e.g. on two GPUs of one host: without 'plain' the script times only the asked arms and prints seconds."""
    out = tmp_path / "short_only.json"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "benchmark_gpu.py"), "--smoke",
                          "--schedule-steps", "1", "--models", "wan2.1-tiny", "--arms", "short", "--json", str(out)],
                         check=True, timeout=600, capture_output=True, text=True,
                         env={**os.environ, "COMFYUI_PATH": str(comfyui_path())})
    result = json.loads(out.read_text())["results"][0]
    assert result["error"] is None and set(result["arms"]) == {"short"}
    assert result["arms"]["short"]["seconds"] > result["parts"]["phase 2"] > 0
    row = next(line for line in run.stdout.splitlines() if line.startswith("| wan2.1-tiny"))
    assert f"{result['arms']['short']['seconds']:.1f} s" in row and "nan" in row
