#!/usr/bin/env bash
# The README's main job in one command: build (or reuse) the dev venv, then run the six-node NUMINA
# pipeline headless in ComfyUI on the testbed model.   usage: bash scripts/demo.sh [--out DIR] [...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/setup_dev.sh" | tail -n 1)
cd "$repo"
exec "$venv/bin/python" scripts/run_demo.py "$@"
