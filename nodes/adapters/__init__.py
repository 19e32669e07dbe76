"""Model adapters behind one contract (contract.py) and the registry that picks one for a MODEL or CLIP."""
from __future__ import annotations

from ...numina_core.token_mapping import PromptTokenizer
from .cogvideox import CogVideoXAdapter
from .contract import GuidanceHook, ModelAdapter
from .wan import WanAdapter

ADAPTERS: list[type[ModelAdapter]] = [WanAdapter, CogVideoXAdapter]
"""Every supported model family, tried in order."""


def supported_families() -> str:
    return ", ".join(adapter.family for adapter in ADAPTERS)


def adapter_for(model, node: str) -> ModelAdapter:
    """The adapter of the family `model` belongs to, or a ValueError naming the node and its input 'model'."""
    for adapter in ADAPTERS:
        if adapter.handles(model):
            return adapter(model, node)
    found = type(model.get_model_object("diffusion_model")).__name__
    raise ValueError(f"{node}: input 'model' is a {found}; NUMINA works on ComfyUI's native {supported_families()} "
                     "models (load them with ComfyUI's own loaders)")


def tokenizer_for(clip, node: str) -> PromptTokenizer:
    """The prompt tokenizer of a supported family's text encoder, or a ValueError naming input 'clip'."""
    for adapter in ADAPTERS:
        tokenizer = adapter.prompt_tokenizer(clip)
        if tokenizer is not None:
            return tokenizer
    raise ValueError(f"{node}: input 'clip' is not the text encoder of a supported model ({supported_families()}); "
                     "load it with CLIPLoader, type 'wan' for Wan or 'cogvideox' for CogVideoX")


__all__ = ["ADAPTERS", "GuidanceHook", "ModelAdapter", "adapter_for", "supported_families", "tokenizer_for"]
