#!/usr/bin/env bash
# Build (or reuse) the development virtualenv for one ComfyUI checkout: the torch that checkout runs
# with, ComfyUI's requirements, the pack's requirements and the test tools. The venv lives outside the
# clone, keyed on the torch pins and every requirement file, so a fresh clone (and CI) reuses it
# instead of spending ~10 minutes rebuilding.
#   usage: scripts/setup_dev.sh [COMFYUI_DIR]     prints the venv's path last
# COMFYUI_DIR defaults to the primary checkout (scripts/comfyui_path.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
comfy=${1:-$("$repo/scripts/comfyui_path.sh")}
if [ ! -f "$comfy/comfy/ldm/wan/model.py" ] && [ -z "${1:-}" ]; then
  # ComfyUI is not on PyPI: a checkout is part of the set-up (the tests and the demo run the real one).
  echo "no ComfyUI checkout at $comfy: cloning Comfy-Org/ComfyUI there" >&2
  git clone --depth 1 https://github.com/Comfy-Org/ComfyUI "$comfy" >&2 || echo "could not clone ComfyUI: the \
integration tests will skip and the demo cannot run; see README.md, Development" >&2
fi
# The torch each ComfyUI runs with here. ComfyUI of 2026 imports torchaudio when comfy.sd loads (audio
# VAEs); the newest torchaudio on the index is 2.11.0, which needs torch 2.11.0. Older ComfyUI needs no
# torchaudio and runs with the torch 2.14.1 that lies on this machine's disk.
if grep -qs '^import torchaudio' "$comfy/comfy/ldm/lightricks/vae/audio_vae.py"; then
  torch_pins="torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0"
else
  torch_pins="torch==2.14.1 torchvision==0.29.1"
fi
key_files=("$repo/requirements.txt" "$repo/requirements-dev.txt")
[ -f "$comfy/requirements.txt" ] && key_files+=("$comfy/requirements.txt")
key=$( (echo "$torch_pins"; cat "${key_files[@]}") | sha256sum | cut -c1-16)
venv=${NUMINA_VENV:-$HOME/.cache/numina-comfyui/venv-$key}
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
echo "building the development venv for $comfy at $venv (about 10 minutes the first time)" >&2
rm -rf "$venv"; python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip -q --disable-pip-version-check "$@"; }
pip install --upgrade pip >&2
pip install $torch_pins >&2
if [ -f "$comfy/requirements.txt" ]; then
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$venv/comfy-req.txt"
  pip install -r "$venv/comfy-req.txt" $torch_pins >&2
fi
pip install -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt" $torch_pins >&2
touch "$venv/.complete"
echo "$venv"
