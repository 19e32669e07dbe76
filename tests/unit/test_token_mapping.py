"""Noun → token indices over a tiny sentencepiece model trained at test time (umt5's special ids:
pad 0, EOS 1, unk 2, no BOS)."""
from __future__ import annotations

import io
import random

import pytest

sentencepiece = pytest.importorskip("sentencepiece")

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
