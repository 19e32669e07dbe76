#!/usr/bin/env bash
# Run the whole test suite (unit tier everywhere; integration tier against the real ComfyUI checkout at
# $COMFYUI_PATH, .comfyui-path, or $HOME/ComfyUI) with pytest in the cached development venv.
#   usage: bash scripts/test.sh [pytest args]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/setup_dev.sh" | tail -n1)
export COMFYUI_PATH=${COMFYUI_PATH:-$("$repo/scripts/comfyui_path.sh")}
cd "$repo"
exec "$venv/bin/python" -m pytest tests "$@"
