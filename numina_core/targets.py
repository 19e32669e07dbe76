"""What the prompt asks for: counted nouns, their counts, and their token columns in the text context."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from .numerals import modifier_phrase, parse_counts
from .token_mapping import Occurrences, PromptTokenizer, map_nouns_to_tokens, noun_token_indices


@dataclass
class NuminaTargets:
    """Noun → requested count and noun → cross-attention key columns, for one prompt.

    `notices` carries what a user should know (e.g. no numeral found: nothing will be corrected)."""

    prompt: str
    counts: dict[str, int]
    token_indices: dict[str, list[int]]
    notices: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.counts

    def summary(self) -> str:
        lines = [f"{noun}: {count} (tokens {self.token_indices.get(noun, [])})" for noun, count in self.counts.items()]
        return "\n".join(lines + self.notices) or "no counted nouns"


def parse_counts_override(text: str) -> dict[str, int]:
    """A JSON object {"noun": count, …}; raises ValueError with what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg} at character {error.pos}); "
                         'write it like {"cats": 3, "dogs": 2}') from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                               for k, v in value.items()):
        raise ValueError('must be a JSON object of noun → whole number, like {"cats": 3, "dogs": 2}')
    return value


TokenScope = Literal["noun", "phrase"]


def build_targets(prompt: str, tokenizer: PromptTokenizer, counts: dict[str, int] | None = None,
                  occurrences: Occurrences = "first", token_scope: TokenScope = "noun") -> NuminaTargets:
    """Targets of `prompt` (as typed into ComfyUI, weight markup included): the given counts, or those
    parsed from its numerals, with token columns in the tokens ComfyUI encodes for it.

    token_scope "noun" takes the noun's tokens only (the reference); "phrase" adds the modifiers written
    between the numeral and the noun ("red" in "three red discs"), which carry what the object looks like.
    Raises ValueError for a prompt that is not text, counts that are not noun → whole number, a count
    below 1 (naming the noun) or a noun not in the prompt."""
    if not isinstance(prompt, str):
        raise ValueError(f"the prompt must be text, not {type(prompt).__name__}")
    notices = []
    if counts is None:
        counts = parse_counts(prompt)
        if not counts:
            notices.append("no numeral found in the prompt: nothing will be counted or corrected")
    if not isinstance(counts, dict):
        raise ValueError(f"counts must map nouns to whole numbers, not be a {type(counts).__name__}")
    for noun, count in counts.items():
        if not isinstance(noun, str) or not isinstance(count, int) or isinstance(count, bool):
            raise ValueError(f"counts must map nouns to whole numbers; got {noun!r}: {count!r}")
        if count < 1:
            raise ValueError(f"count of {noun!r} is {count}; NUMINA places at least 1 instance "
                             "(leave the noun out of the counts, or write it out of the prompt)")
    token_indices = map_nouns_to_tokens(prompt, list(counts), tokenizer, occurrences)
    if token_scope == "phrase":
        for noun in counts:
            phrase = modifier_phrase(prompt, noun)
            if phrase != noun:
                token_indices[noun] = sorted(set(token_indices[noun]) | set(
                    noun_token_indices(prompt, phrase, tokenizer, occurrences)))
    elif token_scope != "noun":
        raise ValueError(f"token_scope must be 'noun' or 'phrase', not {token_scope!r}")
    return NuminaTargets(prompt, dict(counts), token_indices, notices)
