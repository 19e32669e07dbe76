"""Noun → text-token indices: which cross-attention key columns belong to a counted noun.

The search follows the reference order (method.md §7):
  1. the ids of " " + noun as a subsequence of the prompt ids;
  2. the ids of the bare noun, searched the same way;
  3. a character-level search (case-insensitive) over the decoded prompt pieces, which finds
     nouns glued to other words, such as "balloons" in "air-balloons".
Unlike the reference, steps 1-2 only accept matches that are whole words when piece texts are
available, so "cat" never lands on the first piece of "cats".

Prompts are read as ComfyUI reads them: weight markup ("(cats:1.3)", "(cats)", nesting) is removed
and "\\(" "\\)" become literal parentheses before tokenizing (`comfy_prompt_segments`), so token
columns index the tokens ComfyUI's text encoder really receives.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal, Protocol, runtime_checkable

Occurrences = Literal["first", "all"]

# SentencePiece marks a word start with U+2581; pieces never span whitespace.
_SPM_SPACE = "\u2581"


# ComfyUI's prompt syntax (comfy/sd1_clip.py: escape_important, parse_parentheses, token_weights),
# re-implemented because numina_core never imports ComfyUI.
_ESCAPES = (("\\)", "\0\1"), ("\\(", "\0\2"))  # replaced in this order, as ComfyUI does
_UNWEIGHTED_GROUP_FACTOR = 1.1  # "(cats)" multiplies the weight by 1.1
# ComfyUI looks a textual-inversion embedding up where "embedding:" starts a run or follows whitespace.
_EMBEDDING_PATTERN = re.compile(r"(?:^|(?<=\s))embedding:")


@dataclass(frozen=True)
class WeightedText:
    """One run of prompt text with the weight ComfyUI gives its tokens; ComfyUI tokenizes each run
    on its own, so a run boundary is also a token boundary."""

    text: str
    weight: float


def _unescape(text: str) -> str:
    for escaped, placeholder in _ESCAPES:
        text = text.replace(placeholder, escaped[1])
    return text


def _top_level_groups(text: str) -> list[str]:
    """`text` cut into top-level "(…)" groups and the text between them. Nesting is counted as in
    ComfyUI: an unmatched ")" makes it negative, so what follows stays literal until it recovers."""
    groups: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    groups.append(current)
                current = ""
            current += char
            depth += 1
        elif char == ")":
            depth -= 1
            current += char
            if depth == 0:
                groups.append(current)
                current = ""
        else:
            current += char
    if current:
        groups.append(current)
    return groups


def _group_content(group: str, weight: float) -> tuple[str, float]:
    """The text inside "(…)" and its weight: an explicit ":number" suffix sets it, otherwise the
    enclosing weight grows by 1.1."""
    inner = group[1:-1]
    colon = inner.rfind(":")
    if colon > 0:
        try:
            return inner[:colon], float(inner[colon + 1:])
        except ValueError:  # "(cats:big)": the colon is text
            pass
    return inner, weight * _UNWEIGHTED_GROUP_FACTOR


def comfy_prompt_segments(prompt: str) -> list[WeightedText]:
    """The runs of text ComfyUI's tokenizer encodes for `prompt`, in order, with their weights.

    "(three:1.2) cats" → [("three", 1.2), (" cats", 1.0)]; "\\(dogs\\)" → [("(dogs)", 1.0)].
    Raises ValueError when `prompt` is not a string."""
    if not isinstance(prompt, str):
        raise ValueError(f"the prompt must be text, not {type(prompt).__name__}")
    for escaped, placeholder in _ESCAPES:
        prompt = prompt.replace(escaped, placeholder)
    segments: list[WeightedText] = []
    # Depth-first over the groups with an explicit stack: any nesting depth, no recursion limit.
    pending: list[tuple[str, float, bool]] = [(prompt, 1.0, False)]
    while pending:
        text, weight, is_plain = pending.pop()
        if is_plain:
            segments.append(WeightedText(_unescape(text), weight))
            continue
        parts = []
        for group in _top_level_groups(text):
            if len(group) >= 2 and group[0] == "(" and group[-1] == ")":
                parts.append((*_group_content(group, weight), False))
            else:
                parts.append((group, weight, True))
        pending.extend(reversed(parts))
    return segments


def comfy_prompt_text(prompt: str) -> str:
    """The prompt's words as ComfyUI's text encoder reads them, weight markup removed:
    "(three:1.2) cats and two \\(dogs\\)" → "three cats and two (dogs)". Runs that touch
    letter-to-letter ("a(cat)") are joined by a space, since they are tokenized as separate words."""
    text = ""
    for segment in comfy_prompt_segments(prompt):
        if text and segment.text and text[-1].isalnum() and segment.text[0].isalnum():
            text += " "
        text += segment.text
    return text


@runtime_checkable
class PromptTokenizer(Protocol):
    """What the mapping needs from a text encoder's tokenizer.

    `encode_prompt` returns the ids whose positions are the cross-attention key columns (for
    umt5: no BOS, EOS appended). `encode_words` returns the ids of a fragment without special
    tokens, as it would be tokenized after a space inside a prompt. A tokenizer may also offer
    `decode_piece(id) -> str` (the piece's text, a leading space where the piece starts a word,
    "" for special tokens); without it the character-level fallback is unavailable.
    """

    def encode_prompt(self, prompt: str) -> list[int]: ...

    def encode_words(self, text: str) -> list[int]: ...


class SentencePieceTokenizer:
    """`PromptTokenizer` over a `sentencepiece.SentencePieceProcessor`, encoding exactly as
    ComfyUI's umt5 tokenizer does: weight markup removed and each weighted run encoded on its own
    (`comfy_prompt_segments`), no text cleaning (ComfyUI applies no ftfy), no BOS, the
    processor's EOS appended."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def encode_prompt(self, prompt: str) -> list[int]:
        """Raises ValueError for a prompt naming a textual-inversion embedding, whose vectors take
        an unknown number of columns."""
        ids: list[int] = []
        for segment in comfy_prompt_segments(prompt):
            if _EMBEDDING_PATTERN.search(segment.text):
                raise ValueError("the prompt uses a textual-inversion embedding ('embedding:…'); its "
                                 "token columns cannot be known, remove it from the prompt")
            ids += self.encode_words(segment.text)
        eos_id = self.processor.eos_id()
        return ids + [eos_id] if eos_id >= 0 else ids

    def encode_words(self, text: str) -> list[int]:
        return list(self.processor.encode(text, out_type=int, add_bos=False, add_eos=False))

    def decode_piece(self, token_id: int) -> str:
        if self.processor.is_control(token_id):
            return ""
        if self.processor.is_unknown(token_id):
            # The original characters are lost; a placeholder keeps later offsets word-aligned.
            return "\ufffd"
        return self.processor.id_to_piece(token_id).replace(_SPM_SPACE, " ")


def _piece_texts(tokenizer: PromptTokenizer, ids: list[int]) -> list[str] | None:
    decode_piece = getattr(tokenizer, "decode_piece", None)
    if decode_piece is None:
        return None
    return [decode_piece(token_id) for token_id in ids]


def _subsequence_starts(haystack: list[int], needle: list[int]) -> list[int]:
    width = len(needle)
    if width == 0:
        return []
    return [start for start in range(len(haystack) - width + 1) if haystack[start:start + width] == needle]


def _is_word_char(char: str) -> bool:
    return char.isalnum()


def _is_whole_word(pieces: list[str], start: int, width: int) -> bool:
    """True when tokens start..start+width-1 are not glued to letters or digits on either side."""
    first = pieces[start]
    if start > 0 and first[:1] != " " and pieces[start - 1][-1:] and _is_word_char(pieces[start - 1][-1]):
        return False
    end = start + width
    if end < len(pieces):
        following = pieces[end]
        if following[:1] and following[:1] != " " and _is_word_char(following[0]):
            return False
    return True


def _character_match_tokens(pieces: list[str], noun: str, occurrences: Occurrences) -> list[int]:
    """Tokens covering the noun found in the concatenated piece texts, case-insensitively.
    Matches bounded by non-word characters win (the hyphenated "air-balloons"); a bare substring
    is the last resort, as in the reference."""
    text = "".join(pieces)
    owner: list[int] = []
    for index, piece in enumerate(pieces):
        owner.extend([index] * len(piece))
    escaped = re.escape(noun)
    for pattern in (rf"(?<!\w){escaped}(?!\w)", escaped):
        matches = list(re.finditer(pattern, text, flags=re.IGNORECASE))
        if matches:
            chosen = matches[:1] if occurrences == "first" else matches
            return sorted({owner[pos] for match in chosen for pos in range(match.start(), match.end())})
    return []


def noun_token_indices(prompt: str, noun: str, tokenizer: PromptTokenizer,
                       occurrences: Occurrences = "first") -> list[int]:
    """Sorted positions, in `tokenizer.encode_prompt(prompt)`, of the tokens spelling `noun`; for a
    `SentencePieceTokenizer` these index the tokens ComfyUI encodes for the marked-up prompt.

    `occurrences="first"` keeps the first occurrence only (what the NUMINA reference measures and
    modulates); `"all"` keeps every whole-word occurrence. Raises ValueError when the noun is not
    in the prompt.
    """
    if occurrences not in ("first", "all"):
        raise ValueError(f"occurrences must be 'first' or 'all', got {occurrences!r}")
    if not isinstance(prompt, str) or not isinstance(noun, str):
        raise ValueError(f"the prompt and the noun must be text, got {type(prompt).__name__} and "
                         f"{type(noun).__name__}")
    noun = noun.strip()
    if not noun:
        raise ValueError("noun is empty")
    prompt_ids = tokenizer.encode_prompt(prompt)
    pieces = _piece_texts(tokenizer, prompt_ids)

    for query in (" " + noun, noun):
        noun_ids = tokenizer.encode_words(query)
        starts = _subsequence_starts(prompt_ids, noun_ids)
        if pieces is not None:
            starts = [start for start in starts if _is_whole_word(pieces, start, len(noun_ids))]
        if starts:
            chosen = starts[:1] if occurrences == "first" else starts
            return sorted({start + offset for start in chosen for offset in range(len(noun_ids))})

    if pieces is not None:
        indices = _character_match_tokens(pieces, noun, occurrences)
        if indices:
            return indices
    raise ValueError(f"noun {noun!r} is not in the prompt {prompt!r}")


def map_nouns_to_tokens(prompt: str, nouns: Iterable[str], tokenizer: PromptTokenizer,
                        occurrences: Occurrences = "first") -> dict[str, list[int]]:
    """`noun_token_indices` for each noun, in the given order."""
    return {noun: noun_token_indices(prompt, noun, tokenizer, occurrences) for noun in nouns}
