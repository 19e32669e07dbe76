"""ComfyUI prompt-weight markup: "(word:1.2)", "(word)", nesting and escaped "\\(" "\\)" are read as
ComfyUI's tokenizer reads them, so counts come from the text the encoder sees."""
from __future__ import annotations

import pytest

from numina_core.numerals import modifier_phrase, parse_counts
from numina_core.token_mapping import WeightedText, comfy_prompt_segments, comfy_prompt_text


def segments(prompt: str) -> list[tuple[str, float]]:
    return [(segment.text, round(segment.weight, 6)) for segment in comfy_prompt_segments(prompt)]


@pytest.mark.parametrize("prompt, expected", [
    ("three cats and two dogs", [("three cats and two dogs", 1.0)]),
    ("(three:1.2) cats and two dogs", [("three", 1.2), (" cats and two dogs", 1.0)]),
    ("three (cats:1.3) and two \\(dogs\\)", [("three ", 1.0), ("cats", 1.3), (" and two (dogs)", 1.0)]),
    ("(cats)", [("cats", 1.1)]),
    ("((cats))", [("cats", 1.21)]),
    ("((cats:1.5))", [("cats", 1.5)]),  # an explicit weight replaces the enclosing one
    ("(two (red:0.5) cats:1.2)", [("two ", 1.2), ("red", 0.5), (" cats", 1.2)]),
    ("(cats:big)", [("cats:big", 1.1)]),  # not a number: the colon is text
    ("(:1.5)", [(":1.5", 1.1)]),  # nothing before the colon: the colon is text
    ("()", []),
    ("three (cats and two dogs", [("three ", 1.0), ("(cats and two dogs", 1.0)]),  # unclosed: literal
    ("three cats) and (two) dogs", [("three cats) and (two) dogs", 1.0)]),  # stray ")": literal after it
    ("a\\(b\\)c", [("a(b)c", 1.0)]),
    ("", []),
])
def test_segments_follow_comfyui(prompt, expected):
    assert segments(prompt) == expected


def test_deep_nesting_needs_no_recursion():
    prompt = "(" * 3000 + "cats" + ")" * 3000
    [segment] = comfy_prompt_segments(prompt)
    assert segment.text == "cats"
    assert segment.weight == pytest.approx(1.1 ** 3000, rel=1e-9)


def test_segments_are_weighted_text():
    assert comfy_prompt_segments("(cats:2)") == [WeightedText("cats", 2.0)]


@pytest.mark.parametrize("prompt, text", [
    ("(three:1.2) cats and two dogs", "three cats and two dogs"),
    ("three (cats:1.3) and two \\(dogs\\)", "three cats and two (dogs)"),
    ("a(cat)", "a cat"),  # separately tokenized runs are separate words
    ("(red)(cars), (blue:0.8) vans", "red cars, blue vans"),
    ("(three cats:1.2).", "three cats."),
])
def test_prompt_text_without_markup(prompt, text):
    assert comfy_prompt_text(prompt) == text


@pytest.mark.parametrize("prompt, expected", [
    ("(three:1.2) cats and two dogs", {"cats": 3, "dogs": 2}),
    ("three (cats:1.3) and two \\(dogs\\)", {"cats": 3, "dogs": 2}),
    ("((Three red apples)) on a (wooden:0.7) table.", {"apples": 3}),
    ("(two:1.4) (cats:1.2) and (one dog)", {"cats": 2, "dog": 1}),
    ("two \\(black\\) dogs and \\(three\\) cats", {"dogs": 2, "cats": 3}),
    ("(a lone wolf:1.3) howling on a cliff", {"wolf": 1}),
])
def test_counts_come_from_the_text_comfyui_encodes(prompt, expected):
    assert parse_counts(prompt, backend="rules") == expected


def test_escaped_parentheses_are_not_part_of_the_noun():
    counts = parse_counts("three (cats:1.3) and two \\(dogs\\)", backend="rules")
    assert all("(" not in noun and ")" not in noun and "\\" not in noun for noun in counts)


@pytest.mark.parametrize("prompt, noun, phrase", [
    ("three (red:1.2) racing cars", "cars", "red racing cars"),
    ("(three red racing cars:1.1) and two dogs", "cars", "red racing cars"),
    ("three \\(red\\) cars", "cars", "cars"),  # a literal bracket ends the modifiers
])
def test_modifier_phrase_reads_through_markup(prompt, noun, phrase):
    assert modifier_phrase(prompt, noun) == phrase


@pytest.mark.parametrize("not_text", [None, 3, b"three cats", ["three cats"]])
def test_non_text_prompt_is_a_clear_value_error(not_text):
    with pytest.raises(ValueError, match="the prompt must be text"):
        comfy_prompt_segments(not_text)
    with pytest.raises(ValueError, match="the prompt must be text"):
        parse_counts(not_text, backend="rules")
