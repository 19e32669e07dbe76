"""CountBench prompts: the authors' folder (prompts.txt + noun_counts.jsonl, aligned line by line)
or one jsonl with {"id", "prompt", "noun_counts"} per line."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchPrompt:
    prompt_id: str  # zero-padded line number for the authors' files, the "id" field for jsonl
    prompt: str
    noun_counts: dict[str, int]


def _checked(prompt_id: str, prompt: str, counts: object, where: str) -> BenchPrompt:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: empty prompt")
    if not isinstance(counts, dict) or not counts:
        raise ValueError(f"{where}: noun_counts must be a non-empty object")
    for noun, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{where}: count for {noun!r} must be a whole number >= 0, got {n!r}")
    return BenchPrompt(prompt_id, prompt.strip(), {str(k): int(v) for k, v in counts.items()})


def load_prompts(path: str | Path) -> list[BenchPrompt]:
    """Read a CountBench folder or jsonl file; raises ValueError naming the line at fault."""
    path = Path(path)
    if path.is_dir():
        prompts_file, counts_file = path / "prompts.txt", path / "noun_counts.jsonl"
        if prompts_file.is_file() and counts_file.is_file():
            return _load_authors(prompts_file, counts_file)
        jsonl = sorted(path.glob("*.jsonl"))
        if len(jsonl) != 1:
            raise ValueError(f"{path}: expected prompts.txt + noun_counts.jsonl, or exactly one .jsonl file")
        path = jsonl[0]
    if not path.is_file():
        raise ValueError(f"{path}: no such file or folder")
    prompts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not JSON ({error.msg})") from error
        prompt_id = str(record.get("id", f"{number:03d}"))
        prompts.append(_checked(prompt_id, record.get("prompt"), record.get("noun_counts"), where))
    _check_unique(prompts, path)
    return prompts


def _load_authors(prompts_file: Path, counts_file: Path) -> list[BenchPrompt]:
    texts = [t for t in prompts_file.read_text().splitlines() if t.strip()]
    counts = [c for c in counts_file.read_text().splitlines() if c.strip()]
    if len(texts) != len(counts):
        raise ValueError(f"{prompts_file} has {len(texts)} prompts but {counts_file} has {len(counts)} lines")
    prompts = []
    for number, (text, line) in enumerate(zip(texts, counts), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{counts_file}:{number}: not JSON ({error.msg})") from error
        prompts.append(_checked(f"{number:03d}", text, record, f"{counts_file}:{number}"))
    return prompts


def _check_unique(prompts: list[BenchPrompt], path: Path) -> None:
    seen: set[str] = set()
    for p in prompts:
        if p.prompt_id in seen:
            raise ValueError(f"{path}: id {p.prompt_id} appears twice")
        seen.add(p.prompt_id)
