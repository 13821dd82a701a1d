"""Reading a data-set folder: the manifest, clips, windows, samples, frames, with checked errors.

Windows resample every clip onto the recognition grid (``manifest.window``: 16 frames at
8 fps, a new window every 8 grid steps) by nearest frame index, so clips recorded at 15 or
30 fps and simulated 8 fps clips give the same kind of window. A sample is a labelled,
non-extra student whose label does not change inside the window.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from services.common.campus import Camera, Seat
from services.common.frames import CapturedFrameSet
from services.common.vocabulary import BEHAVIOUR_INDEX
from services.dataset.format import (
    ANNOTATIONS_FILE,
    CLIP_FILE,
    MANIFEST,
    MODALITIES,
    SPLITS,
    AnnotationError,
    ClipInfo,
    FormatError,
    FrameAnnotation,
    Manifest,
    MissingFileError,
    clip_dir,
    student_split,
)
from services.dataset.images import decode_image, read_bytes
from services.dataset.types import ReferenceFrame, SampleRef, Window, WindowRef


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())


def load_manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file():
        raise MissingFileError(f"{path}: missing (not a data set folder?)")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise FormatError(f"{path}: {_problems(exc)}") from None


def load_clip_info(root: Path, clip_id: str) -> ClipInfo:
    path = clip_dir(root, clip_id) / CLIP_FILE
    if not path.is_file():
        raise MissingFileError(f"{path}: missing")
    try:
        return ClipInfo.model_validate_json(path.read_text())
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise FormatError(f"{path}: not valid JSON (truncated?)") from None
        raise FormatError(f"{path}: {_problems(exc)}") from None


def grid_windows(
    frames: int, fps: float, *, window_frames: int = 16, window_fps: float = 8.0, hop: int = 8
) -> list[tuple[int, ...]]:
    """Frame indices of each window of a clip, resampled to ``window_fps`` by nearest frame."""
    step = fps / window_fps
    grid = int((frames - 1) / step + 1e-9) + 1  # grid points inside the clip
    windows = []
    for start in range(0, grid - window_frames + 1, hop):
        windows.append(tuple(min(frames - 1, round((start + j) * step)) for j in range(window_frames)))
    return windows


def parse_annotations(path: Path, info: ClipInfo) -> list[FrameAnnotation]:
    """Per-frame annotations of a clip, checked against clip.json."""
    if not path.is_file():
        raise MissingFileError(f"{path}: missing")
    lines = path.read_text().splitlines()
    if len(lines) != info.frames:
        raise AnnotationError(
            f"{path}: {len(lines)} frame annotations, clip.json says {info.frames} frames (truncated?)"
        )
    students = {s.id: s for s in info.students}
    segments: dict[str, list] = {}
    for seg in info.labels:
        segments.setdefault(seg.student_id, []).append(seg)
    out = []
    for n, line in enumerate(lines):
        try:
            ann = FrameAnnotation.model_validate_json(line)
        except ValidationError as exc:
            raise AnnotationError(f"{path}: line {n + 1}: {_problems(exc)}") from None
        if ann.frame != n:
            raise AnnotationError(f"{path}: line {n + 1} is frame {ann.frame}, expected {n}")
        for st in ann.students:
            known = students.get(st.student_id)
            if known is None:
                raise AnnotationError(
                    f"{path}: frame {n}: student {st.student_id} is not listed in clip.json"
                )
            if known.extra != st.extra:
                raise AnnotationError(
                    f"{path}: frame {n}: student {st.student_id} extra={st.extra}, "
                    f"clip.json says {known.extra}"
                )
            if st.extra or st.label is None:
                continue
            expected = next(
                (s.label for s in segments.get(st.student_id, []) if s.start_frame <= n <= s.end_frame), None
            )
            if expected != st.label:
                raise AnnotationError(
                    f"{path}: frame {n}: student {st.student_id} is labelled {st.label!r} "
                    f"but clip.json's label segments say {expected!r}"
                )
        out.append(ann)
    return out


def clip_camera(info: ClipInfo) -> Camera:
    return Camera(
        id=info.camera_id,
        analysis_width=info.analysis_size[0],
        analysis_height=info.analysis_size[1],
        calibration=info.calibration,
        seats=tuple(Seat(id=s.id, box=s.box) for s in info.seats),
    )


# Where a clip's files come from: relative path inside the clip folder -> (bytes, name for errors).
FileSource = Callable[[str], tuple[bytes, str]]


def folder_source(root: Path, clip_id: str) -> FileSource:
    base = clip_dir(root, clip_id)
    return lambda rel: (read_bytes(base / rel), str(base / rel))


def memory_source(clip_id: str, files: dict[str, bytes]) -> FileSource:
    def fetch(rel: str) -> tuple[bytes, str]:
        if rel not in files:
            raise MissingFileError(f"{clip_id}/{rel}: missing")
        return files[rel], f"{clip_id}/{rel}"

    return fetch


def _image(fetch: FileSource, rel: str, kind: str, size: tuple[int, int]) -> np.ndarray:
    data, name = fetch(rel)
    return decode_image(data, name, kind=kind, size=size)


def read_frame(fetch: FileSource, info: ClipInfo, ann: FrameAnnotation) -> CapturedFrameSet:
    """The sensor-native images of one frame, with its annotation as a dict."""
    images = {}
    for modality in MODALITIES:
        sensor = info.sensors[modality]
        rel = f"{modality}/{ann.frame:06d}.{sensor.extension}"
        images[modality] = _image(fetch, rel, modality, (sensor.width, sensor.height))
    return CapturedFrameSet(
        sequence=ann.sequence,
        rgb=images["rgb"],
        depth_mm=images["depth"],
        thermal_c=images["thermal"],
        rgb_ts_us=ann.rgb_ts_us,
        depth_ts_us=ann.depth_ts_us,
        thermal_ts_us=ann.thermal_ts_us,
        annotations=ann.model_dump(mode="json"),
    )


def read_reference(fetch: FileSource, info: ClipInfo, frame: int) -> ReferenceFrame:
    size = (info.analysis_size[0], info.analysis_size[1])
    return ReferenceFrame(
        rgb=_image(fetch, f"reference/rgb/{frame:06d}.png", "rgb", size),
        depth_mm=_image(fetch, f"reference/depth/{frame:06d}.png", "depth", size),
        thermal_c=_image(fetch, f"reference/thermal/{frame:06d}.png", "thermal", size),
    )


def read_window(
    fetch: FileSource,
    info: ClipInfo,
    annotations: list[FrameAnnotation],
    ref: WindowRef,
    *,
    references: bool,
    fps: float,
) -> Window:
    """Load the frames of window ``ref`` of a clip whose annotations are already parsed."""
    frames = [read_frame(fetch, info, annotations[i]) for i in ref.frame_indices]
    refs = None
    if references and info.references:
        refs = [read_reference(fetch, info, i) for i in ref.frame_indices]
    return Window(
        ref=ref,
        frames=frames,
        references=refs,
        calibration=info.calibration,
        camera=clip_camera(info),
        classroom_id=info.classroom_id,
        conditions=list(info.conditions),
        fps=fps,
    )


class FolderDataset:
    """A data set stored as files in the format."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.name = self.manifest.name
        self.splits: dict[str, list[str]] = {s: list(self.manifest.splits.get(s, [])) for s in SPLITS}
        self._student_split = student_split(self.manifest)
        self._clips: dict[str, ClipInfo] = {}
        self._annotations: dict[str, list[FrameAnnotation]] = {}
        w = self.manifest.window
        self.window_frames = int(w.get("frames", 16))
        self.window_fps = float(w.get("fps", 8.0))
        self.window_hop = int(w.get("hop", 8))

    def clip_ids(self, split: str | None = None) -> list[str]:
        return [c.id for c in self.manifest.clips if split is None or c.split == split]

    def clip_info(self, clip_id: str) -> ClipInfo:
        if clip_id not in self._clips:
            entry = next((c for c in self.manifest.clips if c.id == clip_id), None)
            if entry is None:
                raise MissingFileError(f"{self.root / MANIFEST}: no clip {clip_id!r}")
            info = load_clip_info(self.root, clip_id)
            if info.id != clip_id or info.split != entry.split or info.frames != entry.frames:
                raise FormatError(
                    f"{clip_dir(self.root, clip_id) / CLIP_FILE}: id/split/frames "
                    f"({info.id}, {info.split}, {info.frames}) "
                    f"differ from the manifest ({entry.id}, {entry.split}, {entry.frames})"
                )
            for st in info.students:
                if st.extra:
                    continue
                split = self._student_split.get(st.id)
                if split is None:
                    raise AnnotationError(
                        f"clip {clip_id}: student {st.id} is in no split of the manifest "
                        "(mark background people extra)"
                    )
                if split != info.split:
                    raise AnnotationError(
                        f"clip {clip_id} is in {info.split} but student {st.id} belongs to {split}"
                    )
            self._clips[clip_id] = info
        return self._clips[clip_id]

    def clip_annotations(self, clip_id: str) -> list[FrameAnnotation]:
        if clip_id not in self._annotations:
            info = self.clip_info(clip_id)
            self._annotations[clip_id] = parse_annotations(
                clip_dir(self.root, clip_id) / ANNOTATIONS_FILE, info
            )
        return self._annotations[clip_id]

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")

    def windows(self, split: str) -> list[WindowRef]:
        self._check_split(split)
        refs = []
        for clip_id in self.clip_ids(split):
            info = self.clip_info(clip_id)
            for k, frames in enumerate(
                grid_windows(
                    info.frames,
                    info.fps,
                    window_frames=self.window_frames,
                    window_fps=self.window_fps,
                    hop=self.window_hop,
                )
            ):
                refs.append(WindowRef(split, clip_id, k, frames))
        return refs

    def samples(self, split: str) -> list[SampleRef]:
        out = []
        for ref in self.windows(split):
            info = self.clip_info(ref.clip_id)
            first, last = min(ref.frame_indices), max(ref.frame_indices)
            seats = {s.id: s.seat for s in info.students}
            for seg in info.labels:
                if seg.start_frame <= first and last <= seg.end_frame and not _is_extra(info, seg.student_id):
                    out.append(
                        SampleRef(
                            ref,
                            seg.student_id,
                            seats.get(seg.student_id),
                            seg.label,
                            BEHAVIOUR_INDEX[seg.label],
                        )
                    )
        return out

    def load_annotations(self, ref: WindowRef) -> list[FrameAnnotation]:
        annotations = self.clip_annotations(ref.clip_id)
        return [annotations[i] for i in ref.frame_indices]

    def load_window(self, ref: WindowRef, *, references: bool = True) -> Window:
        info = self.clip_info(ref.clip_id)
        return read_window(
            folder_source(self.root, ref.clip_id),
            info,
            self.clip_annotations(ref.clip_id),
            ref,
            references=references,
            fps=self.window_fps,
        )

    def iter_frames(self, clip_id: str) -> Iterator[CapturedFrameSet]:
        """Every frame of a clip in order (the capture service's recorded-folder source)."""
        info = self.clip_info(clip_id)
        for ann in self.clip_annotations(clip_id):
            yield read_frame(folder_source(self.root, clip_id), info, ann)


def _is_extra(info: ClipInfo, student_id: str) -> bool:
    return any(s.id == student_id and s.extra for s in info.students)
