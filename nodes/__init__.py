"""The pack's ComfyUI V3 nodes: thin adapters over numina_core."""
from __future__ import annotations

import importlib
import logging

from comfy_api.v0_0_2 import ComfyExtension, io

from . import count_objects, count_verified, layout_editor, layout_nodes, sampling, settings

log = logging.getLogger("numina")


def testbed_nodes() -> list[type[io.ComfyNode]]:
    """The count testbed's nodes, where the development checkout has testbed/ (never in the shipped pack)."""
    try:
        module = importlib.import_module("..testbed.nodes", __package__)
    except ModuleNotFoundError as error:
        if error.name and error.name.endswith("testbed"):
            return []
        raise
    return module.NODES


def node_list() -> list[type[io.ComfyNode]]:
    return [*settings.NODES, *layout_nodes.NODES[:1], *sampling.NODES[:1], *layout_nodes.NODES[1:], *sampling.NODES[1:],
            *layout_editor.NODES, *count_objects.NODES, *count_verified.NODES, *testbed_nodes()]


class NuminaExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return node_list()
