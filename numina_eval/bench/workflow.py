"""API-format ComfyUI workflows with placeholders filled per job.

Placeholders, anywhere in a string input: ``{{prompt}}`` (the prompt text), ``{{seed}}``,
``{{counts}}`` (the noun counts as a JSON object), ``{{id}}`` (the prompt id) and ``{{job}}`` (a
file-name-safe key unique per prompt and seed, handy as a filename_prefix). An input whose whole
value is ``"{{seed}}"`` becomes an integer.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

PLACEHOLDERS = ("{{prompt}}", "{{seed}}", "{{counts}}", "{{id}}", "{{job}}")


def load_workflow(path: str | Path) -> dict:
    """Read an API-format workflow; explains how to get one when given the editor's format."""
    graph = json.loads(Path(path).read_text())
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise ValueError(f"{path} is a UI workflow; export it with 'Export (API)' in ComfyUI's workflow menu")
    if not isinstance(graph, dict) or not all(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        raise ValueError(f"{path} is not an API-format workflow (node id -> {{class_type, inputs}})")
    text = json.dumps(graph)
    if "{{prompt}}" not in text:
        raise ValueError(f"{path} has no {{{{prompt}}}} placeholder; put it in the positive prompt's text")
    return graph


def fill_workflow(graph: dict, prompt: str, seed: int, counts: dict[str, int], prompt_id: str, job: str) -> dict:
    """A copy of `graph` with every placeholder replaced."""
    values = {"{{prompt}}": prompt, "{{seed}}": str(seed), "{{counts}}": json.dumps(counts),
              "{{id}}": prompt_id, "{{job}}": job}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            if value == "{{seed}}":
                return int(seed)
            for key, replacement in values.items():
                value = value.replace(key, replacement)
            return value
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return {node_id: {**copy.deepcopy(node), "inputs": fill(node.get("inputs", {}))} for node_id, node in graph.items()}
