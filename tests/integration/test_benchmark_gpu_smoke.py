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
