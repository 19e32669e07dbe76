"""GroundingDINO through Hugging Face `transformers` (no CUDA extension to build), used to count
objects in generated frames. One caption per noun, "<noun> .", as the NUMINA authors query it.

Weights come from a local folder written by `save_pretrained` (ComfyUI's models/grounding-dino/
<name>/), from the Hugging Face cache, or are downloaded once where the user is online.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .counting import CountProtocol, Detection, count_frame

DEFAULT_MODEL_ID = "IDEA-Research/grounding-dino-tiny"
KNOWN_MODEL_IDS = ("IDEA-Research/grounding-dino-tiny", "IDEA-Research/grounding-dino-base")

_SPECIAL_TOKEN = re.compile(r"\[(?:CLS|SEP|PAD|UNK|MASK)\]")


class DetectorUnavailableError(RuntimeError):
    """The detector weights are neither on disk nor downloadable; the message says where to put them."""


def caption_for(noun: str) -> str:
    """The authors' query for one noun."""
    return f"{noun.strip().lower()} ."


def clean_label(text: str) -> str:
    """Decoded phrase without special tokens and the caption's full stop, lower case."""
    return " ".join(_SPECIAL_TOKEN.sub(" ", text).replace(".", " ").lower().split())


def is_model_folder(path: Path) -> bool:
    """A folder written by `save_pretrained` for a model plus its processor (transformers 5 writes
    processor_config.json, older versions and the hub use preprocessor_config.json)."""
    return (path / "config.json").is_file() and any(
        (path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json"))


def local_folder_name(model_id: str) -> str:
    """The folder name a hub id is stored under inside ComfyUI's models/grounding-dino/."""
    return model_id.rstrip("/").split("/")[-1]


def resolve_model_folder(name: str, search_dirs: Iterable[Path]) -> Path | None:
    """The local folder for `name` (a folder name, a hub id, or a path), or None."""
    direct = Path(name).expanduser()
    if direct.is_absolute() and is_model_folder(direct):
        return direct
    for base in search_dirs:
        for candidate in (Path(base) / name, Path(base) / local_folder_name(name)):
            if is_model_folder(candidate):
                return candidate
    return None


def _post_process(processor, outputs, input_ids, box_threshold: float, text_threshold: float,
                  target_sizes: list[tuple[int, int]]) -> list[dict]:
    """`post_process_grounded_object_detection` across transformers versions: its box threshold
    argument was renamed from `box_threshold` to `threshold`."""
    method = processor.post_process_grounded_object_detection
    params = inspect.signature(method).parameters
    threshold_arg = "threshold" if "threshold" in params else "box_threshold"
    return method(outputs, input_ids, text_threshold=text_threshold, target_sizes=target_sizes,
                  **{threshold_arg: box_threshold})


class GroundingDinoDetector:
    """A loaded GroundingDINO model and processor; counts nouns in RGB frames."""

    def __init__(self, model, processor, source: str, device: torch.device | str = "cpu",
                 batch_size: int = 8) -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.source = source
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))

    def to(self, device: torch.device | str) -> "GroundingDinoDetector":
        """Move the model, e.g. onto the GPU for a count and back to the CPU afterwards."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL_ID, search_dirs: Sequence[Path] = (),
             download_dir: Path | None = None, allow_download: bool = True,
             device: torch.device | str = "cpu") -> "GroundingDinoDetector":
        """Load `name` from the first of: a local `save_pretrained` folder under `search_dirs`
        (or an absolute path), the Hugging Face cache, a download into `download_dir` (or the
        cache when None). Raises DetectorUnavailableError, naming every place looked at."""
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        def from_folder(path: Path) -> GroundingDinoDetector:
            model = AutoModelForZeroShotObjectDetection.from_pretrained(str(path))
            processor = AutoProcessor.from_pretrained(str(path))
            return cls(model, processor, source=str(path), device=device)

        folder = resolve_model_folder(name, search_dirs)
        if folder is not None:
            return from_folder(folder)
        looked = [str(Path(d) / local_folder_name(name)) for d in search_dirs]
        if "/" not in name or Path(name).expanduser().is_absolute():
            raise DetectorUnavailableError(
                f"GroundingDINO model {name!r} not found; looked in: {', '.join(looked) or '(no folders)'}. "
                "Put a transformers `save_pretrained` folder (config.json, processor config, "
                "weights, tokenizer files) there, or choose a Hugging Face id such as "
                f"{DEFAULT_MODEL_ID!r}.")
        try:
            model = AutoModelForZeroShotObjectDetection.from_pretrained(name, local_files_only=True)
            processor = AutoProcessor.from_pretrained(name, local_files_only=True)
            return cls(model, processor, source=f"{name} (Hugging Face cache)", device=device)
        except OSError:
            pass
        if not allow_download:
            raise DetectorUnavailableError(
                f"GroundingDINO model {name!r} is not in {', '.join(looked) or '(no folders)'} nor in the "
                "Hugging Face cache, and downloading is off.")
        try:
            if download_dir is None:
                model = AutoModelForZeroShotObjectDetection.from_pretrained(name)
                processor = AutoProcessor.from_pretrained(name)
                return cls(model, processor, source=f"{name} (downloaded to the Hugging Face cache)",
                           device=device)
            from huggingface_hub import snapshot_download

            target = Path(download_dir) / local_folder_name(name)
            snapshot_download(repo_id=name, local_dir=str(target))
            return from_folder(target)
        except Exception as error:  # network errors come in many types; all mean "not available"
            where = str(Path(download_dir) / local_folder_name(name)) if download_dir else "the Hugging Face cache"
            raise DetectorUnavailableError(
                f"GroundingDINO model {name!r} is not on this machine and could not be downloaded "
                f"({type(error).__name__}: {error}). Looked in: {', '.join(looked) or '(no folders)'} and the "
                f"Hugging Face cache. Download it where you are online (e.g. `huggingface-cli download {name} "
                f"--local-dir {where}`) and copy the folder there.") from error

    @torch.no_grad()
    def detect(self, frames: Sequence[np.ndarray], nouns: Sequence[str], box_threshold: float,
               text_threshold: float, progress: Callable[[int], None] | None = None
               ) -> list[dict[str, list[Detection]]]:
        """Boxes per frame and noun above `box_threshold`. Frames are HxWx3 RGB, uint8 or float in
        [0, 1]. `progress` is called with the number of frames finished after each batch of the
        last noun."""
        images = [_to_uint8(f) for f in frames]
        results: list[dict[str, list[Detection]]] = [{noun: [] for noun in nouns} for _ in images]
        for noun_index, noun in enumerate(nouns):
            caption = caption_for(noun)
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size]
                inputs = self.processor(images=batch, text=[caption] * len(batch), return_tensors="pt")
                inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
                outputs = self.model(**inputs)
                sizes = [(img.shape[0], img.shape[1]) for img in batch]
                processed = _post_process(self.processor, outputs, inputs["input_ids"], box_threshold,
                                          text_threshold, sizes)
                for offset, result in enumerate(processed):
                    # "labels" is deprecated in favour of "text_labels"; read it only where absent.
                    labels = result["text_labels"] if "text_labels" in result else result["labels"]
                    results[start + offset][noun] = [
                        Detection(noun=noun, box=tuple(float(x) for x in box.tolist()),
                                  score=float(score), label=clean_label(str(label)))
                        for box, score, label in zip(result["boxes"].cpu(), result["scores"].cpu(), labels)]
                if progress is not None and noun_index == len(nouns) - 1:
                    progress(min(start + len(batch), len(images)))
        return results

    def count(self, frames: Sequence[np.ndarray], nouns: Sequence[str], protocol: CountProtocol,
              progress: Callable[[int], None] | None = None
              ) -> tuple[list[int], list[dict[str, int]], list[dict[str, list[Detection]]]]:
        """Apply `protocol` to a whole video: the frame indices it evaluates, the counts per
        evaluated frame, and the boxes behind them."""
        indices = protocol.frame_indices(len(frames))
        detections = self.detect([frames[i] for i in indices], nouns, protocol.box_threshold,
                                 protocol.text_threshold, progress)
        return indices, [count_frame(d, protocol) for d in detections], detections


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {array.shape}")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60))


def draw_detections(frame: np.ndarray, detections: dict[str, list[Detection]],
                    counts: dict[str, int] | None = None) -> np.ndarray:
    """The frame (RGB uint8) with every box outlined in its noun's colour and labelled with the
    noun and score; the per-noun counts are written in the top-left corner."""
    import cv2

    canvas = _to_uint8(frame).copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    scale = max(0.35, min(canvas.shape[:2]) / 900)
    for index, noun in enumerate(detections):
        colour = _PALETTE[index % len(_PALETTE)]
        for det in detections[noun]:
            x0, y0, x1, y1 = (int(round(v)) for v in det.box)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
            cv2.putText(canvas, f"{noun} {det.score:.2f}", (x0, max(y0 - 3, 10)),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
        if counts is not None:
            cv2.putText(canvas, f"{noun}: {counts.get(noun, 0)}", (4, int(14 + index * 30 * scale * 1.2)),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas
