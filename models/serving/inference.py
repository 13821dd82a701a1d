"""The inference API the model server is built on (binding; docs/models.md, "Inference API").

``InferenceEngine(checkpoint, device=...)`` loads a checkpoint (or builds untrained weights
with a fixed seed, reported as ``trained=False``) and serves the two halves of the model:
- ``fuse(frames)``: DCA-Net + keypoints + node encoding for every seat of every frame set,
  all crops of all frames in ONE batch (what makes batching across classrooms pay);
- ``recognise(keypoints, node_features)``: MST-GCN over windows of B students.
Always ``eval()`` + ``torch.inference_mode()``; the thread count is whatever the caller set
(``torch.set_num_threads``); on CUDA the networks run in half precision. With
``optimise=True`` (the model server's default, ``MODELSERVER_OPTIMISE``) the per-crop stage runs
on the CPU as a frozen TorchScript trace built and checked against the eager networks at start
(models/serving/networks.py); where that fails it runs eager and says why (``crop_stage_form``).

Frames reach the server already enhanced by the NumPy enhancement service (section 3.2,
with the checkpoint's enhancement.json), so the torch enhancement is not run here.
Bad input raises ``services.common.errors.BadInput`` (or a subclass) naming the item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.channels import DEPTH_SCALE_MM, NUM_CHANNELS
from models.data.inputs import FusionInput, model_inputs, validate_fusion_input
from models.networks.occupancy import load_occupancy
from models.networks.ops import fold_batchnorm
from models.serving.networks import (
    DEFAULT_METHOD,
    FACE_POINTS,
    CropStage,
    file_digest,
    load_served_networks,
    optimise_crop_stage,
    stage_mismatch,
)
from services.common import allocator
from services.common.errors import BadInput
from services.common.vocabulary import BEHAVIOURS, NUM_KEYPOINTS, WINDOW_FRAMES

log = logging.getLogger(__name__)

MAX_CROPS_PER_PASS = 40  # CPU only; CUDA takes every crop in one pass


@dataclass(frozen=True)
class ModelInfo:
    fusion_version: str
    recognition_version: str
    trained: bool
    device: str
    window_frames: int
    feature_dim: int
    labels: tuple[str, ...]
    crop_size: int
    method: str


@dataclass(frozen=True)
class FusionOutput:
    keypoints: np.ndarray  # float32 [S, 17, 3]: x, y in analysis px, confidence
    node_features: np.ndarray  # float16 [S, 17, C]
    occupancy: np.ndarray  # float32 [S] 0..1
    facial_temperature_c: np.ndarray  # float32 [S], NaN where no face point is inside thermal coverage
    mean_depth_mm: np.ndarray  # float32 [S], 0 where the seat had no valid depth
    gates: (
        tuple[float, float, float] | None
    )  # mean (alpha, beta, gamma) over the seats; None: no gated fusion


def facial_temperature(point_c: np.ndarray, point_xy: np.ndarray, covered: np.ndarray | None) -> np.ndarray:
    """Per seat the mean over its face points the thermal camera sees of their temperatures.

    point_c [S, P] °C, point_xy [S, P, 2] analysis px, covered HxW bool (None: everywhere)
    -> float32 [S], NaN for a seat none of whose face points has a reading: the fill the
    networks read there is the room's ambient, not the student's face."""
    if covered is None:
        return point_c.mean(axis=-1).astype(np.float32)
    h, w = covered.shape
    col = np.rint(point_xy[..., 0]).astype(np.int64)
    row = np.rint(point_xy[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    seen = np.zeros(inside.shape, bool)
    seen[inside] = covered[row[inside], col[inside]]
    total = np.where(seen, point_c, 0.0).sum(axis=-1)
    count = seen.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


@dataclass(frozen=True)
class RecognitionOutput:
    probabilities: np.ndarray  # float32 [B, 10] in vocabulary.BEHAVIOURS order
    keypoint_attention: np.ndarray  # float32 [B, 17], sums to 1
    frame_attention: np.ndarray  # float32 [B, T], sums to 1


class InferenceEngine:
    def __init__(
        self,
        checkpoint: str | Path | None,
        *,
        device: str = "cpu",
        method: str = DEFAULT_METHOD,
        tune_allocator: bool = False,
        untrained_config: dict | None = None,
        occupancy_checkpoint: str | Path | None = None,
        optimise: bool = False,
    ) -> None:
        """``method`` and ``untrained_config`` (registry overrides such as ``{"crop_size": 64}``) apply
        only without a checkpoint; ``tune_allocator`` tunes glibc's allocator (services.common.allocator).
        ``occupancy_checkpoint``: a seat-occupancy model (models/networks/occupancy.py) whose score replaces
        the keypoint network's occupancy head. ``optimise``: on the CPU, trace the per-crop stage now
        (about a second for the served checkpoint) and serve the trace (``optimise_crop_stage``)."""
        if tune_allocator and device == "cpu":
            allocator.tune_allocator()
        networks = load_served_networks(
            checkpoint, device=device, method=method, untrained_config=untrained_config
        )
        self.device, self.dtype, self.pipeline = networks.device, networks.dtype, networks.pipeline
        pipeline = networks.pipeline
        fusion_version, recognition_version = networks.fusion_version, networks.recognition_version
        trained, window_frames, method = networks.trained, networks.window_frames, networks.method
        self.occupancy_net = None
        if occupancy_checkpoint is not None:
            occupancy_net = load_occupancy(occupancy_checkpoint)
            if occupancy_net.crop_size != int(pipeline.crop_size):
                raise ValueError(
                    f"occupancy model {occupancy_checkpoint} reads {occupancy_net.crop_size} px crops, "
                    f"the recognition checkpoint {pipeline.crop_size} px"
                )
            self.occupancy_net = fold_batchnorm(occupancy_net).to(self.device, self.dtype)
            fusion_version += f"+occupancy@{file_digest(Path(occupancy_checkpoint))}"
        self.info = ModelInfo(
            fusion_version=fusion_version,
            recognition_version=recognition_version,
            trained=trained,
            device=str(self.device),
            window_frames=window_frames or WINDOW_FRAMES,
            feature_dim=int(pipeline.feature_dim),
            labels=tuple(BEHAVIOURS),
            crop_size=int(pipeline.crop_size),
            method=method,
        )
        self.max_crops_per_pass = MAX_CROPS_PER_PASS
        self.crop_stage = CropStage(pipeline, self.occupancy_net).to(self.device, self.dtype).eval()
        # what fuse() runs: the eager stage, or its TorchScript trace (``optimise``, the CPU only)
        self._run_crop_stage: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] = self.crop_stage
        self.crop_stage_form = "eager"
        self.warmup_s = 0.0
        if optimise:
            self._optimise()

    def _optimise(self) -> None:
        """Trace, freeze and optimise the per-crop stage and check it against the eager one on
        random crops at two batch sizes (the trace's and another: the batch dimension must stay
        free). Anything that fails leaves the eager stage in place, with the reason in
        ``crop_stage_form``."""
        if self.device.type != "cpu":
            self.crop_stage_form = f"eager ({self.device.type}: the trace is for the CPU)"
            return
        start = time.perf_counter()
        s = self.info.crop_size
        generator = torch.Generator().manual_seed(0)
        example = torch.rand(self.max_crops_per_pass, NUM_CHANNELS, s, s, generator=generator)
        other = torch.rand(3, NUM_CHANNELS, s, s, generator=generator)
        try:
            optimised = optimise_crop_stage(self.crop_stage, example)
            with torch.inference_mode():
                for crops in (example, other, example):  # the last call: warm at the usual size
                    mismatch = stage_mismatch(self.crop_stage(crops), optimised(crops))
                    if mismatch:
                        raise ValueError(f"the trace differs from the eager networks: {mismatch}")
        except Exception as exc:  # any failure to trace is served eager, never a failed start
            text = str(exc).strip()
            reason = f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
            self.crop_stage_form = f"eager (trace not served: {reason})"
            log.warning("per-crop stage served eager", extra={"reason": reason})
        else:
            self._run_crop_stage = optimised
            self.crop_stage_form = "TorchScript (traced, frozen, optimised for inference)"
        self.warmup_s = time.perf_counter() - start

    def fuse(self, frames: Sequence[FusionInput]) -> list[FusionOutput]:
        for i, item in enumerate(frames):
            try:
                validate_fusion_input(item)
            except BadInput as exc:
                raise type(exc)(f"frame set {i}: {exc.detail}") from exc
        if not frames:
            return []
        crops = model_inputs(frames, self.info.crop_size)
        n = crops.tensor.shape[0]
        c = self.info.feature_dim
        if n == 0:
            return [self._empty_output() for _ in frames]
        # on the CPU, chunks of at most max_crops_per_pass keep the intermediates cache- and
        # allocator-friendly (a 160-crop pass was 1.5x slower per crop than 40-crop passes)
        step = n if self.device.type == "cuda" else self.max_crops_per_pass
        parts = [self._fuse_crops(crops.tensor[i : i + step]) for i in range(0, n, step)]
        xy, confidence, occupancy, features, facial, torso = (
            np.concatenate([p[k] for p in parts]) for k in range(6)
        )
        gates = np.concatenate([p[6] for p in parts]) if parts[0][6] is not None else None
        image_xy = crops.geometry.crop_to_image(xy).astype(np.float32)
        keypoints = np.concatenate([image_xy, confidence[..., None]], axis=-1).astype(np.float32)
        ref = crops.depth_reference_mm
        mean_depth = np.where(ref > 0, ref + torso * DEPTH_SCALE_MM, 0.0).astype(np.float32)
        outputs = []
        for f in range(len(frames)):
            rows = np.flatnonzero(crops.frame_index == f)
            if len(rows) == 0:
                outputs.append(self._empty_output())
                continue
            frame_gates = None
            if gates is not None:
                g = gates[rows].mean(axis=0)
                frame_gates = (float(g[0]), float(g[1]), float(g[2]))
            outputs.append(
                FusionOutput(
                    keypoints=keypoints[rows],
                    node_features=features[rows].reshape(len(rows), NUM_KEYPOINTS, c),
                    occupancy=occupancy[rows].astype(np.float32),
                    facial_temperature_c=facial_temperature(
                        facial[rows], image_xy[rows][:, FACE_POINTS], frames[f].thermal_covered
                    ),
                    mean_depth_mm=mean_depth[rows],
                    gates=frame_gates,
                )
            )
        return outputs

    def _fuse_crops(self, crops: torch.Tensor) -> tuple[Any, ...]:
        """One network pass over [N, 6, S, S] crops -> per-crop arrays (crop-pixel keypoints)."""
        with torch.inference_mode():
            x = crops.to(self.device, self.dtype, non_blocking=True)
            xy, confidence, occupancy, features, facial, torso, gates = self._run_crop_stage(x)
            return (
                xy.float().cpu().numpy(),
                confidence.float().cpu().numpy(),
                occupancy.cpu().numpy(),
                features.to(torch.float16).cpu().numpy(),
                facial.cpu().numpy(),
                torso.cpu().numpy(),
                gates.float().cpu().numpy() if gates.shape[1] else None,
            )

    def _empty_output(self) -> FusionOutput:
        c = self.info.feature_dim
        return FusionOutput(
            keypoints=np.zeros((0, NUM_KEYPOINTS, 3), np.float32),
            node_features=np.zeros((0, NUM_KEYPOINTS, c), np.float16),
            occupancy=np.zeros(0, np.float32),
            facial_temperature_c=np.zeros(0, np.float32),
            mean_depth_mm=np.zeros(0, np.float32),
            gates=None,
        )

    def recognise(self, keypoints: np.ndarray, node_features: np.ndarray) -> RecognitionOutput:
        kp = np.asarray(keypoints)
        nf = np.asarray(node_features)
        t, c = self.info.window_frames, self.info.feature_dim
        if kp.ndim != 4 or kp.shape[1:] != (t, NUM_KEYPOINTS, 3):
            raise BadInput(f"keypoints must be [B, {t}, {NUM_KEYPOINTS}, 3], got {list(kp.shape)}")
        if nf.ndim != 4 or nf.shape != (kp.shape[0], t, NUM_KEYPOINTS, c):
            raise BadInput(
                f"node_features must be [{kp.shape[0]}, {t}, {NUM_KEYPOINTS}, {c}], got {list(nf.shape)}"
            )
        if not (np.issubdtype(kp.dtype, np.floating) and np.issubdtype(nf.dtype, np.floating)):
            raise BadInput("keypoints and node_features must be floating point")
        if not (np.isfinite(kp).all() and np.isfinite(nf).all()):
            raise BadInput("keypoints or node_features contain NaN or infinity")
        if kp.shape[0] == 0:
            return RecognitionOutput(
                np.zeros((0, len(BEHAVIOURS)), np.float32),
                np.zeros((0, NUM_KEYPOINTS), np.float32),
                np.zeros((0, t), np.float32),
            )
        with torch.inference_mode():
            k = torch.from_numpy(np.ascontiguousarray(kp, dtype=np.float32)).to(self.device, self.dtype)
            f = torch.from_numpy(np.ascontiguousarray(nf)).to(self.device, self.dtype)
            logits, keypoint_attention, frame_attention = self.pipeline.forward_recognition(k, f)
            probabilities = torch.softmax(logits.float(), dim=-1)
            return RecognitionOutput(
                probabilities=probabilities.cpu().numpy(),
                keypoint_attention=keypoint_attention.float().cpu().numpy(),
                frame_attention=frame_attention.float().cpu().numpy(),
            )
