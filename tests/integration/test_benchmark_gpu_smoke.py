"""scripts/benchmark_gpu.py runs end to end on tiny models on the CPU (so it cannot silently rot): every arm
of a one-expert model and the two-expert A14B chain, a phase 1 that finishes the video gives plain's latent, and
--profile gives operator tables of a plain run, a guided run and the short arm's phase 1."""
import importlib.util
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
    for result in (single, chain):  # --profile: operator tables of a plain run, a guided run and phase 1
        assert set(result["profiles"]) == {"plain", "guided", "phase 1 short"}
        for table in result["profiles"].values():
            assert table.startswith("wall ") and table.count("aten::") >= 10 and "Self CPU time total" in table


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


def test_benchmark_layout_takes_the_dense_background_path_under_every_setting(pack):
    """The timed guided step must keep measuring the default's heaviest path (background suppression over nearly
    every row, the dense branch) whichever nouns the preset suppresses, so figures stay comparable across
    changes of background_suppress_nouns."""
    from numina_pack.nodes.adapters.wan import CrossAttentionGuidanceHook
    from numina_pack.numina_core.config import preset
    from numina_pack.numina_core.grid import TokenGrid
    from numina_pack.numina_core.guidance import build_guidance_plan

    spec = importlib.util.spec_from_file_location("benchmark_gpu", REPO_ROOT / "scripts" / "benchmark_gpu.py")
    benchmark = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("benchmark_gpu", benchmark)  # its dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    grid = TokenGrid(21, 15, 26)  # Wan2.2 5B at 832×480×81
    layout = benchmark.correction_layout(grid, benchmark.NOUN_TOKENS)
    for nouns in ("all", "over_counted", "not_under_counted"):
        plan = build_guidance_plan(layout, benchmark.NOUN_TOKENS,
                                   preset("improved", background_suppress_nouns=nouns))
        assert len(plan.rows) >= CrossAttentionGuidanceHook.dense_row_fraction * grid.tokens
        assert len(plan.rows) > 0.9 * grid.tokens and plan.reference_rows.shape[0] > 0


def test_benchmark_refuses_a_backend_comfyui_did_not_pick(comfyui):
    """xformers is ComfyUI's own choice where it is installed; asked for where it is not (this CPU run), the
    script stops and says which backend ComfyUI picked instead of timing the wrong one."""
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "benchmark_gpu.py"), "--smoke", "--attention",
                          "xformers", "--models", "wan2.1-tiny"], timeout=300, capture_output=True, text=True,
                         env={**os.environ, "COMFYUI_PATH": str(comfyui_path())})
    assert run.returncode != 0
    assert "--attention xformers: ComfyUI chose attention_sub_quad, not attention_xformers" in run.stderr
