"""The layers stay layers: the method imports nothing above it, the shipped nodes never import the testbed or
the development helpers, and only the model adapters know a model family's ComfyUI internals."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACK_LAYERS = {"numina_core", "numina_eval", "nodes", "testbed", "devtools", "tests", "scripts"}
METHOD_MAY_IMPORT = {"numpy", "scipy", "sklearn", "torch", "cv2", "PIL", "spacy"}
FAMILY_MODULES = ("comfy.ldm.", "comfy.text_encoders.")


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(module name, relative level) of every import statement in a file."""
    return imported_modules_of_source(path.read_text())


def imported_modules_of_source(source: str) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found += [(f"{base}.{alias.name}" if base else alias.name, node.level) for alias in node.names]
    return found


def layer_of(path: Path, module: str, level: int) -> str | None:
    """The pack layer an import lands in (relative imports resolved against the file's package)."""
    if level == 0:
        top = module.split(".")[0]
        return top if top in PACK_LAYERS else None
    parts = path.relative_to(REPO_ROOT).parts[:-1]
    anchor = parts[: len(parts) - (level - 1)]
    target = (*anchor, *module.split(".")) if module else anchor
    return target[0] if target and target[0] in PACK_LAYERS else "pack root"


def python_files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", python_files("numina_core"), ids=lambda p: p.name)
def test_the_method_imports_only_itself_and_its_libraries(path):
    for module, level in imported_modules(path):
        layer = layer_of(path, module, level)
        if level:
            assert layer == "numina_core", f"{path.name} imports {'.' * level}{module}, outside numina_core"
        else:
            top = module.split(".")[0]
            assert layer is None and not top.startswith("comfy"), f"{path.name} imports {module}"
            assert top in METHOD_MAY_IMPORT or top in _stdlib(), f"{path.name} imports {module}"


@pytest.mark.parametrize("path", python_files("numina_eval"), ids=lambda p: p.name)
def test_evaluation_imports_no_nodes_testbed_or_dev_helpers(path):
    for module, level in imported_modules(path):
        assert layer_of(path, module, level) not in {"nodes", "testbed", "devtools", "tests", "scripts"}, (
            f"{path.name} imports {module}")


@pytest.mark.parametrize("path", python_files("nodes") + [REPO_ROOT / "__init__.py"], ids=lambda p: p.name)
def test_shipped_nodes_never_import_the_testbed_or_dev_helpers(path):
    for module, level in imported_modules(path):
        assert layer_of(path, module, level) not in {"testbed", "devtools", "tests", "scripts"}, (
            f"{path.relative_to(REPO_ROOT)} imports {module}")


@pytest.mark.parametrize("path", [p for p in python_files("nodes") if "adapters" not in p.parts], ids=lambda p: p.name)
def test_only_the_adapters_know_a_model_family(path):
    for module, _ in imported_modules(path):
        assert not module.startswith(FAMILY_MODULES), f"{path.name} imports {module}: only nodes/adapters may"
        assert not any(name in module.split(".") for name in ("wan", "cogvideox")), f"{path.name} imports {module}"


def test_the_import_check_catches_a_violation():
    # The checks above must be able to fail: upward imports are seen as such.
    module, level = imported_modules_of_source("from ..nodes import sampling\n")[0]
    assert layer_of(REPO_ROOT / "numina_core" / "probe.py", module, level) == "nodes"
    module, level = imported_modules_of_source("from ..testbed.model import SIZE\n")[0]
    assert layer_of(REPO_ROOT / "nodes" / "sampling.py", module, level) == "testbed"


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) | {"__future__"}
