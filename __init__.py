"""NUMINA for ComfyUI: make Wan text-to-video models draw the number of objects the prompt asks for."""
from .nodes import NuminaExtension

WEB_DIRECTORY = "./web"


async def comfy_entrypoint() -> NuminaExtension:
    return NuminaExtension()
