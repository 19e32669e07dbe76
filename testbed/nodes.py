"""Nodes of the count testbed: the small pixel-space Wan model, its text encoder, empty video and decode.

The testbed model is ComfyUI's own ``WanModel`` trained by the project on synthetic counting
videos (``testbed/``); these nodes let ComfyUI's stock samplers and the NUMINA nodes run on it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from comfy_api.v0_0_2 import io

from . import synthetic as sc
from .model import CHANNELS, FRAMES, SIZE, WEIGHTS_DIR, TestbedTokenizer, encode_text, load_testbed_model

TokenizerType = io.Custom("NUMINA_TOKENIZER")
CounterType = io.Custom("NUMINA_COUNTER")
CATEGORY = "NUMINA/testbed"


def _weight_files() -> list[str]:
    return sorted(p.name for p in Path(WEIGHTS_DIR).glob("*.safetensors"))


class NuminaTestbedModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = _weight_files()
        return io.Schema(
            node_id="NuminaTestbedModelLoader",
            display_name="NUMINA Testbed Model Loader",
            category=CATEGORY,
            description="Loads the count testbed: ComfyUI's Wan architecture trained by this pack on synthetic "
            "counting videos (coloured shapes, 5 frames of 64×64, pixel space, no VAE). Use it with NUMINA "
            "Testbed Text Encode, Empty Video and Decode and any stock sampler.",
            inputs=[
                io.Combo.Input("weights", options=files, default=files[0] if files else None,
                               tooltip="Testbed weights shipped in the pack's testbed/weights folder."),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The testbed Wan model (flow matching, shift 3).")],
        )

    @classmethod
    def execute(cls, weights: str) -> io.NodeOutput:
        path = Path(WEIGHTS_DIR) / weights
        if not path.is_file():
            raise ValueError(f"NUMINA Testbed Model Loader: input 'weights' names no file in {WEIGHTS_DIR}: {weights}")
        return io.NodeOutput(load_testbed_model(path))


class NuminaTestbedTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaTestbedTextEncode",
            display_name="NUMINA Testbed Text Encode",
            category=CATEGORY,
            description="Encodes a testbed prompt such as 'three red discs and two blue squares' with the testbed "
            "model's learned word embeddings (one context slot per word, 16 slots). Also outputs the tokenizer "
            "the NUMINA Numeral Parser needs to find each noun's context columns.",
            inputs=[
                io.Model.Input("model", tooltip="The model from NUMINA Testbed Model Loader (it holds the word embeddings)."),
                io.String.Input("text", multiline=True, default="three red discs and two blue squares",
                                tooltip="Words allowed: one … six (or 1 … 6), red, blue, green, yellow, disc(s), "
                                        "square(s), triangle(s), diamond(s), and. Empty text is the unconditional prompt."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="CONDITIONING"),
                TokenizerType.Output(display_name="TOKENIZER", tooltip="Word-level tokenizer for the NUMINA Numeral Parser."),
            ],
        )

    @classmethod
    def execute(cls, model, text: str) -> io.NodeOutput:
        word_embedding = getattr(getattr(model.model, "model_config", None), "word_embedding", None)
        if word_embedding is None:
            raise ValueError("NUMINA Testbed Text Encode: input 'model' is not a testbed model; "
                             "connect NUMINA Testbed Model Loader")
        try:
            context = encode_text(text, word_embedding)
        except ValueError as error:
            raise ValueError(f"NUMINA Testbed Text Encode: input 'text': {error}") from None
        return io.NodeOutput([[context, {}]], TestbedTokenizer())


class NuminaTestbedEmptyVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaTestbedEmptyVideo",
            display_name="NUMINA Testbed Empty Video",
            category=CATEGORY,
            description="An empty testbed latent: the pixel video itself, [batch, 3, frames, 64, 64].",
            inputs=[
                io.Int.Input("frames", default=FRAMES, min=1, max=16,
                             tooltip="Frames; the model was trained on 5 (and single frames)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos sampled at once."),
            ],
            outputs=[io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, frames: int, batch_size: int) -> io.NodeOutput:
        return io.NodeOutput({"samples": torch.zeros(batch_size, CHANNELS, frames, SIZE, SIZE)})


class NuminaTestbedDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaTestbedDecode",
            display_name="NUMINA Testbed Decode",
            category=CATEGORY,
            description="Turns a testbed latent (the pixel video in [-1, 1]) into IMAGE frames, all videos of the "
            "batch one after another.",
            inputs=[io.Latent.Input("samples", tooltip="Testbed latent from a sampler.")],
            outputs=[io.Image.Output(display_name="IMAGE")],
        )

    @classmethod
    def execute(cls, samples: dict) -> io.NodeOutput:
        latent = samples["samples"]
        if latent.ndim != 5 or latent.shape[1] != CHANNELS:
            raise ValueError(f"NUMINA Testbed Decode: input 'samples' must be a testbed latent [B, 3, F, H, W], "
                             f"got {tuple(latent.shape)}")
        return io.NodeOutput(torch.cat([sc.video_to_image_frames(v) for v in latent]))


class TestbedPixelVAE:
    """The testbed's "VAE": its latent is the pixel video, so decoding only rescales it (as Testbed Decode does).
    Lets nodes with a VAE input (the Count-Verified Sampler, VAE Decode) run on the testbed."""

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, H, W] in [-1, 1] → [B, F, H, W, 3] in [0, 1], the layout of a video VAE's decode."""
        return torch.stack([sc.video_to_image_frames(v) for v in samples])


class NuminaTestbedVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaTestbedVAE",
            display_name="NUMINA Testbed VAE",
            category=CATEGORY,
            description="The testbed's decoder as a VAE, for nodes that take one (NUMINA Count-Verified "
            "Sampler, VAE Decode). The testbed has no real VAE: its latent is the video itself.",
            inputs=[],
            outputs=[io.Vae.Output(display_name="VAE")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(TestbedPixelVAE())


def category_of(noun: str) -> int:
    """The testbed category a prompt noun names ("discs" → red discs); a ValueError for any other noun."""
    for index, category in enumerate(sc.CATEGORIES):
        if noun in (category.shape, category.plural):
            return index
    raise ValueError(f"the testbed draws only {', '.join(c.plural for c in sc.CATEGORIES)}, not {noun!r}")


class TestbedExactCounter:
    """The testbed's NUMINA_COUNTER: its exact counter (connected components of each category's colour)."""

    def count(self, images: torch.Tensor, nouns: list[str]) -> dict[str, list[int]]:
        counts = sc.count_objects(images[..., :3])
        return {noun: counts[:, category_of(noun)].tolist() for noun in nouns}


class NuminaTestbedCounter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NuminaTestbedCounter",
            display_name="NUMINA Testbed Counter",
            category=CATEGORY,
            description="Counts the testbed's shapes exactly (connected components of each colour) for the "
            "NUMINA Count-Verified Sampler; NUMINA Object Counter is the detector for real videos.",
            inputs=[],
            outputs=[CounterType.Output(display_name="counter")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(TestbedExactCounter())


NODES = [NuminaTestbedModelLoader, NuminaTestbedTextEncode, NuminaTestbedEmptyVideo, NuminaTestbedDecode,
         NuminaTestbedVAE, NuminaTestbedCounter]
__all__ = ["NODES"]
