"""Numeral parser: counted nouns and counts, spaCy backend and rule fallback."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from numina_core import numerals
from numina_core.numerals import parse_counts

SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared"
DEV_SET = SHARED_DIR / "countbench-dev" / "countbench_dev.jsonl"

HAS_SPACY_MODEL = numerals.load_spacy_model() is not None
BACKENDS = ["rules", pytest.param("spacy", marks=pytest.mark.skipif(
    not HAS_SPACY_MODEL, reason="no spaCy English model installed"))]

# Invented prompts (not from CountBench), each exercising one rule.
CASES = [
    ("Three red apples on a wooden table.", {"apples": 3}),
    ("12 candles on a birthday cake.", {"candles": 12}),
    ("Eleven soldiers marching through a village.", {"soldiers": 11}),
    ("Twenty-one balloons floating in the sky.", {"balloons": 21}),
    ("A pair of shoes on the floor.", {"shoes": 2}),
    ("A dozen eggs in a basket.", {"eggs": 12}),
    ("A flock of six birds flying over a lake.", {"birds": 6}),
    ("A group of three friends laughing at a cafe.", {"friends": 3}),
    ("A pack of wolves howling at the moon.", {}),
    ("A single red rose in a glass vase.", {"rose": 1}),
    ("A lone wolf howling on a cliff under the full moon.", {"wolf": 1}),
    # scenery: article-only nouns in locative phrases or as objects are not counted
    ("Two cats on a sofa and a dog.", {"cats": 2, "dog": 1}),
    ("A knight riding a horse across a bridge.", {"knight": 1}),
    ("Two children building a sandcastle on a beach.", {"children": 2}),
    ("Three people waiting at the bus stop for one bus.", {"people": 3, "bus": 1}),
    # companions and coordination are counted
    ("A girl with a red umbrella walking in the rain.", {"girl": 1, "umbrella": 1}),
    ("A cat sleeping next to a dog.", {"cat": 1, "dog": 1}),
    ("A cat chased by a dog through a yard.", {"cat": 1, "dog": 1}),
    ("Five golden coins and a silver key lying on sand.", {"coins": 5, "key": 1}),
    ("Five ducks swimming in a pond as a heron stands nearby.", {"ducks": 5, "heron": 1}),
    ("A chef, two waiters and three customers in a busy restaurant.",
     {"chef": 1, "waiters": 2, "customers": 3}),
    # head noun: last noun of the phrase, surface form, verbs after it split off
    ("Three sports cars parked in a garage.", {"cars": 3}),
    ("One teddy bear sitting beside two toy trains.", {"bear": 1, "trains": 2}),
    ("Four ice-skaters gliding across a frozen lake.", {"skaters": 4}),
    ("Two dancers spin while a violinist plays.", {"dancers": 2, "violinist": 1}),
    ("An owl flies over two foxes.", {"owl": 1, "foxes": 2}),
    ("Two monks walk through a temple as a bell rings.", {"monks": 2, "bell": 1}),
    ("Two pieces of cake on a plate.", {"cake": 2}),
    ("A baker placing six loaves of bread in an oven.", {"baker": 1, "loaves": 6}),
    ("Three puppies chasing one another around a garden.", {"puppies": 3}),
    ("Two trains passing each other on a bridge.", {"trains": 2}),
    ("Three mice eating cheese in a kitchen.", {"mice": 3}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prompt, expected", CASES, ids=[case[0][:40] for case in CASES])
def test_parse_counts_on_invented_prompts(prompt: str, expected: dict[str, int], backend: str):
    assert parse_counts(prompt, backend=backend) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_keep_prompt_order(backend: str):
    counts = parse_counts("Three hot air-balloons drifting as two biplanes perform loops and one eagle circles.",
                          backend=backend)
    assert list(counts.items()) == [("balloons", 3), ("biplanes", 2), ("eagle", 1)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_noun_counts_add_up(backend: str):
    assert parse_counts("One dog on the left and one dog on the right.", backend=backend) == {"dog": 2}


def test_auto_falls_back_to_rules_without_a_spacy_model(monkeypatch):
    monkeypatch.setattr(numerals, "load_spacy_model", lambda: None)
    assert parse_counts("Two cats on a sofa and a dog.") == {"cats": 2, "dog": 1}
    with pytest.raises(RuntimeError, match="en_core_web_sm could not be loaded"):
        parse_counts("Two cats.", backend="spacy")


def test_rules_backend_never_loads_spacy(monkeypatch):
    def fail():
        raise AssertionError("the rule backend must not load spaCy")
    monkeypatch.setattr(numerals, "load_spacy_model", fail)
    assert parse_counts("Four bees buzzing around a sunflower.", backend="rules") == {"bees": 4}


@pytest.mark.skipif(not HAS_SPACY_MODEL, reason="no spaCy English model installed")
def test_spacy_model_is_loaded_once():
    assert numerals.load_spacy_model() is numerals.load_spacy_model()


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        parse_counts("Two cats.", backend="regex")


def _load_measure_script():
    spec = importlib.util.spec_from_file_location(
        "measure_parser", Path(__file__).resolve().parents[2] / "scripts" / "measure_parser.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("measure_parser", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not DEV_SET.is_file(), reason=f"CountBench dev set not found at {DEV_SET}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_countbench_dev_targets(backend: str):
    measure = _load_measure_script()
    score = measure.score_parser(measure.load_examples(DEV_SET), backend)
    assert score.prompts == 105
    assert score.f1 >= 0.95, score.misses
    assert score.exact_rate >= 0.90, score.misses
