"""The networks the model server runs, built from a checkpoint as it builds them: the method's
pipeline with the torch enhancement left out (frames arrive enhanced), batch norm folded, on the
device in the served precision (fp16 on CUDA), with the version names every event carries; the
per-crop stage as one module (``CropStage``) and, on the CPU, that stage as a frozen TorchScript
trace (``optimise_crop_stage``).

``InferenceEngine`` (models/serving/inference.py) wraps these with input decoding and crops;
``classroom bench gpu`` times them alone. Needs torch and the network code only, so it loads on
a GPU machine that has nothing else installed."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn

from models.data.channels import DEPTH, THERMAL, thermal_celsius
from models.networks.checkpoint import check_checkpoint, load_checkpoint
from models.networks.ops import fold_batchnorm, sample_points
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import create_model
from services.common.vocabulary import KEYPOINT_INDEX

UNTRAINED_SEED = 20240601
DEFAULT_METHOD = "proposed"
# where facial temperature is read (the warmest skin: inner eye corners, nose) and body depth
FACE_POINTS = tuple(KEYPOINT_INDEX[k] for k in ("nose", "left_eye", "right_eye"))
TORSO_POINTS = tuple(KEYPOINT_INDEX[k] for k in ("neck", "left_shoulder", "right_shoulder", "chest"))
FACE_PATCH = 5  # crop px square around each face point; its maximum is that point's temperature


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


class CropStage(nn.Module):
    """The model server's per-crop work as one module with tensors in and out, what a tracer or
    compiler takes: crops [N, 6, S, S] ->
    - keypoints [N, 17, 2] in crop px and their confidence [N, 17];
    - occupancy [N], 0..1: the seat-occupancy model's score where one is given, else the
      keypoint network's head;
    - node features [N, 17, C] (eq. 6);
    - facial temperature [N, 3] in °C of each FACE_POINTS point: the warmest reading in a
      FACE_PATCH square around it;
    - relative torso depth [N] (crop units: the mean at TORSO_POINTS);
    - gates [N, 3] (alpha, beta, gamma of eq. 5), [N, 0] for a fusion without gates.
    """

    face_points: torch.Tensor
    torso_points: torch.Tensor
    face_patch: torch.Tensor

    def __init__(self, pipeline: ClassroomPipeline, occupancy: nn.Module | None = None) -> None:
        super().__init__()
        self.pipeline, self.occupancy = pipeline, occupancy
        self.register_buffer("face_points", torch.tensor(FACE_POINTS), persistent=False)
        self.register_buffer("torso_points", torch.tensor(TORSO_POINTS), persistent=False)
        r = (FACE_PATCH - 1) / 2.0
        dy, dx = torch.meshgrid(
            torch.linspace(-r, r, FACE_PATCH), torch.linspace(-r, r, FACE_PATCH), indexing="ij"
        )
        self.register_buffer("face_patch", torch.stack([dx.flatten(), dy.flatten()], -1), persistent=False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n, s = crops.shape[0], float(crops.shape[-1])
        stage = self.pipeline.forward_fusion(crops, enhance=False)
        kp = stage.keypoints
        face = (kp.xy[:, self.face_points].unsqueeze(2) + self.face_patch).flatten(1, 2)
        face_t = sample_points(crops[:, THERMAL : THERMAL + 1], face, s).view(n, len(FACE_POINTS), -1)
        facial = thermal_celsius(face_t.amax(dim=-1).float())
        torso = sample_points(crops[:, DEPTH : DEPTH + 1], kp.xy[:, self.torso_points], s)[:, 0]
        occupancy_logits = self.occupancy(crops) if self.occupancy is not None else kp.occupancy_logits
        gates = stage.fusion.gates
        return (
            kp.xy,
            kp.confidence,
            torch.sigmoid(occupancy_logits.float()),
            stage.node_features,
            facial,
            torso.float().mean(dim=-1),
            gates if gates is not None else crops.new_zeros(n, 0),
        )


def optimise_crop_stage(stage: CropStage, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``stage`` (eval mode, on the CPU) as the model server runs it on the CPU: traced on
    ``example`` crops [N, 6, S, S], frozen (weights become constants) and optimised for inference
    (oneDNN convolutions with their weights laid out once). Any N runs afterwards; S is fixed.
    The eager ``stage`` is left as it was. Raises whatever tracing raises on a network it cannot
    take; ``stage_mismatch`` checks what it computes.

    torch.compile would be the successor (TorchScript is deprecated from torch 2.13), but it took
    131 s to compile this stage on the 2-vCPU guest (docs/benchmarks.md); where a torch without
    TorchScript fails here, the engine serves the eager stage."""
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on Python numbers taken from shapes (the crop size is fixed; the batch
        # dimension stays free, which the engine checks) and TorchScript's deprecation
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        traced = torch.jit.trace(stage, (example,), check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


# how far the optimised stage may be from the eager one (CropStage's outputs, in their units):
# (absolute, relative); keypoints in crop px, temperatures in °C, the rest in network units
STAGE_TOLERANCE: tuple[tuple[str, float, float], ...] = (
    ("keypoints", 1e-3, 1e-3),
    ("confidence", 1e-4, 1e-3),
    ("occupancy", 1e-4, 1e-3),
    ("node_features", 1e-3, 1e-3),
    ("facial_temperature_c", 1e-3, 1e-4),
    ("torso_depth", 1e-4, 1e-3),
    ("gates", 1e-5, 1e-4),
)


def stage_mismatch(eager: tuple[torch.Tensor, ...], optimised: tuple[torch.Tensor, ...]) -> str | None:
    """None where every output of ``optimised`` is within STAGE_TOLERANCE of ``eager``; else which
    output differs and by how much."""
    for (name, atol, rtol), a, b in zip(STAGE_TOLERANCE, eager, optimised, strict=True):
        if a.shape != b.shape:
            return f"{name}: shape {list(b.shape)}, eager {list(a.shape)}"
        if not torch.equal(a.isnan(), b.isnan()):
            return f"{name}: NaN where eager has none, or the other way round"
        excess = (b.float() - a.float()).abs() - (atol + rtol * a.float().abs())
        if excess.numel() and bool((excess > 0).any()):
            worst = float((b.float() - a.float()).abs().max())
            return f"{name}: differs by up to {worst:.3g} (tolerance {atol:g} + {rtol:g} x |eager|)"
    return None
