#!/usr/bin/env bash
# Run the whole test suite with pytest: the unit tier once, and the integration tier against EVERY
# ComfyUI checkout present (devtools/comfyui.py lists them: $COMFYUI_PATH, .comfyui-path, or
# $HOME/ComfyUI-2026 and $HOME/ComfyUI), each in the development venv built for that checkout
# (scripts/setup_dev.sh). Every checkout runs even when an earlier one fails; the exit status is
# non-zero when any test failed, and the last line is pytest's summary line over all runs.
#   usage: bash scripts/test.sh [pytest options, e.g. -q -x -k parser]
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
mapfile -t checkouts < <(python3 devtools/comfyui.py --all)
status=0
run=0

# run_tier CHECKOUT TEST_PATH [pytest options]: pytest over TEST_PATH with CHECKOUT's venv.
run_tier() {
  local checkout=$1 tests=$2 venv
  shift 2
  run=$((run + 1))
  echo "=== $tests against ComfyUI at ${checkout:-(none)} ==="
  if ! venv=$(scripts/setup_dev.sh ${checkout:+"$checkout"} | tail -n1) || [ ! -x "$venv/bin/python" ]; then
    echo "could not build the development venv for ${checkout:-the default checkout}" >&2
    status=1
    return
  fi
  COMFYUI_PATH=${checkout:-${COMFYUI_PATH:-}} "$venv/bin/python" -m pytest "$tests" \
    --junitxml="$reports/run-$run.xml" "$@" || status=1
}

if [ ${#checkouts[@]} -eq 0 ]; then
  run_tier "" tests "$@"  # the integration tier skips, loudly, naming where it looked
else
  # The unit tier runs once, with the primary checkout; the integration tier with every checkout.
  run_tier "${checkouts[0]}" tests "$@"
  for checkout in "${checkouts[@]:1}"; do
    run_tier "$checkout" tests/integration "$@"
  done
fi

python3 - "$reports" "$run" <<'EOF'
"""One pytest-style summary line over every run's JUnit report (a run without one counts as an error)."""
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

folder, runs = Path(sys.argv[1]), int(sys.argv[2])
totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
seconds = 0.0
for index in range(1, runs + 1):
    report = folder / f"run-{index}.xml"
    if not report.is_file():
        totals["errors"] += 1
        continue
    for suite in ElementTree.parse(report).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
        seconds += float(suite.get("time", 0))
passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
errors = "error" if totals["errors"] == 1 else "errors"
counts = [(totals["failures"], "failed"), (passed, "passed"), (totals["skipped"], "skipped"), (totals["errors"], errors)]
parts = ", ".join(f"{number} {word}" for number, word in counts if number)
print(f"{'=' * 20} {parts or 'no tests ran'} in {seconds:.2f}s ({runs} pytest runs) {'=' * 20}")
EOF
exit $status
