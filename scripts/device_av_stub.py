"""Writes a stand-in `av` package into a folder, for GPU-machine runs only (the device image has no PyAV and
its wheel does not fit the carry limit). ComfyUI's comfy_api imports av for its video types, which these
runs never use; every attribute of the stand-in is an inert class.
    python scripts/device_av_stub.py /tmp/site"""
import sys
from pathlib import Path

STUB = "class _Inert:\n    def __init__(self, *a, **k):\n        pass\n\n\ndef __getattr__(name):\n    return _Inert\n"

root = Path(sys.argv[1]) / "av"
for package in ("", "container", "subtitles", "subtitles/stream", "video", "video/frame", "audio", "audio/frame"):
    folder = root / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(STUB)
