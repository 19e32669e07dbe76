"""Read the collected outputs back as frames and score every job; CLIP score where weights exist."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..counting import CountProtocol, VideoScore, failed_video, score_video
from .runner import Job, job_dir, job_state

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi"}

# frames, nouns -> counts per evaluated frame
FrameCounter = Callable[[list[np.ndarray], list[str]], list[dict[str, int]]]
# frames, prompt -> mean CLIP similarity
ClipScorer = Callable[[list[np.ndarray], str], float]


def read_frames(files: Sequence[Path]) -> list[np.ndarray]:
    """RGB uint8 frames of every file in order: videos through OpenCV, images (animated WEBP/PNG/
    GIF too) through Pillow."""
    from PIL import Image, ImageSequence

    frames: list[np.ndarray] = []
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            import cv2

            capture = cv2.VideoCapture(str(path))
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            capture.release()
        else:
            with Image.open(path) as image:
                frames += [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
    return frames


def score_jobs(jobs: Sequence[Job], out_dir: Path, protocol: CountProtocol, counter: FrameCounter,
               counter_tag: str, clip: ClipScorer | None = None, log: Callable[[str], None] = print
               ) -> list[VideoScore]:
    """One VideoScore per job. Counts are cached per job in counts.json under `counter_tag` (the
    detector and protocol), so rescoring after a resumed run only counts new videos."""
    scores = []
    for number, job in enumerate(jobs, start=1):
        targets = job.prompt.noun_counts
        state, record = job_state(out_dir, job)
        if state != "done":
            error = record.get("error", "no output: the job never finished")
            scores.append(failed_video(job.prompt.prompt_id, job.seed, targets,
                                       "failed" if state == "failed" else "missing", error, clip is not None))
            continue
        folder = job_dir(out_dir, job)
        try:
            frames = read_frames([folder / name for name in record["files"]])
        except Exception as error:  # an unreadable file is this job's failure, not the run's
            frames, read_error = [], f"{type(error).__name__}: {error}"
        else:
            read_error = "no frames in the outputs" if not frames else ""
        if read_error:
            scores.append(failed_video(job.prompt.prompt_id, job.seed, targets, "failed", read_error,
                                       clip is not None))
            continue
        cache_file = folder / "counts.json"
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        if counter_tag not in cache:
            cache[counter_tag] = counter(frames, list(targets))
            cache_file.write_text(json.dumps(cache))
        picked = [frames[i] for i in protocol.frame_indices(len(frames))]
        clip_value = clip(picked, job.prompt.prompt) if clip is not None else None
        scores.append(score_video(job.prompt.prompt_id, job.seed, targets, cache[counter_tag], clip_value))
        log(f"scored {number}/{len(jobs)} {job.key}: CountAcc {scores[-1].count_acc:.3f}")
    return scores


def load_clip_scorer(name: str, device: str = "cpu") -> tuple[ClipScorer | None, str]:
    """A CLIP scorer from a local folder or the Hugging Face cache (never downloads: benchmark runs
    must not depend on the network); (None, reason) where the weights are not on this machine."""
    try:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(name, local_files_only=True).eval().to(device)
        processor = CLIPProcessor.from_pretrained(name, local_files_only=True)
    except Exception as error:  # missing files surface as OSError or ValueError depending on version
        return None, f"unavailable ({name} not found locally: {type(error).__name__})"

    @torch.no_grad()
    def score(frames: list[np.ndarray], prompt: str) -> float:
        inputs = processor(text=[prompt], images=frames, return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        image = model.get_image_features(pixel_values=inputs["pixel_values"])
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return float((image @ text.T).mean())

    return score, name
