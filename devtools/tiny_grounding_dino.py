"""A tiny random GroundingDINO checkpoint written in the test (no download): a 4-stage Swin with
8 channels, a 1-layer BERT over a hand-made WordPiece vocabulary, 20 queries. Its boxes are
arbitrary; it exercises the real transformers loading, preprocessing and post-processing code."""
from __future__ import annotations

from pathlib import Path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "##s",
         "cat", "dog", "person", "apple", "bird", "car"]


def write_tiny_grounding_dino(folder: Path, seed: int = 0) -> Path:
    """Write model + processor with `save_pretrained` into `folder` (created) and return it."""
    import torch
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    folder.mkdir(parents=True, exist_ok=True)
    vocab_dir = folder / "_vocab"
    vocab_dir.mkdir(exist_ok=True)
    (vocab_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizer.from_pretrained(str(vocab_dir))  # same call in transformers 4.x and 5.x

    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2,
                          image_size=64, patch_size=4, out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    # d_model must be a multiple of 32 (GroupNorm groups); 2 decoder layers avoid a weight-tying
    # corner case of 1-layer decoders in transformers 5.
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, num_queries=20,
                                 encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                                 d_model=32, encoder_attention_heads=2, decoder_attention_heads=2,
                                 encoder_n_points=1, decoder_n_points=1, max_text_len=32)
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    # 96 px keeps the smallest (extra) feature level above 1x1, which GroupNorm needs.
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 144})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder
