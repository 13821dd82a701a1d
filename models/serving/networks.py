"""The networks the model server runs, built from a checkpoint as it builds them: the method's
pipeline with the torch enhancement left out (frames arrive enhanced), batch norm folded, on the
device in the served precision (fp16 on CUDA), with the version names every event carries.

``InferenceEngine`` (models/serving/inference.py) wraps these with input decoding and crops;
``classroom bench gpu`` times them alone. Needs torch and the network code only, so it loads on
a GPU machine that has nothing else installed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch

from models.networks.checkpoint import check_checkpoint, load_checkpoint
from models.networks.ops import fold_batchnorm
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import create_model

UNTRAINED_SEED = 20240601
DEFAULT_METHOD = "proposed"


def served_dtype(device: torch.device) -> torch.dtype:
    """The precision the model server runs on ``device``: half on CUDA, fp32 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class ServedNetworks:
    pipeline: ClassroomPipeline  # eval, batch norm folded, on ``device`` in ``dtype``
    device: torch.device
    dtype: torch.dtype
    method: str
    fusion_version: str
    recognition_version: str
    trained: bool
    window_frames: int | None  # None: untrained weights (the vocabulary's default applies)


def load_served_networks(
    checkpoint: str | Path | None,
    *,
    device: str = "cpu",
    method: str = DEFAULT_METHOD,
    untrained_config: dict | None = None,
) -> ServedNetworks:
    """The served networks of ``checkpoint``; without one, untrained weights of ``method`` drawn with
    a fixed seed (``untrained_config``: registry overrides such as ``{"crop_size": 64}``)."""
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for but CUDA is not available")
    if checkpoint is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_SEED)
            overrides = {**(untrained_config or {}), "enhancement": "identity"}
            pipeline = cast(ClassroomPipeline, create_model(method, **overrides))
        trained, window_frames = False, None
        fusion_version = recognition_version = f"untrained-{method}"
    else:
        path = Path(checkpoint)
        data = load_checkpoint(path)
        check_checkpoint(data, path)
        pipeline = cast(
            ClassroomPipeline, create_model(data["method"], checkpoint=data, enhancement="identity")
        )
        digest = file_digest(path)
        method = data["method"]
        fusion_version = f"{method}-{pipeline.config['fusion']['name']}@{digest}"
        recognition_version = f"{method}-{pipeline.config['recognition']['name']}@{digest}"
        trained, window_frames = True, int(data["window_frames"])
    dtype = served_dtype(target)
    folded = cast(ClassroomPipeline, fold_batchnorm(pipeline.eval()).to(target, dtype))
    return ServedNetworks(
        pipeline=folded,
        device=target,
        dtype=dtype,
        method=method,
        fusion_version=fusion_version,
        recognition_version=recognition_version,
        trained=trained,
        window_frames=window_frames,
    )
