"""The one loader API: ``open_dataset`` and the window/sample types every reader returns.

    ds = open_dataset("sim:small")           # virtual: rendered on demand, cached on disk
    ds = open_dataset("/data/room101")        # a folder in the format (simulated or recorded)
    ds.splits                                 # {"train": [student ids], "val": [...], "test": [...]}
    ds.windows("train")                       # [WindowRef]: T frames of one clip on the 8 fps grid
    ds.samples("train")                       # [SampleRef]: (window, student) with the label
    window = ds.load_window(ref)              # raw frames, references, calibration, seat map
    ds.load_annotations(ref)                  # per-frame annotations only (no images)

A sample is one student in one window; the windows of a split and their samples come in
a fixed order, and loading them is deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from services.common.calibration import CameraCalibration
from services.common.campus import Camera
from services.common.frames import CapturedFrameSet
from services.common.vocabulary import NUM_KEYPOINTS
from services.dataset.format import DatasetError, FrameAnnotation


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


DEFAULT_CACHE_ENV = "CLASSROOM_DATASET_CACHE"


def default_cache_dir() -> Path | None:
    """Where virtual data sets cache rendered windows: $CLASSROOM_DATASET_CACHE, or var/cache/datasets.

    Set the variable to "off" (or pass ``cache=False``) to render every time.
    """
    value = os.environ.get(DEFAULT_CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none", "0") else Path(value)
    return Path("var") / "cache" / "datasets"


def open_dataset(spec: str | os.PathLike, *, cache: bool | str | os.PathLike = True) -> Dataset:
    """A folder in the format, or ``sim:<preset>[?seed=N][&conditions=NAME]`` for a virtual
    SmartClass-Sim data set (``conditions``: one scenario for every window, see
    services/dataset/virtual.py ``parse_sim_options``)."""
    text = str(spec)
    if text.startswith("sim:"):
        from services.dataset.virtual import VirtualDataset, parse_sim_options

        preset, seed, conditions = parse_sim_options(text)
        if cache is True:
            cache_dir = default_cache_dir()
        elif cache is False:
            cache_dir = None
        else:
            cache_dir = Path(cache)
        return VirtualDataset(preset, seed=seed, cache_dir=cache_dir, conditions=conditions)
    from services.dataset.reader import FolderDataset

    path = Path(text)
    if not path.exists():
        raise DatasetError(f"{path}: no such data set folder (or use sim:small / sim:paper)")
    return FolderDataset(path)
