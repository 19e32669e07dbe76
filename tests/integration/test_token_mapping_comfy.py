"""Token mapping against ComfyUI's real Wan text tokenizer (WanT5Tokenizer), fed a tiny
sentencepiece model trained here in place of umt5's (which is not shipped with ComfyUI)."""
from __future__ import annotations

import io
import random

import pytest

from numina_core.token_mapping import SentencePieceTokenizer, map_nouns_to_tokens

sentencepiece = pytest.importorskip("sentencepiece")

PROMPTS = [
    "Three hot air-balloons drifting as two biplanes perform loops and two skydivers fall.",
    "A dog wagging its tail while the dog sleeps near two cats.",
    "Two construction workers, one crane, and two steel-beams being hoisted onto a building.",
    "  spaced   out,  prompt  ",
]


def train_tiny_model() -> bytes:
    rng = random.Random(1)
    words = " ".join(PROMPTS).replace(",", " ").replace(".", " ").split()
    sentences = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)] + PROMPTS
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=80, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def comfy_tokenizer_and_ours(comfyui):
    from comfy.text_encoders.wan import WanT5Tokenizer

    comfy_tokenizer = WanT5Tokenizer(tokenizer_data={"spiece_model": train_tiny_model()})
    # The same path a node takes from a CLIP object: clip.tokenizer.clip_umt5xxl.tokenizer.tokenizer
    processor = getattr(comfy_tokenizer, comfy_tokenizer.clip).tokenizer.tokenizer
    return comfy_tokenizer, SentencePieceTokenizer(processor)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_encode_prompt_matches_comfyui_tokenize(comfy_tokenizer_and_ours, prompt):
    comfy_tokenizer, ours = comfy_tokenizer_and_ours
    batches = comfy_tokenizer.tokenize_with_weights(prompt)["umt5xxl"]
    comfy_ids = [pair[0] for pair in batches[0]]
    ids = ours.encode_prompt(prompt)
    assert len(batches) == 1 and len(comfy_ids) == 512
    assert comfy_ids[:len(ids)] == ids
    assert set(comfy_ids[len(ids):]) == {0}  # padding only after our ids


def test_noun_indices_point_at_the_noun_in_comfyui_ids(comfy_tokenizer_and_ours):
    comfy_tokenizer, ours = comfy_tokenizer_and_ours
    prompt = PROMPTS[0]
    comfy_ids = [pair[0] for pair in comfy_tokenizer.tokenize_with_weights(prompt)["umt5xxl"][0]]
    mapping = map_nouns_to_tokens(prompt, ["balloons", "biplanes", "skydivers"], ours)
    processor = ours.processor
    for noun, indices in mapping.items():
        text = "".join(processor.id_to_piece(comfy_ids[i]) for i in indices).replace("\u2581", "")
        assert text == noun
