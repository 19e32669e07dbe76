"""The pack's ComfyUI V3 nodes: thin adapters over numina_core."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import count_objects, layout_nodes, sampling, testbed_nodes


def node_list() -> list[type[io.ComfyNode]]:
    return [*layout_nodes.NODES[:1], *sampling.NODES[:1], *layout_nodes.NODES[1:], *sampling.NODES[1:],
            *count_objects.NODES, *testbed_nodes.NODES]


class NuminaExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return node_list()
