"""Writes a stand-in `av` package into a folder, for GPU-machine runs only (the device image has no PyAV and
its wheel does not fit the carry limit). ComfyUI's comfy_api imports av for its video types, which these
runs never use; every attribute of the stand-in (and of its classes) is an inert class.
    python scripts/device_av_stub.py /tmp/site"""
import sys
from pathlib import Path

STUB = ("class _InertType(type):\n    def __getattr__(cls, name):\n        return cls\n\n\n"
        "class _Inert(metaclass=_InertType):\n    def __init__(self, *a, **k):\n        pass\n\n\n"
        "def __getattr__(name):\n    return _Inert\n")

root = Path(sys.argv[1]) / "av"
for package in ("", "container", "subtitles", "subtitles/stream", "video", "video/frame", "video/reformatter", "audio",
                "audio/frame"):
    folder = root / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(STUB)
