"""Targets: counts from the parser or an override, token columns of the noun or of its modifier phrase."""
import pytest

from numina_core.numerals import modifier_phrase
from numina_core.targets import build_targets, parse_counts_override


class WordTokenizer:
    """One token per whitespace word, EOS appended: enough to check which columns are chosen."""

    def __init__(self):
        self.vocabulary: dict[str, int] = {}

    def _id(self, word: str) -> int:
        return self.vocabulary.setdefault(word.lower(), len(self.vocabulary) + 2)

    def encode_prompt(self, prompt: str) -> list[int]:
        return [self._id(w) for w in prompt.replace(",", " ").split()] + [1]

    def encode_words(self, text: str) -> list[int]:
        return [self._id(w) for w in text.replace(",", " ").split()]


@pytest.mark.parametrize("prompt,noun,phrase", [
    ("three red racing cars and two dogs", "cars", "red racing cars"),
    ("three red racing cars and two dogs", "dogs", "dogs"),
    ("Three hot air-balloons drifting", "balloons", "hot air-balloons"),
    ("a flock of six small birds", "birds", "small birds"),
    ("two cats on a sofa and a dog", "dog", "dog"),
    ("no such noun here", "cats", "cats"),
])
def test_modifier_phrase(prompt, noun, phrase):
    assert modifier_phrase(prompt, noun) == phrase


def test_phrase_scope_adds_the_modifier_columns():
    prompt = "three red discs and two blue squares"
    tokenizer = WordTokenizer()
    nouns = build_targets(prompt, tokenizer)
    phrases = build_targets(prompt, tokenizer, token_scope="phrase")
    assert nouns.counts == phrases.counts == {"discs": 3, "squares": 2}
    assert nouns.token_indices == {"discs": [2], "squares": [6]}
    assert phrases.token_indices == {"discs": [1, 2], "squares": [5, 6]}


def test_no_numeral_gives_empty_targets_with_a_notice_and_bad_counts_are_named():
    empty = build_targets("cats in a garden", WordTokenizer())
    assert empty.is_empty and "no numeral found" in empty.summary()
    with pytest.raises(ValueError, match="count of 'cats' is 0"):
        build_targets("three cats", WordTokenizer(), {"cats": 0})
    with pytest.raises(ValueError, match="not in the prompt"):
        build_targets("three cats", WordTokenizer(), {"dogs": 2})
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_counts_override("{cats: 3}")
    with pytest.raises(ValueError, match="JSON object of noun"):
        parse_counts_override('{"cats": "three"}')
