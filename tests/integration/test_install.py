"""What an artist installs: the registry archive `comfy node pack` makes (small, the pack only), the
run-time requirements (requirements.txt equals pyproject's dependencies and, with ComfyUI's own
requirements, covers every import of the shipped files), and a pack that still loads when OpenCV is
broken (its only users import it when they run)."""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from devtools.comfyui import REPO_ROOT, comfyui_path

MAX_ARCHIVE_BYTES = 2 * 1024 * 1024
DEVELOPMENT_ONLY = ("testbed/", "tests/", "devtools/", "scripts/", ".ci/", "docs/", "numina_eval/bench/")
SHIPPED_NODE_IDS = {"NuminaSettings", "NuminaNumeralParser", "NuminaAttentionCaptureKSampler", "NuminaHeadSelector",
                    "NuminaCountableLayout", "NuminaLayoutRefiner", "NuminaLayoutGuidedSampler", "NuminaLayoutToMask",
                    "NuminaMaskToLayout", "NuminaCountObjects"}
COMFY_CLI = Path(sys.executable).with_name("comfy")


def working_tree_files() -> list[str]:
    """The files a commit of today's working tree would hold (tracked or new, never git-ignored)."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> zipfile.ZipFile:
    """The real `comfy node pack` archive of the working tree, made in a throw-away git copy (comfy-cli packs
    git-tracked files only, and writes node.zip where it runs)."""
    if not COMFY_CLI.is_file():
        pytest.skip(f"comfy-cli is not installed next to {sys.executable} (requirements-dev.txt)")
    copy = tmp_path_factory.mktemp("pack") / "numina-count-control"
    for name in working_tree_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    home = copy.parent / "home"  # comfy-cli keeps its config there, not in the developer's home
    home.mkdir()
    result = subprocess.run([str(COMFY_CLI), "--skip-prompt", "--no-enable-telemetry", "node", "pack"], cwd=copy,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(home), "DO_NOT_TRACK": "1", "COMFY_NO_TELEMETRY": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return zipfile.ZipFile(copy / "node.zip")


def test_archive_holds_the_pack_only(archive):
    names = archive.namelist()
    size = sum(info.compress_size for info in archive.infolist())
    assert size <= MAX_ARCHIVE_BYTES, f"archive is {size / 1e6:.1f} MB"
    shipped_development = [name for name in names if name.startswith(DEVELOPMENT_ONLY)]
    assert not shipped_development, shipped_development
    for needed in ("__init__.py", "nodes/__init__.py", "numina_core/config.py", "numina_eval/detection.py",
                   "requirements.txt", "pyproject.toml", "LICENSE", "web/icon.png"):
        assert needed in names, f"{needed} is missing from the archive"
    templates = {Path(name).stem for name in names if name.startswith("example_workflows/") and name.endswith(".json")}
    thumbnails = {Path(name).stem for name in names if name.startswith("example_workflows/") and name.endswith(".jpg")}
    assert templates and thumbnails == templates, (templates, thumbnails)


def requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalised(re.match(r"[A-Za-z0-9._-]+", line).group()))
    return names


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_equal_pyproject_dependencies():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    requirements = [line.strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines() if line.strip()]
    assert project["project"]["dependencies"] == requirements
    assert re.fullmatch(r">=\d+\.\d+\.\d+", project["tool"]["comfy"]["requires-comfyui"])
    assert {"Repository", "Issues", "Documentation"} <= set(project["project"]["urls"])


def is_optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside `try:` whose handler catches ImportError: the code runs on without it."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            caught = [ast.unparse(handler.type) if handler.type else "" for handler in parent.handlers]
            if any(re.search(r"\b(ImportError|ModuleNotFoundError)\b", text) for text in caught):
                return True
        node = parent
    return False


def required_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports a module cannot run without."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        if not is_optional(node, parents):
            names |= {module.split(".")[0] for module in modules}
    return names


def dependency_closure(roots: set[str]) -> set[str]:
    """The installed distributions the named ones pull in (what pip installs for them)."""
    seen, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending += [normalised(re.match(r"[A-Za-z0-9._-]+", spec).group()) for spec in requires if "extra ==" not in spec]
    return seen


def test_requirements_cover_every_import_of_the_shipped_files(archive, comfyui):
    comfy = comfyui_path()
    comfy_modules = {path.stem for path in comfy.iterdir() if path.suffix == ".py" or (path / "__init__.py").is_file()
                     or path.is_dir()}
    pack_packages = {name.split("/")[0] for name in archive.namelist() if "/" in name}
    imported: dict[str, set[str]] = {}
    for name in archive.namelist():
        if name.endswith(".py"):
            for module in required_imports(archive.read(name).decode()):
                imported.setdefault(module, set()).add(name)
    third_party = {module: files for module, files in imported.items()
                   if module not in sys.stdlib_module_names and module not in comfy_modules | pack_packages}
    assert "numpy" in third_party and "torch" in third_party, third_party  # the scan sees real imports
    provided = dependency_closure(requirement_names((REPO_ROOT / "requirements.txt").read_text().splitlines())
                                  | requirement_names((comfy / "requirements.txt").read_text().splitlines()))
    distributions = importlib.metadata.packages_distributions()
    uncovered = {module: sorted(files) for module, files in third_party.items()
                 if not {normalised(d) for d in distributions.get(module, [])} & provided}
    assert not uncovered, f"imports no requirement provides (add them to requirements.txt and pyproject): {uncovered}"


BROKEN_CV2_LOAD = """
import asyncio, json, sys
sys.modules["cv2"] = None  # `import cv2` now raises ImportError, as a broken OpenCV wheel does
from devtools.comfyui import import_comfyui, import_pack
import_comfyui()
pack = import_pack()
nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
print(json.dumps(sorted(node.define_schema().node_id for node in nodes)))
"""


def test_pack_loads_with_a_broken_opencv(comfyui):
    result = subprocess.run([sys.executable, "-c", BROKEN_CV2_LOAD], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COMFYUI_PATH": str(comfyui)})
    assert result.returncode == 0, result.stderr[-4000:]
    node_ids = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert SHIPPED_NODE_IDS <= node_ids, SHIPPED_NODE_IDS - node_ids


def test_nodes_import_the_versioned_comfy_api(comfyui):
    """ComfyUI's maintainers ask packs for a frozen API version rather than `latest`, which changes under
    them; comfy_api.v0_0_2 exists in every supported ComfyUI."""
    sources = [REPO_ROOT / "__init__.py", *(REPO_ROOT / "nodes").rglob("*.py"), REPO_ROOT / "testbed" / "nodes.py"]
    imported = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("comfy_api"):
                imported.setdefault(node.module, []).append(str(path.relative_to(REPO_ROOT)))
    assert set(imported) == {"comfy_api.v0_0_2"}, imported
    assert (comfyui / "comfy_api" / "v0_0_2" / "__init__.py").is_file()
