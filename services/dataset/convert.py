"""Convert a real recording (Azure Kinect MKV + thermal video + annotation file) into the format.

- Colour and depth come from the MKV through pyk4a's playback API (``PyK4APlayback``:
  ``open()``, ``configuration``, ``calibration``, ``get_next_capture()`` raising EOFError at
  the end). pyk4a is an optional extra of the capture agent (it needs numpy < 2) and is
  imported only here, only when no playback factory is passed in.
- Calibration: colour and depth intrinsics from the Kinect's factory calibration (its
  8-coefficient rational lens model refitted to OpenCV's 5 coefficients), depth-to-colour
  extrinsics from ``depth_to_color_3d``; thermal intrinsics, extrinsics and clock offset
  from the annotation file (a heated-checkerboard calibration).
- Thermal frames are read with ``cv2.VideoCapture`` and paired with each colour frame by
  time (nearest frame on the colour clock); grey levels map to °C as the file says.
- Labels are time segments per student; keypoints are optional, per frame.

The annotation file format is documented in docs/dataset-format.md ("Recordings").
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.calibration import CameraCalibration, Extrinsics, Intrinsics, SensorCalibration
from services.common.vocabulary import BEHAVIOUR_INDEX, NUM_KEYPOINTS
from services.dataset.format import (
    MANIFEST,
    AnnotationError,
    ClipEntry,
    ClipInfo,
    ClipStudent,
    DatasetError,
    FormatError,
    FrameAnnotation,
    SeatBox,
    SensorFiles,
    StudentAnnotation,
    student_split,
)
from services.dataset.reader import load_manifest
from services.dataset.writer import ClipWriter, FrameData, encode_frame, label_segments, merge_manifest

# pyk4a enumerations, as plain ints (pyk4a's IntEnums compare equal to them).
CALIBRATION_DEPTH = 0
CALIBRATION_COLOR = 1
COLOR_MJPG, COLOR_NV12, COLOR_YUY2, COLOR_BGRA32 = 0, 1, 2, 3


class ThermalSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    intrinsics: Intrinsics
    to_rgb: Extrinsics = Extrinsics()
    time_offset_us: int = 0  # thermal clock - colour clock, written to the calibration
    start_us: int = 0  # first thermal frame, on the colour clock, relative to the first colour frame
    fps: float | None = Field(default=None, gt=0)  # default: the video's own frame rate
    encoding: Literal["linear8", "centikelvin16"] = "linear8"
    scale_c: float = 0.1  # linear8: degrees per grey level
    offset_c: float = 10.0  # linear8: degrees at grey level 0


class LabelSpan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    student: str
    behaviour: str
    start_s: float = Field(ge=0)
    end_s: float

    @field_validator("behaviour")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BEHAVIOUR_INDEX:
            raise ValueError(f"unknown behaviour {value!r}; known: {', '.join(BEHAVIOUR_INDEX)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> LabelSpan:
        if self.end_s <= self.start_s:
            raise ValueError(f"{self.student}: end_s {self.end_s} must be after start_s {self.start_s}")
        return self


class KeypointEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    frame: int = Field(ge=0)
    student: str
    points: list[tuple[float, float, int]]  # x, y in analysis pixels; visibility 0, 1 or 2

    @field_validator("points")
    @classmethod
    def _seventeen(cls, value: list) -> list:
        if len(value) != NUM_KEYPOINTS:
            raise ValueError(f"{len(value)} keypoints, expected {NUM_KEYPOINTS}")
        return value


def check_keypoint_values(path: Path, spec: RecordingAnnotations) -> None:
    """Raise AnnotationError for a keypoint the data-set format cannot hold (names file and entry)."""
    for i, entry in enumerate(spec.keypoints):
        for k, (x, y, v) in enumerate(entry.points):
            where = f"{path}: keypoints.{i}.points.{k} (frame {entry.frame}, student {entry.student})"
            if v not in (0, 1, 2):
                raise AnnotationError(f"{where}: visibility {v} is not 0, 1 or 2")
            if not (math.isfinite(x) and math.isfinite(y)):
                raise AnnotationError(f"{where}: position ({x}, {y}) is not a finite number")


class RecordingAnnotations(BaseModel):
    """The annotation file that comes with one recording (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["smartclass-recording"]
    version: Literal[1]
    clip_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    split: Literal["train", "val", "test"]
    classroom_id: str = Field(min_length=1)
    camera_id: str = "front"
    analysis_size: tuple[int, int] = (640, 360)
    start_time_us: int | None = None  # wall clock of the first colour frame (default: the MKV's mtime)
    working_distance_mm: float = 4000.0
    seats: list[SeatBox] = Field(default_factory=list)
    students: list[ClipStudent]
    thermal: ThermalSpec
    labels: list[LabelSpan] = Field(default_factory=list)
    keypoints: list[KeypointEntry] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RecordingAnnotations:
        ids = {s.id for s in self.students}
        seats = {s.id for s in self.seats}
        for st in self.students:
            if st.seat is not None and seats and st.seat not in seats:
                raise ValueError(f"student {st.id} sits in unknown seat {st.seat}")
        for span in self.labels:
            if span.student not in ids:
                raise ValueError(f"label for unknown student {span.student}")
        for kp in self.keypoints:
            if kp.student not in ids:
                raise ValueError(f"keypoints for unknown student {kp.student}")
        return self


def load_recording_annotations(path: Path) -> RecordingAnnotations:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file missing")
    try:
        spec = RecordingAnnotations.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    except ValidationError as exc:
        raise FormatError(f"{path}: {_problems(exc)}") from None
    check_keypoint_values(path, spec)
    return spec


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())


def open_kinect_playback(path: Path) -> Any:
    """A pyk4a playback of ``path`` (pyk4a is imported here, lazily)."""
    try:
        from pyk4a import PyK4APlayback  # type: ignore[import-not-found]
    except ImportError:
        raise DatasetError(
            "reading Azure Kinect MKV files needs pyk4a, which is not installed here; install the capture "
            "agent's extra in its own environment: pip install 'smartclass[kinect]' (it needs numpy < 2)"
        ) from None
    return PyK4APlayback(path)


def fit_opencv_distortion(
    coefficients: np.ndarray, fx: float, extent: tuple[float, float] = (0.9, 0.55)
) -> tuple[tuple[float, float, float, float, float], float]:
    """OpenCV (k1, k2, p1, p2, k3) closest to a (k1, k2, p1, p2, k3, k4, k5, k6) rational model.

    Both models are linear in the 5 coefficients once the undistorted point is fixed, so a
    least-squares fit over a grid of normalised points is exact when k4..k6 are zero.
    Returns the coefficients and the fit's RMS error in pixels.
    """
    c = np.zeros(8)
    c[: min(8, len(coefficients))] = np.asarray(coefficients, float)[:8]
    k1, k2, p1, p2, k3, k4, k5, k6 = c
    xs, ys = np.meshgrid(np.linspace(-extent[0], extent[0], 25), np.linspace(-extent[1], extent[1], 25))
    x, y = xs.ravel(), ys.ravel()
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    a = np.concatenate(
        [
            np.stack([x * r2, x * r2**2, 2 * x * y, r2 + 2 * x * x, x * r2**3], 1),
            np.stack([y * r2, y * r2**2, r2 + 2 * y * y, 2 * x * y, y * r2**3], 1),
        ]
    )
    b = np.concatenate([xd - x, yd - y])
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    rms_px = float(np.sqrt(np.mean((a @ sol - b) ** 2)) * fx)
    cv_k1, cv_k2, cv_p1, cv_p2, cv_k3 = (float(v) for v in sol)
    return (cv_k1, cv_k2, cv_p1, cv_p2, cv_k3), rms_px


def _intrinsics(calibration: Any, camera: int, width: int, height: int) -> tuple[Intrinsics, float]:
    k = np.asarray(calibration.get_camera_matrix(camera), float)
    dist, rms = fit_opencv_distortion(
        np.asarray(calibration.get_distortion_coefficients(camera), float), k[0, 0]
    )
    return Intrinsics(
        width=width, height=height, fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2], distortion=dist
    ), rms


def _depth_to_colour(calibration: Any) -> Extrinsics:
    """R, t of X_colour = R X_depth + t, probed through the public depth_to_color_3d."""
    origin = np.asarray(calibration.depth_to_color_3d((0.0, 0.0, 0.0)), float)
    columns = [
        (np.asarray(calibration.depth_to_color_3d(tuple(1000.0 * e)), float) - origin) / 1000.0
        for e in np.eye(3)
    ]
    r = np.stack(columns, axis=1)
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    return Extrinsics(
        rotation=tuple(tuple(float(v) for v in row) for row in r),  # type: ignore[arg-type]
        translation_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
    )


def decode_kinect_colour(image: np.ndarray, color_format: int) -> np.ndarray:
    """A capture's colour image as HxWx3 BGR (MJPG, NV12, YUY2 or BGRA32 recordings)."""
    fmt = int(color_format)
    if fmt == COLOR_MJPG:
        bgr = cv2.imdecode(np.asarray(image, np.uint8).reshape(-1), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError("an MJPG colour frame in the recording does not decode")
        return bgr
    if fmt == COLOR_BGRA32:
        return np.ascontiguousarray(np.asarray(image)[:, :, :3])
    if fmt == COLOR_NV12:
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_YUV2BGR_NV12)
    if fmt == COLOR_YUY2:
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_YUV2BGR_YUY2)
    raise DatasetError(f"colour format {fmt} is not supported (MJPG, NV12, YUY2, BGRA32 are)")


class ThermalStream:
    """Thermal video frames on the colour clock, read forward once, nearest frame on request."""

    def __init__(self, path: Path, spec: ThermalSpec) -> None:
        self.spec = spec
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise DatasetError(f"{path}: OpenCV cannot open the thermal video")
        if spec.encoding == "centikelvin16":
            self.capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        fps = spec.fps or self.capture.get(cv2.CAP_PROP_FPS)
        if not fps or not math.isfinite(fps) or fps <= 0:
            raise DatasetError(
                f"{path}: the video has no frame rate; give thermal.fps in the annotation file"
            )
        self.period_us = 1e6 / fps
        self.path = path
        self.index = -1
        self.current: np.ndarray | None = None
        self.upcoming = self._read()

    def _read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return frame if ok else None

    def _time(self, index: int) -> float:
        return self.spec.start_us + index * self.period_us

    def before_start(self, t_us: float) -> bool:
        return t_us < self.spec.start_us - self.period_us / 2

    def nearest(self, t_us: float) -> tuple[np.ndarray, int] | None:
        """The frame closest to ``t_us`` (colour clock, relative) and its time; None past the end."""
        if self.current is None:
            if self.upcoming is None:
                return None
            self.current, self.index, self.upcoming = self.upcoming, 0, self._read()
        while self.upcoming is not None and abs(self._time(self.index + 1) - t_us) <= abs(
            self._time(self.index) - t_us
        ):
            self.current, self.index, self.upcoming = self.upcoming, self.index + 1, self._read()
        if t_us > self._time(self.index) + self.period_us:
            return None
        return self._celsius(self.current), round(self._time(self.index))

    def _celsius(self, frame: np.ndarray) -> np.ndarray:
        if self.spec.encoding == "centikelvin16":
            if frame.dtype != np.uint16:
                raise DatasetError(
                    f"{self.path}: thermal.encoding is centikelvin16 but frames decode as {frame.dtype}"
                )
            raw = frame if frame.ndim == 2 else frame[:, :, 0]
            return raw.astype(np.float32) * np.float32(0.01) - np.float32(273.15)
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return (
            grey.astype(np.float32) * np.float32(self.spec.scale_c) + np.float32(self.spec.offset_c)
        ).astype(np.float32)

    def close(self) -> None:
        self.capture.release()


def convert_recording(
    *,
    mkv: Path,
    thermal_video: Path,
    annotations: Path,
    out: Path,
    playback_factory: Callable[[Path], Any] | None = None,
    max_frames: int | None = None,
) -> ClipInfo:
    """Convert one recording into clip ``clip_id`` of the data set at ``out`` (manifest merged)."""
    spec = load_recording_annotations(Path(annotations))
    if not Path(mkv).is_file():
        raise DatasetError(f"{mkv}: recording missing")
    if not Path(thermal_video).is_file():
        raise DatasetError(f"{thermal_video}: thermal video missing")
    _check_splits(Path(out), spec)
    playback = (playback_factory or open_kinect_playback)(Path(mkv))
    playback.open()
    thermal = ThermalStream(Path(thermal_video), spec.thermal)
    writer = ClipWriter(Path(out), spec.clip_id)
    try:
        info = _convert(spec, playback, thermal, writer, Path(mkv), max_frames)
    except ValidationError as exc:
        # A value of the annotation file that the data-set format refuses (checked up front
        # where known; this keeps any other one a clear error, not a traceback).
        writer.abort()
        raise AnnotationError(f"{annotations}: {_problems(exc)}") from None
    except BaseException:
        writer.abort()
        raise
    finally:
        thermal.close()
        playback.close()
    try:
        merge_manifest(
            Path(out),
            name=Path(out).name,
            source={"kind": "recordings"},
            splits={spec.split: [s.id for s in spec.students if not s.extra]},
            clip=ClipEntry(id=info.id, split=info.split, frames=info.frames),
        )
    except ValidationError as exc:
        shutil.rmtree(Path(out) / "clips" / info.id, ignore_errors=True)
        raise DatasetError(f"{out}: cannot add {info.id} to the manifest: {exc.errors()[0]['msg']}") from None
    return info


def _check_splits(out: Path, spec: RecordingAnnotations) -> None:
    """Refuse before writing anything when a student already belongs to another split."""
    if not (out / MANIFEST).exists():
        return
    existing = student_split(load_manifest(out))
    for st in spec.students:
        split = existing.get(st.id)
        if not st.extra and split is not None and split != spec.split:
            raise DatasetError(
                f"{out}: cannot add {spec.clip_id}: student {st.id} is in {split} already, "
                f"this recording puts them in {spec.split} (splits are by student)"
            )


@dataclass
class _Written:
    """What the frame loop wrote: frames, each sensor's image size, captures it could not use."""

    frames: int = 0
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    skipped: int = 0


def _convert(
    spec: RecordingAnnotations,
    playback: Any,
    thermal: ThermalStream,
    writer: ClipWriter,
    mkv: Path,
    max_frames: int | None,
) -> ClipInfo:
    start_time_us = (
        spec.start_time_us if spec.start_time_us is not None else round(os.path.getmtime(mkv) * 1e6)
    )
    written = _write_frames(spec, playback, thermal, writer, mkv, max_frames, start_time_us)
    if written.frames == 0:
        raise DatasetError(f"{mkv}: no frame with colour, depth and thermal to convert")
    info = _clip_info(spec, playback, writer, mkv, start_time_us, written)
    writer.finish(info)
    return info


def _write_frames(
    spec: RecordingAnnotations,
    playback: Any,
    thermal: ThermalStream,
    writer: ClipWriter,
    mkv: Path,
    max_frames: int | None,
    start_time_us: int,
) -> _Written:
    """Pair each complete colour+depth capture with the nearest thermal frame and write it."""
    color_format = playback.configuration["color_format"]
    keypoints = {(k.frame, k.student): k.points for k in spec.keypoints}
    written = _Written()
    first_ts: int | None = None
    while max_frames is None or written.frames < max_frames:
        try:
            capture = playback.get_next_capture()
        except EOFError:
            break
        if capture.color is None or capture.depth is None:
            written.skipped += 1  # the Kinect delivers an incomplete capture now and then
            continue
        colour = decode_kinect_colour(capture.color, color_format)
        depth = np.asarray(capture.depth, np.uint16)
        if first_ts is None:
            first_ts = int(capture.color_timestamp_usec)
        rel = int(capture.color_timestamp_usec) - first_ts
        if thermal.before_start(rel):
            written.skipped += 1  # colour frames before the thermal camera started
            continue
        found = thermal.nearest(rel)
        if found is None:
            break  # the thermal video ended
        celsius, thermal_rel = found
        for name, image in (("rgb", colour), ("depth", depth), ("thermal", celsius)):
            _check_size(written.sizes, name, image, mkv, written.frames)
        stamps = (
            start_time_us + rel,
            start_time_us + int(capture.depth_timestamp_usec) - first_ts,
            start_time_us + thermal_rel + spec.thermal.time_offset_us,
        )
        annotation = FrameAnnotation(
            frame=written.frames,
            sequence=written.frames,
            rgb_ts_us=stamps[0],
            depth_ts_us=stamps[1],
            thermal_ts_us=stamps[2],
            conditions=list(spec.conditions),
            students=_students_at(spec, rel, written.frames, keypoints),
        )
        writer.add(encode_frame(FrameData(colour, depth, celsius, *stamps, annotation=annotation)))
        written.frames += 1
    return written


def _check_size(
    sizes: dict[str, tuple[int, int]], name: str, image: np.ndarray, mkv: Path, frame_index: int
) -> None:
    """Every frame of a sensor has the size of its first one."""
    size = (image.shape[1], image.shape[0])
    if sizes.setdefault(name, size) != size:
        raise DatasetError(f"{mkv}: {name} frame {frame_index} is {size}, earlier frames {sizes[name]}")


def _students_at(
    spec: RecordingAnnotations,
    rel: int,
    frame_index: int,
    keypoints: dict[tuple[int, str], Any],
) -> list[StudentAnnotation]:
    """Each student's label ``rel`` µs into the recording (extras have none) and keypoints of the frame."""
    students = []
    for st in spec.students:
        label = None
        if not st.extra:
            label = next(
                (
                    s.behaviour
                    for s in spec.labels
                    if s.student == st.id and s.start_s * 1e6 <= rel < s.end_s * 1e6
                ),
                None,
            )
        students.append(
            StudentAnnotation(
                student_id=st.id,
                seat_id=st.seat,
                label=label,
                label_index=None if label is None else BEHAVIOUR_INDEX[label],
                extra=st.extra,
                keypoints=keypoints.get((frame_index, st.id)),
            )
        )
    return students


def _clip_info(
    spec: RecordingAnnotations,
    playback: Any,
    writer: ClipWriter,
    mkv: Path,
    start_time_us: int,
    written: _Written,
) -> ClipInfo:
    """clip.json of the converted recording: calibration, sensors, students, label segments."""
    sizes = written.sizes
    calibration = playback.calibration
    colour_k, colour_rms = _intrinsics(calibration, CALIBRATION_COLOR, *sizes["rgb"])
    depth_k, depth_rms = _intrinsics(calibration, CALIBRATION_DEPTH, *sizes["depth"])
    if (spec.thermal.intrinsics.width, spec.thermal.intrinsics.height) != sizes["thermal"]:
        raise DatasetError(
            f"thermal intrinsics are for {spec.thermal.intrinsics.width}x{spec.thermal.intrinsics.height}, "
            f"the video is {sizes['thermal'][0]}x{sizes['thermal'][1]}"
        )
    fps = {0: 5.0, 1: 15.0, 2: 30.0}.get(int(playback.configuration.get("camera_fps", 2)), 30.0)
    return ClipInfo(
        id=spec.clip_id,
        split=spec.split,
        frames=written.frames,
        fps=fps,
        start_ts_us=start_time_us,
        classroom_id=spec.classroom_id,
        camera_id=spec.camera_id,
        analysis_size=spec.analysis_size,
        calibration=CameraCalibration(
            rgb=colour_k,
            depth=SensorCalibration(
                intrinsics=depth_k, to_rgb=_depth_to_colour(calibration), time_offset_us=0
            ),
            thermal=SensorCalibration(
                intrinsics=spec.thermal.intrinsics,
                to_rgb=spec.thermal.to_rgb,
                time_offset_us=spec.thermal.time_offset_us,
            ),
            working_distance_mm=spec.working_distance_mm,
        ),
        seats=list(spec.seats),
        sensors={
            name: SensorFiles(extension=extension, width=sizes[name][0], height=sizes[name][1])
            for name, extension in (("rgb", "jpg"), ("depth", "png"), ("thermal", "png"))
        },
        references=False,
        conditions=list(spec.conditions),
        students=list(spec.students),
        labels=label_segments(writer.annotations),
        source={
            "kind": "recording",
            "mkv": mkv.name,
            "skipped_incomplete_captures": written.skipped,
            "lens_refit_rms_px": {"colour": round(colour_rms, 4), "depth": round(depth_rms, 4)},
        },
    )
