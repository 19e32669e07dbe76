"""Token mapping against ComfyUI's real Wan text tokenizer (WanT5Tokenizer), fed a tiny
sentencepiece model trained here in place of umt5's (which is not shipped with ComfyUI), for plain
prompts and prompts with weight markup."""
from __future__ import annotations

import io
import random

import pytest

from numina_core.numerals import parse_counts
from numina_core.targets import build_targets
from numina_core.token_mapping import SentencePieceTokenizer, comfy_prompt_segments, map_nouns_to_tokens

sentencepiece = pytest.importorskip("sentencepiece")

PROMPTS = [
    "Three hot air-balloons drifting as two biplanes perform loops and two skydivers fall.",
    "A dog wagging its tail while the dog sleeps near two cats.",
    "Two construction workers, one crane, and two steel-beams being hoisted onto a building.",
    "  spaced   out,  prompt  ",
]
# (prompt, noun → the weight ComfyUI gives that noun's tokens)
MARKED_UP_PROMPTS = [
    ("(three:1.2) cats and two dogs", {"cats": 1.0, "dogs": 1.0}),
    ("three (cats:1.3) and two \\(dogs\\)", {"cats": 1.3, "dogs": 1.0}),
    ("((two hot air-balloons)) drifting as (three biplanes:0.8) perform loops", {"balloons": 1.21, "biplanes": 0.8}),
    ("(two (red:1.5) cats:1.2) near(one dog)", {"cats": 1.2, "dog": 1.1}),
]


def train_tiny_model() -> bytes:
    rng = random.Random(1)
    plain_marked_up = [text for text, _ in MARKED_UP_PROMPTS]
    words = " ".join(PROMPTS + plain_marked_up).replace(",", " ").replace(".", " ").split()
    sentences = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)] + PROMPTS + plain_marked_up
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


def comfy_ids_and_weights(comfy_tokenizer, prompt: str) -> tuple[list[int], list[float]]:
    [batch] = comfy_tokenizer.tokenize_with_weights(prompt)["umt5xxl"]
    return [pair[0] for pair in batch], [pair[1] for pair in batch]


def random_markup(rng: random.Random) -> str:
    atoms = ["(", ")", "\\(", "\\)", ":", ":1.3", ":x", "1.5", "cats", " two ", "dogs", " ", "((", "))"]
    return "".join(rng.choice(atoms) for _ in range(rng.randint(0, 14)))


def test_segments_equal_comfyui_token_weights(comfyui):
    from comfy.sd1_clip import escape_important, token_weights, unescape_important

    rng = random.Random(0)
    prompts = [text for text, _ in MARKED_UP_PROMPTS] + PROMPTS + [random_markup(rng) for _ in range(3000)]
    for prompt in prompts:
        expected = [(unescape_important(text), weight) for text, weight in token_weights(escape_important(prompt), 1.0)]
        assert [(segment.text, segment.weight) for segment in comfy_prompt_segments(prompt)] == expected, prompt


@pytest.mark.parametrize("prompt, noun_weights", MARKED_UP_PROMPTS, ids=[text for text, _ in MARKED_UP_PROMPTS])
def test_marked_up_prompt_columns_index_comfyui_tokens(comfy_tokenizer_and_ours, prompt, noun_weights):
    comfy_tokenizer, ours = comfy_tokenizer_and_ours
    comfy_ids, comfy_weights = comfy_ids_and_weights(comfy_tokenizer, prompt)
    ids = ours.encode_prompt(prompt)
    assert comfy_ids[:len(ids)] == ids
    assert set(comfy_ids[len(ids):]) == {0}

    targets = build_targets(prompt, ours)
    assert list(targets.counts) == list(noun_weights)
    processor = ours.processor
    for noun, indices in targets.token_indices.items():
        assert max(indices) < len(ids) - 1  # real tokens, never EOS or padding
        text = "".join(processor.id_to_piece(comfy_ids[i]) for i in indices).replace("\u2581", "")
        assert text == noun
        assert [comfy_weights[i] for i in indices] == pytest.approx([noun_weights[noun]] * len(indices))


def test_issue_examples_count_and_map(comfy_tokenizer_and_ours):
    comfy_tokenizer, ours = comfy_tokenizer_and_ours
    for prompt in ("(three:1.2) cats and two dogs", "three (cats:1.3) and two \\(dogs\\)"):
        assert parse_counts(prompt) == {"cats": 3, "dogs": 2}
        comfy_ids, _ = comfy_ids_and_weights(comfy_tokenizer, prompt)
        real_tokens = comfy_ids.index(1)  # umt5's EOS ends the real tokens
        dogs = build_targets(prompt, ours).token_indices["dogs"]
        assert max(dogs) < real_tokens
        assert "".join(ours.processor.id_to_piece(comfy_ids[i]) for i in dogs).replace("\u2581", "") == "dogs"
