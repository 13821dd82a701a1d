"""The window and sample types every data-set reader returns, and the ``Dataset`` protocol they
meet: what ``open_dataset`` (services/dataset/api.py) hands out, for folders
(services/dataset/reader.py) and SmartClass-Sim (services/dataset/virtual.py) alike.

A sample is one student in one window; the windows of a split and their samples come in
a fixed order, and loading them is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from services.common.calibration import CameraCalibration
from services.common.campus import Camera
from services.common.frames import CapturedFrameSet
from services.common.vocabulary import NUM_KEYPOINTS
from services.dataset.format import FrameAnnotation


@dataclass(frozen=True, order=True)
class WindowRef:
    """T frames of one clip, resampled onto the recognition grid (8 fps by default)."""

    split: str
    clip_id: str
    start: int  # index of the window within its clip
    frame_indices: tuple[int, ...] = field(compare=False)


@dataclass(frozen=True)
class SampleRef:
    """One student over one window, with the behaviour they hold throughout it."""

    window: WindowRef
    student_id: str
    seat_id: str | None
    label: str
    label_index: int


@dataclass(frozen=True)
class ReferenceFrame:
    """Clean references in the colour camera's view at the analysis resolution."""

    rgb: np.ndarray  # HxWx3 uint8 BGR, well lit, noise-free
    depth_mm: np.ndarray  # HxW uint16, complete
    thermal_c: np.ndarray  # HxW float32, no noise or drift


@dataclass
class Window:
    ref: WindowRef
    frames: list[CapturedFrameSet]  # sensor-native; ``annotations`` is the frame's annotation dict
    references: list[ReferenceFrame] | None
    calibration: CameraCalibration
    camera: Camera  # analysis size, calibration and seat map of the clip's camera
    classroom_id: str
    conditions: list[str]
    fps: float

    @property
    def annotations(self) -> list[dict]:
        return [f.annotations or {} for f in self.frames]

    def student_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for ann in self.annotations:
            for st in ann.get("students", []):
                ids.setdefault(st["student_id"], None)
        return list(ids)

    def keypoints(self, student_id: str) -> np.ndarray:
        """[T, 17, 3] (x, y, visibility) in analysis pixels; visibility 0 where unannotated."""
        return window_keypoints(self.annotations, student_id)


def window_keypoints(annotations: Sequence[dict], student_id: str) -> np.ndarray:
    out = np.zeros((len(annotations), NUM_KEYPOINTS, 3), np.float32)
    for t, ann in enumerate(annotations):
        for st in ann.get("students", []):
            if st["student_id"] == student_id and st.get("keypoints") is not None:
                out[t] = np.asarray(st["keypoints"], np.float32)
    return out


class Dataset(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def splits(self) -> dict[str, list[str]]: ...

    def windows(self, split: str) -> Sequence[WindowRef]: ...

    def samples(self, split: str) -> Sequence[SampleRef]: ...

    def load_window(self, ref: WindowRef, *, references: bool = True) -> Window: ...

    def load_annotations(self, ref: WindowRef) -> list[FrameAnnotation]: ...
