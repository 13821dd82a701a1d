"""A tiny procedural data set for smoke-testing training (``classroom train --data toy:N``).

It is NOT SmartClass-Sim and no figure about the paper's methods is measured on it. Each
sample is a stick figure of the 17 vocabulary keypoints drawn into all six crop channels
(dim, noisy colour with a clean reference; relative depth; body and head temperatures),
moving in one of ``num_classes`` class-specific ways (a hand rising, a hand sweeping sideways,
the head going down, a hand moving to the chin) with random tempo, amplitude, body size and
position. Deterministic in (seed, index).
"""

from __future__ import annotations

import cv2
import numpy as np

from models.data.crops import THERMAL_CENTRE_C, THERMAL_SCALE_C
from models.data.windows import WindowSample
from services.common.vocabulary import KEYPOINT_INDEX, NUM_KEYPOINTS, SKELETON_EDGES

# upright seated pose in crop units (x right, y down), image-left is the student's right
_TEMPLATE = {
    "head_top": (0.50, 0.10),
    "nose": (0.50, 0.24),
    "chin": (0.50, 0.30),
    "left_eye": (0.55, 0.20),
    "right_eye": (0.45, 0.20),
    "left_ear": (0.61, 0.22),
    "right_ear": (0.39, 0.22),
    "neck": (0.50, 0.36),
    "left_shoulder": (0.67, 0.42),
    "right_shoulder": (0.33, 0.42),
    "left_elbow": (0.74, 0.62),
    "right_elbow": (0.26, 0.62),
    "left_wrist": (0.62, 0.78),
    "right_wrist": (0.38, 0.78),
    "left_hand": (0.58, 0.84),
    "right_hand": (0.42, 0.84),
    "chest": (0.50, 0.56),
}
TEMPLATE = np.array(
    [_TEMPLATE[name] for name in sorted(_TEMPLATE, key=KEYPOINT_INDEX.__getitem__)], np.float32
)
_HEAD = [
    KEYPOINT_INDEX[k] for k in ("head_top", "nose", "chin", "left_eye", "right_eye", "left_ear", "right_ear")
]
_RIGHT_ARM = [KEYPOINT_INDEX[k] for k in ("right_elbow", "right_wrist", "right_hand")]


def _point(xy: np.ndarray) -> tuple[int, int]:
    """Nearest integer pixel for cv2 drawing."""
    return int(np.rint(xy[0])), int(np.rint(xy[1]))


def _pose(label: int, phase: float, amplitude: float) -> np.ndarray:
    """Keypoints [17, 2] in crop units for class ``label`` at ``phase`` in [0, 1]."""
    p = TEMPLATE.copy()
    if label == 0:  # hand rising above the head
        rise = min(1.0, phase * 1.5) * amplitude
        p[_RIGHT_ARM] += np.array([[0.0, -0.35], [0.05, -0.62], [0.06, -0.70]], np.float32) * rise
    elif label == 1:  # hand sweeping sideways, twice per window
        sweep = np.sin(2 * np.pi * 2 * phase) * 0.18 * amplitude
        p[_RIGHT_ARM[1:]] += np.array([sweep, 0.0], np.float32)
    elif label == 2:  # head going down
        p[_HEAD] += np.array([0.0, 0.14 * amplitude * min(1.0, phase * 2)], np.float32)
    elif label == 3:  # left hand to the chin
        reach = min(1.0, phase * 1.5) * amplitude
        chin = TEMPLATE[KEYPOINT_INDEX["chin"]]
        for name in ("left_wrist", "left_hand"):
            i = KEYPOINT_INDEX[name]
            p[i] += (chin + np.array([0.04, 0.03]) - p[i]) * reach
        p[KEYPOINT_INDEX["left_elbow"]] += np.array([-0.02, -0.08], np.float32) * reach
    return p


class ToyWindowDataset:
    """``n`` windows, balanced over ``num_classes`` labels (a WindowDataset)."""

    def __init__(
        self, n: int, window_frames: int = 8, crop_size: int = 32, seed: int = 0, num_classes: int = 4
    ) -> None:
        if not 1 <= num_classes <= 4:
            raise ValueError("the toy data set draws 1 to 4 classes")
        self.n, self.window_frames, self.crop_size = n, window_frames, crop_size
        self.seed, self.num_classes = seed, num_classes
        self.dataset_id = f"toy-v1:n={n}:T={window_frames}:S={crop_size}:seed={seed}"

    def __len__(self) -> int:
        return self.n

    def labels(self) -> np.ndarray:
        return np.arange(self.n) % self.num_classes

    def __getitem__(self, index: int) -> WindowSample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        label = int(index % self.num_classes)
        s, t = self.crop_size, self.window_frames
        scale = rng.uniform(0.8, 1.0)
        shift = rng.uniform(-0.06, 0.06, size=2)
        amplitude = rng.uniform(0.7, 1.0)
        tempo = rng.uniform(0.8, 1.2)
        onset = rng.uniform(0.0, 0.2)
        shirt = rng.uniform(0.3, 0.9, size=3)
        skin = rng.uniform(0.5, 0.9, size=3)
        gain = rng.uniform(0.25, 0.5)
        crops = np.empty((t, 6, s, s), np.float32)
        reference = np.empty((t, 3, s, s), np.float32)
        keypoints = np.empty((t, NUM_KEYPOINTS, 3), np.float32)
        width = max(1, s // 12)
        for f in range(t):
            phase = float(np.clip((f / max(t - 1, 1) - onset) * tempo, 0.0, 1.0))
            unit = (_pose(label, phase, amplitude) - 0.5) * scale + 0.5 + shift
            unit += rng.normal(0.0, 0.004, size=unit.shape)
            px = unit * s
            keypoints[f, :, :2] = px
            keypoints[f, :, 2] = 1.0
            colour = np.full((s, s, 3), 0.15, np.float32)
            depth = np.full((s, s), 1.0, np.float32)
            thermal = np.full((s, s), 22.0, np.float32)
            for i, j in SKELETON_EDGES:
                a = _point(px[i])
                b = _point(px[j])
                cv2.line(colour, a, b, shirt.tolist(), width)
                cv2.line(depth, a, b, 0.0, width)
                cv2.line(thermal, a, b, 31.0, width)
            for hand in ("left_hand", "right_hand"):
                c = _point(px[KEYPOINT_INDEX[hand]])
                near = -0.3 if px[KEYPOINT_INDEX[hand], 1] < px[KEYPOINT_INDEX["neck"], 1] else -0.1
                cv2.circle(colour, c, width + 1, skin.tolist(), -1)
                cv2.circle(depth, c, width + 1, near, -1)
                cv2.circle(thermal, c, width + 1, 33.0, -1)
            head = _point(px[KEYPOINT_INDEX["nose"]])
            radius = max(2, int(0.1 * s * scale))
            cv2.circle(colour, head, radius, skin.tolist(), -1)
            cv2.circle(depth, head, radius, -0.05, -1)
            cv2.circle(thermal, head, radius, 34.5, -1)
            for eye in ("left_eye", "right_eye"):
                c = _point(px[KEYPOINT_INDEX[eye]])
                cv2.circle(colour, c, max(1, width // 2), (0.1, 0.1, 0.1), -1)
                cv2.circle(thermal, c, max(1, width // 2), 35.5, -1)
            clean = np.clip(colour, 0.0, 1.0).transpose(2, 0, 1)
            reference[f] = clean
            crops[f, :3] = np.clip(clean * gain + rng.normal(0.0, 0.03, size=clean.shape), 0.0, 1.0)
            crops[f, 3] = depth + rng.normal(0.0, 0.02, size=depth.shape)
            crops[f, 4] = (thermal - THERMAL_CENTRE_C) / THERMAL_SCALE_C
            crops[f, 5] = np.clip((thermal - 20.0) / 17.0, 0.0, 1.0)
        return WindowSample(crops=crops, keypoints=keypoints, label=label, reference=reference)
