"""The checkpoint file format (docs/models.md, "Checkpoint format").

One file written with ``torch.save`` (loadable with ``weights_only=True``): a dict with
``format``, ``method``, ``config`` (the full resolved configuration, so the file rebuilds
its own architecture), ``state_dict`` (the whole pipeline, enhancement included),
``perceptual_state_dict`` (phi of eq. 11, or None), ``labels``, ``keypoints``,
``window_frames``, ``window_fps``, ``crop_size``, ``feature_dim``, ``inputs`` (``served``: trained
on the served input path, ``models/data/inputs.py``; ``raw_colour``: the paper recipe's raw colour
crops through the torch enhancement), ``training`` (summary of the run that produced it) and
``dataset_id``. ``check_checkpoint`` refuses a file whose vocabulary or layout this code does not
serve, with one line saying what differs. Next to it, ``enhancement.json`` holds the
section 3.2 parameters (services.enhancement.params.EnhancementParams) that the NumPy
enhancement service serves, including what the torch enhancement learned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from services.common.vocabulary import BEHAVIOURS, KEYPOINTS, WINDOW_FPS, WINDOW_FRAMES
from services.enhancement.params import EnhancementParams

if TYPE_CHECKING:
    from models.networks.pipeline import ClassroomPipeline

CHECKPOINT_FORMAT = "smartclass-models/1"
ENHANCEMENT_JSON = "enhancement.json"


def build_checkpoint(
    pipeline: ClassroomPipeline,
    *,
    perceptual: nn.Module | None = None,
    training: dict[str, Any] | None = None,
    dataset_id: str = "",
    window_frames: int = WINDOW_FRAMES,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "method": pipeline.method,
        "config": pipeline.config,
        "state_dict": state_dict if state_dict is not None else pipeline.state_dict(),
        "perceptual_state_dict": perceptual.state_dict() if perceptual is not None else None,
        "labels": list(BEHAVIOURS),
        "keypoints": list(KEYPOINTS),
        "window_frames": int(window_frames),
        "window_fps": float(WINDOW_FPS),
        "crop_size": int(pipeline.crop_size),
        "feature_dim": int(pipeline.feature_dim),
        "inputs": str(pipeline.config.get("inputs", "raw_colour")),
        "training": training or {},
        "dataset_id": dataset_id,
    }


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file as a dict, with a clear error if it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: say which and why
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    return data


class CheckpointMismatch(ValueError):
    """A checkpoint this code cannot serve: another vocabulary, window or architecture."""


def check_checkpoint(data: dict[str, Any], path: str | Path) -> None:
    """CheckpointMismatch (one line: what differs, what to do) unless ``data`` fits this code's vocabulary."""
    what_to_do = (
        "retrain it with this version (classroom train --recipe staged) or serve a checkpoint that matches"
    )
    for key, ours in (("labels", list(BEHAVIOURS)), ("keypoints", list(KEYPOINTS))):
        theirs = list(data.get(key) or [])
        if theirs != ours:
            differ = sorted(set(theirs) ^ set(ours)) or ["the order"]
            raise CheckpointMismatch(
                f"{path}: its {key} differ from this version's ({', '.join(map(str, differ[:4]))}); {what_to_do}"
            )
    # the recognition service takes the window length from the model server, not the frame rate
    if float(data.get("window_fps", -1)) != WINDOW_FPS or int(data.get("window_frames", 0)) < 1:
        raise CheckpointMismatch(
            f"{path}: windows of {data.get('window_frames')} frames at {data.get('window_fps')} fps, "
            f"the recognition service samples at {WINDOW_FPS} fps; {what_to_do}"
        )


def write_enhancement_json(pipeline: nn.Module, directory: str | Path) -> Path:
    """enhancement.json beside the checkpoint: the parameters the torch enhancement learned
    (``export_params()``) if they beat the section 3.2 defaults on real photographs, else the
    defaults (``services.enhancement.photos``; both figures in enhancement.report.json)."""
    from services.enhancement.photos import ship

    export = getattr(pipeline.enhancement, "export_params", None)
    ship(directory, export() if callable(export) else EnhancementParams())
    return Path(directory) / ENHANCEMENT_JSON
