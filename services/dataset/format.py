"""The SmartClass data-set format on disk (docs/dataset-format.md is the prose version).

    <root>/manifest.json                      format, version, vocabulary, splits by student, clips
    <root>/clips/<clip_id>/clip.json          calibration, seat map, sensors, students, label segments
    <root>/clips/<clip_id>/annotations.jsonl  one JSON object per frame
    <root>/clips/<clip_id>/rgb/000000.jpg     colour, sensor-native, 8-bit BGR (JPEG or PNG)
    <root>/clips/<clip_id>/depth/000000.png   depth, sensor-native, uint16 millimetres, 0 = invalid
    <root>/clips/<clip_id>/thermal/000000.png thermal, sensor-native, uint16 centi-kelvin
    <root>/clips/<clip_id>/reference/{rgb,depth,thermal}/000000.png
                                              clean references in the colour view, analysis size

This module holds the schema (pydantic models), the paths and the errors the loader raises.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.calibration import CameraCalibration
from services.common.vocabulary import BEHAVIOUR_INDEX, BEHAVIOURS, KEYPOINTS, NUM_KEYPOINTS

FORMAT_NAME = "smartclass-dataset"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.json"
CLIP_FILE = "clip.json"
ANNOTATIONS_FILE = "annotations.jsonl"
CLIPS_DIR = "clips"
MODALITIES: tuple[str, ...] = ("rgb", "depth", "thermal")


class DatasetError(Exception):
    """A data set that cannot be read as it is; the message names the file and the problem."""


class MissingFileError(DatasetError):
    """A file the format requires is not there."""


class CorruptFileError(DatasetError):
    """A file is truncated, does not decode, or has the wrong size or type."""


class AnnotationError(DatasetError):
    """Annotations that contradict the format or each other (unknown or mislabelled behaviour, ...)."""


class FormatError(DatasetError):
    """manifest.json or clip.json is not valid for this format version."""


# --- per-frame annotations ------------------------------------------------------------------------


class StudentAnnotation(BaseModel):
    """One person in one frame (Table 2: keypoints, box, label, id and seat, facial temperature)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    student_id: str = Field(min_length=1)
    seat_id: str | None = None
    label: str | None = None  # None: not labelled in this frame
    label_index: int | None = None
    extra: bool = False  # a background person, never a sample
    keypoints: list[tuple[float, float, int]] | None = None  # 17 x (x, y, visibility) in analysis pixels
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in analysis pixels
    facial_temperature_c: float | None = None
    conditions: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> StudentAnnotation:
        if self.label is not None:
            if self.label not in BEHAVIOUR_INDEX:
                raise ValueError(f"unknown behaviour {self.label!r}")
            if self.label_index is not None and self.label_index != BEHAVIOUR_INDEX[self.label]:
                raise ValueError(
                    f"label {self.label!r} has index {BEHAVIOUR_INDEX[self.label]}, "
                    f"annotation says {self.label_index}"
                )
        elif self.label_index is not None:
            raise ValueError("label_index without a label")
        if self.keypoints is not None:
            if len(self.keypoints) != NUM_KEYPOINTS:
                raise ValueError(f"{len(self.keypoints)} keypoints, expected {NUM_KEYPOINTS}")
            for _x, _y, v in self.keypoints:
                if v not in (0, 1, 2):
                    raise ValueError(f"keypoint visibility {v} is not 0, 1 or 2")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"box {self.box} needs x1 > x0 and y1 > y0")
        if self.facial_temperature_c is not None and not 25.0 <= self.facial_temperature_c <= 42.0:
            raise ValueError(f"facial temperature {self.facial_temperature_c} °C is not physiological")
        return self


class FrameAnnotation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    frame: int = Field(ge=0)
    sequence: int = Field(ge=0)
    rgb_ts_us: int
    depth_ts_us: int
    thermal_ts_us: int
    conditions: list[str] = Field(default_factory=list)
    image_quality: dict = Field(default_factory=dict)
    students: list[StudentAnnotation] = Field(default_factory=list)


# --- clip.json --------------------------------------------------------------------------------------


class SensorFiles(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    extension: str  # "jpg", "png"
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class SeatBox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    box: tuple[float, float, float, float]


class ClipStudent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    seat: str | None = None
    extra: bool = False


class LabelSegment(BaseModel):
    """A student holding one label over frames [start_frame, end_frame] (inclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    student_id: str
    label: str
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)

    @field_validator("label")
    @classmethod
    def _known(cls, label: str) -> str:
        if label not in BEHAVIOUR_INDEX:
            raise ValueError(f"unknown behaviour {label!r}")
        return label


class ClipInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    split: str
    frames: int = Field(gt=0)
    fps: float = Field(gt=0)
    start_ts_us: int
    classroom_id: str
    camera_id: str
    analysis_size: tuple[int, int]
    calibration: CameraCalibration
    seats: list[SeatBox]
    sensors: dict[str, SensorFiles]
    references: bool = False
    conditions: list[str] = Field(default_factory=list)
    students: list[ClipStudent]
    labels: list[LabelSegment] = Field(default_factory=list)
    source: dict = Field(default_factory=dict)

    @field_validator("split")
    @classmethod
    def _split(cls, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        return split

    @model_validator(mode="after")
    def _sensors(self) -> ClipInfo:
        missing = [m for m in MODALITIES if m not in self.sensors]
        if missing:
            raise ValueError(f"sensors lacks {', '.join(missing)}")
        return self


# --- manifest.json ----------------------------------------------------------------------------------


class ClipEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    split: str
    frames: int = Field(gt=0)


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    version: int
    name: str
    source: dict = Field(default_factory=dict)
    behaviours: list[str]
    keypoints: list[str]
    window: dict = Field(default_factory=lambda: {"frames": 16, "fps": 8.0, "hop": 8})
    splits: dict[str, list[str]]
    clips: list[ClipEntry]

    @model_validator(mode="after")
    def _valid(self) -> Manifest:
        if self.format != FORMAT_NAME:
            raise ValueError(f"format is {self.format!r}, expected {FORMAT_NAME!r}")
        if self.version != FORMAT_VERSION:
            raise ValueError(
                f"format version {self.version} is not supported (this reader reads {FORMAT_VERSION})"
            )
        if list(self.behaviours) != list(BEHAVIOURS):
            raise ValueError(
                "behaviours differ from services/common/vocabulary.py (label indices would be wrong)"
            )
        if list(self.keypoints) != list(KEYPOINTS):
            raise ValueError("keypoints differ from services/common/vocabulary.py")
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}")
        seen: dict[str, str] = {}
        for split, students in self.splits.items():
            for s in students:
                if s in seen:
                    raise ValueError(
                        f"student {s} is in both {seen[s]} and {split}: splits must be disjoint by student"
                    )
                seen[s] = split
        ids = [c.id for c in self.clips]
        if len(ids) != len(set(ids)):
            raise ValueError("clip ids repeat")
        for c in self.clips:
            if c.split not in SPLITS:
                raise ValueError(f"clip {c.id}: unknown split {c.split!r}")
        return self


def clip_dir(root: Path, clip_id: str) -> Path:
    return root / CLIPS_DIR / clip_id


def frame_path(
    root: Path, clip_id: str, modality: str, frame: int, extension: str, reference: bool = False
) -> Path:
    base = clip_dir(root, clip_id) / ("reference" if reference else "")
    return base / modality / f"{frame:06d}.{extension}"


def student_split(manifest: Manifest) -> dict[str, str]:
    return {s: split for split, students in manifest.splits.items() for s in students}
