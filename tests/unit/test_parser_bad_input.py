"""Bad prompt input gives a clear ValueError (the node prefixes its name), never an IndexError or
TypeError; odd but valid text just parses."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numina_core.numerals import parse_counts
from numina_core.targets import build_targets
from numina_core.token_mapping import noun_token_indices


class WordTokenizer:
    """One id per whitespace-separated word, EOS id 1, pieces with a leading space."""

    def __init__(self) -> None:
        self.words: list[str] = []

    def _id(self, word: str) -> int:
        if word not in self.words:
            self.words.append(word)
        return self.words.index(word) + 2

    def encode_words(self, text: str) -> list[int]:
        return [self._id(word) for word in text.split()]

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.encode_words(prompt) + [1]

    def decode_piece(self, token_id: int) -> str:
        return "" if token_id == 1 else " " + self.words[token_id - 2]


@pytest.mark.parametrize("prompt", [None, 3, 2.5, b"three cats", ["three cats"], {"three": "cats"}])
def test_prompt_that_is_not_text(prompt):
    with pytest.raises(ValueError, match="the prompt must be text"):
        parse_counts(prompt, backend="rules")
    with pytest.raises(ValueError, match="the prompt must be text"):
        build_targets(prompt, WordTokenizer())
    with pytest.raises(ValueError, match="the prompt must be text"):
        build_targets(prompt, WordTokenizer(), {"cats": 3})
    with pytest.raises(ValueError, match="must be text"):
        noun_token_indices(prompt, "cats", WordTokenizer())


@pytest.mark.parametrize("counts", [["cats"], "cats: 3", {"cats": "3"}, {"cats": 2.5}, {"cats": True},
                                    {3: 3}, {"cats": None}])
def test_counts_that_are_not_noun_to_whole_number(counts):
    with pytest.raises(ValueError, match="counts must map nouns to whole numbers"):
        build_targets("three cats", WordTokenizer(), counts)


def test_empty_or_missing_nouns():
    with pytest.raises(ValueError, match="noun is empty"):
        build_targets("three cats", WordTokenizer(), {"  ": 3})
    with pytest.raises(ValueError, match="must be text"):
        noun_token_indices("three cats", None, WordTokenizer())
    with pytest.raises(ValueError, match="noun 'dogs' is not in the prompt"):
        build_targets("three cats", WordTokenizer(), {"dogs": 3})


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", "()", "(:1.2)", "((()))", "\\(\\)", ")(", "...", "🐱🐱🐱"])
def test_prompts_without_counted_nouns_give_empty_targets(prompt):
    targets = build_targets(prompt, WordTokenizer())
    assert targets.counts == {} and targets.token_indices == {}
    assert "no numeral found" in targets.summary()


@pytest.mark.parametrize("prompt, expected", [
    ("² cats on a sofa", {}),  # a superscript is a digit to str.isdigit but no number to int()
    ("３ cats on a sofa", {"cats": 3}),  # full-width digit
    ("٣ cats on a sofa", {"cats": 3}),  # Arabic-Indic digit
    ("1,000 cats", {}),
    ("3.5 cats", {}),
    ("0 cats and two dogs", {"dogs": 2}),
    ("two", {}),
    ("a", {}),
    ("three - - cats", {}),
    ("two cats\x00 and one dog", {"cats": 2, "dog": 1}),
])
def test_odd_numerals_parse_without_error(prompt, expected):
    assert parse_counts(prompt, backend="rules") == expected


PROMPT_PARTS = ["two", "three", "one", "a", "an", "the", "cats", "dog", "pieces", "of", "pair", "dozen",
                "twenty", "-", "(", ")", "\\(", "\\)", ":", ":1.2", "1.2)", "[", "]", ",", ".", " ", "\n", "²",
                "٣", "0", "99999999999999999999", "more", "both", "all", "her", "single", "lone", "and",
                "with", "by", "chased", "'s", "🐱", "\x00", "embedding:x"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(PROMPT_PARTS), max_size=14).map("".join) | st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(prompt):
    counts = parse_counts(prompt, backend="rules")
    assert all(isinstance(noun, str) and noun and isinstance(count, int) and count >= 1
               for noun, count in counts.items())
    for scope in ("noun", "phrase"):
        try:
            targets = build_targets(prompt, WordTokenizer(), token_scope=scope, occurrences="all")
        except ValueError:
            continue
        ids = WordTokenizer().encode_prompt(prompt)
        assert all(0 <= column < len(ids) for columns in targets.token_indices.values() for column in columns)
