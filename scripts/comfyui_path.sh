#!/usr/bin/env bash
# Where the ComfyUI checkout is: $COMFYUI_PATH, else the path written in .comfyui-path at the repo
# root (one line), else $HOME/ComfyUI.
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${COMFYUI_PATH:-}" ]; then echo "$COMFYUI_PATH"
elif [ -f "$repo/.comfyui-path" ]; then head -n1 "$repo/.comfyui-path"
else echo "$HOME/ComfyUI"; fi
