"""Noun → token indices over a tiny sentencepiece model trained at test time (umt5's special ids:
pad 0, EOS 1, unk 2, no BOS)."""
from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sentencepiece = pytest.importorskip("sentencepiece")

from numina_core.targets import build_targets  # noqa: E402
from numina_core.token_mapping import (  # noqa: E402
    PromptTokenizer, SentencePieceTokenizer, map_nouns_to_tokens, noun_token_indices)

WORDS = ("the a two three one cat cats dog dogs sofa tail wagging its while sleeps hot air "
         "balloons balloon drifting over excavators digging near steel beams crane and with on in "
         "of racing cars tunnel").split()


def train_tiny_model(vocab_size: int = 50) -> bytes:
    """Small enough a vocabulary that "cats" is "▁cat" + "s" and "balloons" several pieces."""
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(400)]
    sentences += ["Three hot air-balloons drifting over steel-beams.", "A cat-dog, a dog.", "Cats sleeping."] * 5
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return train_tiny_model()


@pytest.fixture(scope="module")
def tokenizer(model_bytes) -> SentencePieceTokenizer:
    return SentencePieceTokenizer(sentencepiece.SentencePieceProcessor(model_proto=model_bytes))


def pieces_at(tokenizer: SentencePieceTokenizer, prompt: str, indices: list[int]) -> str:
    ids = tokenizer.encode_prompt(prompt)
    return "".join(tokenizer.decode_piece(ids[i]) for i in indices)


def test_encode_prompt_appends_eos_and_no_bos(tokenizer):
    ids = tokenizer.encode_prompt("two cats on a sofa")
    assert ids[-1] == 1
    assert 1 not in ids[:-1]
    assert ids[:-1] == tokenizer.encode_words("two cats on a sofa")
    assert tokenizer.encode_prompt("") == [1]


def test_sentencepiece_tokenizer_satisfies_protocol(tokenizer):
    assert isinstance(tokenizer, PromptTokenizer)


def test_single_and_multi_piece_nouns(tokenizer):
    prompt = "two cats on a sofa near three balloons"
    assert len(tokenizer.encode_words("balloons")) >= 2  # the tiny vocabulary splits it
    for noun in ("cats", "sofa", "balloons"):
        indices = noun_token_indices(prompt, noun, tokenizer)
        assert indices == list(range(indices[0], indices[0] + len(tokenizer.encode_words(noun))))
        assert pieces_at(tokenizer, prompt, indices) == " " + noun


def test_hyphenated_noun_maps_to_the_pieces_of_its_part(tokenizer):
    prompt = "three hot air-balloons drifting over steel-beams."
    balloons = noun_token_indices(prompt, "balloons", tokenizer)
    assert pieces_at(tokenizer, prompt, balloons) == "balloons"
    beams = noun_token_indices(prompt, "beams", tokenizer)
    assert beams[0] > balloons[-1]
    assert pieces_at(tokenizer, prompt, beams) == "beams"


def test_first_versus_all_occurrences(tokenizer):
    prompt = "a dog wagging its tail while the dog sleeps near two dogs"
    first = noun_token_indices(prompt, "dog", tokenizer)
    every = noun_token_indices(prompt, "dog", tokenizer, occurrences="all")
    width = len(tokenizer.encode_words("dog"))
    assert len(first) == width
    assert len(every) == 2 * width  # "dogs" is a different word, not a third occurrence
    assert every[:width] == first
    assert pieces_at(tokenizer, prompt, every[width:]).strip() == "dog"


def test_whole_word_match_skips_longer_words(tokenizer):
    prompt = "two cats and a cat"
    indices = noun_token_indices(prompt, "cat", tokenizer)
    ids = tokenizer.encode_prompt(prompt)
    assert indices[-1] == len(ids) - 2  # the last word, not the start of "cats"


def test_case_insensitive_character_fallback(tokenizer):
    prompt = "Cats on a sofa"
    indices = noun_token_indices(prompt, "cats", tokenizer)
    assert tokenizer.encode_words("cats")[0] not in tokenizer.encode_prompt(prompt)  # ids differ
    assert indices[0] in (0, 1)  # "▁" may be its own piece before "C"
    assert pieces_at(tokenizer, prompt, indices).strip() == "Cats"


def test_missing_noun_raises_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="noun 'giraffe' is not in the prompt"):
        noun_token_indices("two cats on a sofa", "giraffe", tokenizer)
    with pytest.raises(ValueError, match="occurrences"):
        noun_token_indices("two cats", "cats", tokenizer, occurrences="last")


def test_map_nouns_to_tokens_keeps_noun_order(tokenizer):
    prompt = "two cats on a sofa and a dog"
    mapping = map_nouns_to_tokens(prompt, ["dog", "cats"], tokenizer)
    assert list(mapping) == ["dog", "cats"]
    assert mapping["cats"][0] < mapping["dog"][0]
    assert mapping["cats"] == noun_token_indices(prompt, "cats", tokenizer)


class WordListTokenizer:
    """A tokenizer without `decode_piece`: one id per space-separated word, EOS id 1."""

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}

    def _id(self, word: str) -> int:
        return self.vocabulary.setdefault(word, len(self.vocabulary) + 2)

    def encode_words(self, text: str) -> list[int]:
        return [self._id(word) for word in text.split()]

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.encode_words(prompt) + [1]


def test_protocol_without_decode_piece_uses_id_search_only():
    tokenizer = WordListTokenizer()
    assert noun_token_indices("two cats and a dog", "dog", tokenizer) == [4]
    with pytest.raises(ValueError, match="not in the prompt"):
        noun_token_indices("two air-balloons", "balloons", tokenizer)


def test_weight_markup_is_removed_and_each_run_encoded_alone(tokenizer):
    marked = "(three:1.2) cats and two dogs"
    ids = tokenizer.encode_prompt(marked)
    assert ids == tokenizer.encode_words("three") + tokenizer.encode_words(" cats and two dogs") + [1]
    assert ids == tokenizer.encode_prompt("three cats and two dogs")
    plain = noun_token_indices("three cats and two dogs", "dogs", tokenizer)
    assert noun_token_indices(marked, "dogs", tokenizer) == plain
    assert plain[-1] == len(ids) - 2  # the last word, not padding past the real tokens


def test_noun_inside_markup_and_escaped_parentheses(tokenizer):
    prompt = "three (cats:1.3) and two \\(dogs\\)"
    ids = tokenizer.encode_prompt(prompt)
    cats = noun_token_indices(prompt, "cats", tokenizer)
    dogs = noun_token_indices(prompt, "dogs", tokenizer)
    assert pieces_at(tokenizer, prompt, cats) == " cats"
    assert pieces_at(tokenizer, prompt, dogs).strip() == "dogs"  # the literal brackets are not included
    assert cats[-1] < dogs[0] and dogs[-1] < len(ids) - 1
    assert "".join(tokenizer.decode_piece(i) for i in ids).count("dogs") == 1


def test_targets_of_a_marked_up_prompt(tokenizer):
    targets = build_targets("(three:1.2) cats and two dogs", tokenizer)
    assert targets.counts == {"cats": 3, "dogs": 2}
    for noun, indices in targets.token_indices.items():
        assert pieces_at(tokenizer, targets.prompt, indices) == " " + noun


def test_textual_inversion_embedding_is_a_clear_error(tokenizer):
    for prompt in ("embedding:cute_cat two cats", "two cats, (embedding:style:1.2)", "two\nembedding:x cats"):
        with pytest.raises(ValueError, match="textual-inversion embedding"):
            tokenizer.encode_prompt(prompt)
    # ComfyUI only looks an embedding up where "embedding:" starts a run or follows whitespace.
    assert tokenizer.encode_prompt("two re-embedding: cats")[-1] == 1


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["two", "three", "a", "cats", "dog", "air-balloons", "(", ")", "\\(", "\\)", ":1.3",
                                 ":", " ", ",", "٣", "²", "🐱", "embedding:x"]), max_size=12).map("".join))
def test_marked_up_prompts_map_to_real_tokens_or_raise_value_error(tokenizer, prompt):
    try:
        targets = build_targets(prompt, tokenizer)
    except ValueError:
        return
    if targets.is_empty:  # nothing was mapped, so the tokenizer was never asked
        return
    last_real_token = len(tokenizer.encode_prompt(prompt)) - 2
    assert all(0 <= column <= last_real_token for columns in targets.token_indices.values() for column in columns)
