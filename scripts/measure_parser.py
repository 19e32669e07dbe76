"""Measure the numeral parser on a CountBench-style JSONL file ({"id", "prompt", "noun_counts"}).

Prints (noun, count)-pair precision, recall and F1 and the exact-prompt match rate, for the spaCy
backend (skipped, saying so, when spaCy's en_core_web_sm does not load) and the rule fallback, and
lists every prompt the parser gets wrong.

    python scripts/measure_parser.py [path/to/countbench_dev.jsonl] [--backend spacy|rules|both]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from numina_core.numerals import SPACY_MODEL_NAME, load_spacy_model, parse_counts  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "countbench-dev" / "countbench_dev.jsonl"


@dataclass
class ParserScore:
    true_positives: int = 0
    predicted: int = 0
    expected: int = 0
    exact: int = 0
    prompts: int = 0
    misses: list[tuple[int, str, dict, dict]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.expected if self.expected else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def exact_rate(self) -> float:
        return self.exact / self.prompts if self.prompts else 0.0


def load_examples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score_parser(examples: list[dict], backend: str) -> ParserScore:
    score = ParserScore()
    for example in examples:
        expected = {noun: int(count) for noun, count in example["noun_counts"].items()}
        predicted = parse_counts(example["prompt"], backend=backend)
        expected_pairs, predicted_pairs = set(expected.items()), set(predicted.items())
        score.true_positives += len(expected_pairs & predicted_pairs)
        score.predicted += len(predicted_pairs)
        score.expected += len(expected_pairs)
        score.prompts += 1
        if predicted == expected:
            score.exact += 1
        else:
            score.misses.append((example.get("id", score.prompts), example["prompt"], expected, predicted))
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backend", choices=["spacy", "rules", "both"], default="both")
    args = parser.parse_args()
    examples = load_examples(args.data)
    backends = ["spacy", "rules"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "spacy" and load_spacy_model() is None:
            print(f"[spacy] skipped: spaCy's {SPACY_MODEL_NAME} could not be loaded")
            continue
        score = score_parser(examples, backend)
        print(f"[{backend}] {score.prompts} prompts: precision {score.precision:.3f}  recall "
              f"{score.recall:.3f}  F1 {score.f1:.3f}  exact {score.exact_rate:.3f} "
              f"({score.exact}/{score.prompts})")
        for prompt_id, prompt, expected, predicted in score.misses:
            print(f"  miss {prompt_id}: {prompt}\n      expected {expected}\n      got      {predicted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
