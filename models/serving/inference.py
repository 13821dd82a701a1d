"""The inference API the model server is built on (binding; docs/models.md, "Inference API").

``InferenceEngine(checkpoint, device=...)`` loads a checkpoint (or builds untrained weights
with a fixed seed, reported as ``trained=False``) and serves the two halves of the model:
- ``fuse(frames)``: DCA-Net + keypoints + node encoding for every seat of every frame set,
  all crops of all frames in ONE batch (what makes batching across classrooms pay);
- ``recognise(keypoints, node_features)``: MST-GCN over windows of B students.
Always ``eval()`` + ``torch.inference_mode()``; the thread count is whatever the caller set
(``torch.set_num_threads``); on CUDA the networks run in half precision.

Frames reach the server already enhanced by the NumPy enhancement service (section 3.2,
with the checkpoint's enhancement.json), so the torch enhancement is not run here.
Bad input raises ``services.common.errors.BadInput`` (or a subclass) naming the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.crops import (
    DEPTH,
    DEPTH_SCALE_MM,
    THERMAL,
    thermal_celsius,
)
from models.data.inputs import FusionInput, model_inputs, validate_fusion_input
from models.networks.occupancy import load_occupancy
from models.networks.ops import sample_points
from models.serving.networks import DEFAULT_METHOD, file_digest, load_served_networks
from services.common import allocator
from services.common.errors import BadInput
from services.common.vocabulary import BEHAVIOURS, KEYPOINT_INDEX, NUM_KEYPOINTS, WINDOW_FRAMES

# where facial temperature is read (the warmest skin: inner eye corners, nose) and body depth
FACE_POINTS = tuple(KEYPOINT_INDEX[k] for k in ("nose", "left_eye", "right_eye"))
TORSO_POINTS = tuple(KEYPOINT_INDEX[k] for k in ("neck", "left_shoulder", "right_shoulder", "chest"))
MAX_CROPS_PER_PASS = 40  # CPU only; CUDA takes every crop in one pass
FACE_PATCH = 5  # crop px square around each face point; its maximum is that point's temperature


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
    ) -> None:
        """``method`` and ``untrained_config`` (registry overrides such as ``{"crop_size": 64}``) apply
        only without a checkpoint; ``tune_allocator`` tunes glibc's allocator (services.common.allocator).
        ``occupancy_checkpoint``: a seat-occupancy model (models/networks/occupancy.py) whose score replaces
        the keypoint network's occupancy head."""
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
            self.occupancy_net = occupancy_net.to(self.device, self.dtype)
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
        self._face = torch.tensor(FACE_POINTS, device=self.device)
        self._torso = torch.tensor(TORSO_POINTS, device=self.device)
        r = (FACE_PATCH - 1) / 2.0
        dy, dx = torch.meshgrid(
            torch.linspace(-r, r, FACE_PATCH), torch.linspace(-r, r, FACE_PATCH), indexing="ij"
        )
        self._patch = torch.stack([dx.flatten(), dy.flatten()], -1).to(self.device, self.dtype)

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
        n, s = crops.shape[0], float(self.info.crop_size)
        with torch.inference_mode():
            x = crops.to(self.device, self.dtype, non_blocking=True)
            stage = self.pipeline.forward_fusion(x, enhance=False)
            kp = stage.keypoints
            face = (kp.xy[:, self._face].unsqueeze(2) + self._patch).flatten(1, 2)
            face_t = sample_points(x[:, THERMAL : THERMAL + 1], face, s).view(n, len(FACE_POINTS), -1)
            facial = thermal_celsius(face_t.amax(dim=-1).float())  # [n, face points]
            torso = (
                sample_points(x[:, DEPTH : DEPTH + 1], kp.xy[:, self._torso], s)[:, 0].float().mean(dim=-1)
            )
            gates = stage.fusion.gates
            occupancy_logits = (
                self.occupancy_net(x) if self.occupancy_net is not None else kp.occupancy_logits
            )
            return (
                kp.xy.float().cpu().numpy(),
                kp.confidence.float().cpu().numpy(),
                torch.sigmoid(occupancy_logits.float()).cpu().numpy(),
                stage.node_features.to(torch.float16).cpu().numpy(),
                facial.cpu().numpy(),
                torso.cpu().numpy(),
                gates.float().cpu().numpy() if gates is not None else None,
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
