#!/usr/bin/env bash
# The ComfyUI checkouts (devtools/comfyui.py decides): the primary one, or every present one with --all.
exec python3 "$(cd "$(dirname "$0")/.." && pwd)/devtools/comfyui.py" "$@"
