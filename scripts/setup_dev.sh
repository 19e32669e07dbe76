#!/usr/bin/env bash
# Build (or reuse) the development virtualenv: CPU-capable torch, ComfyUI's requirements, the pack's
# requirements and the test tools. The venv lives outside the clone, keyed on every requirement file,
# so a fresh clone (and CI) reuses it instead of spending ~10 minutes rebuilding.
#   usage: scripts/setup_dev.sh            prints the venv's path last
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
comfy=$("$repo/scripts/comfyui_path.sh")
if [ ! -f "$comfy/comfy/ldm/wan/model.py" ]; then
  # ComfyUI is not on PyPI: a checkout is part of the set-up (the tests and the demo run the real one).
  echo "no ComfyUI checkout at $comfy: cloning Comfy-Org/ComfyUI there" >&2
  git clone --depth 1 https://github.com/Comfy-Org/ComfyUI "$comfy" >&2 || echo "could not clone ComfyUI: the \
integration tests will skip and the demo cannot run; put a checkout at \$COMFYUI_PATH, in .comfyui-path or at ~/ComfyUI" >&2
fi
torch_pins="torch==2.14.1 torchvision==0.29.1"
key_files=("$repo/requirements.txt" "$repo/requirements-dev.txt")
[ -f "$comfy/requirements.txt" ] && key_files+=("$comfy/requirements.txt")
key=$( (echo "$torch_pins"; cat "${key_files[@]}") | sha256sum | cut -c1-16)
venv=${NUMINA_VENV:-$HOME/.cache/numina-comfyui/venv-$key}
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
echo "building the development venv at $venv (about 10 minutes the first time)" >&2
rm -rf "$venv"; python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip -q --disable-pip-version-check "$@"; }
pip install --upgrade pip >&2
pip install $torch_pins >&2
if [ -f "$comfy/requirements.txt" ]; then
  # torchaudio does not load beside this torch; only ComfyUI's audio nodes need it.
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$venv/comfy-req.txt"
  pip install -r "$venv/comfy-req.txt" $torch_pins >&2
fi
pip install -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt" $torch_pins >&2
touch "$venv/.complete"
echo "$venv"
