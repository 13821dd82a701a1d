"""Writing data sets in the format: one clip folder at a time, then the manifest.

A clip is written into a temporary folder and renamed into place when complete, so a
crash or a full disk never leaves a clip that looks whole. The simulator, the recording
converter and the virtual data set's disk cache all write through ``write_clip``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.frames import FrameSet
from services.common.vocabulary import BEHAVIOURS, KEYPOINTS
from services.dataset.format import (
    ANNOTATIONS_FILE,
    CLIP_FILE,
    CLIPS_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    ClipEntry,
    ClipInfo,
    FrameAnnotation,
    LabelSegment,
    Manifest,
    clip_dir,
)
from services.dataset.images import encode_png16, encode_rgb, encode_thermal
from services.dataset.reader import load_manifest


@dataclass(slots=True, kw_only=True)
class FrameData(FrameSet):
    """One frame set to write into a clip, with its line of annotations.jsonl and, for simulated
    frames, the clean references (the data the format adds to a frame set's images).

    The annotation repeats the frame set's capture times, as the format stores them; they must
    agree with the frame set's own.
    """

    annotation: FrameAnnotation
    reference_rgb: np.ndarray | None = None
    reference_depth_mm: np.ndarray | None = None
    reference_thermal_c: np.ndarray | None = None

    def __post_init__(self) -> None:
        stamps = (self.annotation.rgb_ts_us, self.annotation.depth_ts_us, self.annotation.thermal_ts_us)
        if stamps != (self.rgb_ts_us, self.depth_ts_us, self.thermal_ts_us):
            raise ValueError(
                f"frame {self.annotation.frame}: the annotation's capture times are not the frame set's"
            )


@dataclass(frozen=True)
class EncodedFrame:
    """The bytes of one frame's files, keyed by relative path inside the clip folder."""

    files: dict[str, bytes]
    annotation: FrameAnnotation


def encode_frame(
    frame: FrameData, info: ClipInfo | None = None, *, rgb_extension: str = "jpg", references: bool = False
) -> EncodedFrame:
    """Encode one frame's files; ``info`` (when given) decides the colour format and references."""
    if info is not None:
        rgb_extension, references = info.sensors["rgb"].extension, info.references
    i = frame.annotation.frame
    files = {
        f"rgb/{i:06d}.{rgb_extension}": encode_rgb(frame.rgb, rgb_extension),
        f"depth/{i:06d}.png": encode_png16(frame.depth_mm),
        f"thermal/{i:06d}.png": encode_thermal(frame.thermal_c),
    }
    if references:
        if (
            frame.reference_rgb is None
            or frame.reference_depth_mm is None
            or frame.reference_thermal_c is None
        ):
            raise ValueError(f"references requested but frame {i} has none")
        files[f"reference/rgb/{i:06d}.png"] = encode_rgb(frame.reference_rgb, "png")
        files[f"reference/depth/{i:06d}.png"] = encode_png16(frame.reference_depth_mm)
        files[f"reference/thermal/{i:06d}.png"] = encode_thermal(frame.reference_thermal_c)
    return EncodedFrame(files, frame.annotation)


def label_segments(annotations: Sequence[FrameAnnotation]) -> list[LabelSegment]:
    """Runs of constant label per student (the summary clip.json carries for fast sample listing)."""
    open_runs: dict[str, tuple[str, int, int]] = {}
    segments: list[LabelSegment] = []
    for ann in annotations:
        seen = set()
        for st in ann.students:
            if st.extra or st.label is None:
                continue
            seen.add(st.student_id)
            run = open_runs.get(st.student_id)
            if run is not None and run[0] == st.label and run[2] == ann.frame - 1:
                open_runs[st.student_id] = (run[0], run[1], ann.frame)
            else:
                if run is not None:
                    segments.append(
                        LabelSegment(
                            student_id=st.student_id, label=run[0], start_frame=run[1], end_frame=run[2]
                        )
                    )
                open_runs[st.student_id] = (st.label, ann.frame, ann.frame)
        for sid in [s for s in open_runs if s not in seen]:
            label, a, b = open_runs.pop(sid)
            segments.append(LabelSegment(student_id=sid, label=label, start_frame=a, end_frame=b))
    for sid, (label, a, b) in open_runs.items():
        segments.append(LabelSegment(student_id=sid, label=label, start_frame=a, end_frame=b))
    return sorted(segments, key=lambda s: (s.student_id, s.start_frame))


class ClipWriter:
    """Streams a clip's frames into a temporary folder; ``finish`` renames it into place."""

    def __init__(self, root: Path, clip_id: str) -> None:
        self.root = Path(root)
        self.final = clip_dir(self.root, clip_id)
        self.tmp = self.final.with_name(f".{clip_id}.tmp-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.annotations: list[FrameAnnotation] = []

    def add(self, frame: EncodedFrame) -> None:
        for rel, data in frame.files.items():
            path = self.tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.annotations.append(frame.annotation)

    def finish(self, info: ClipInfo) -> Path:
        if len(self.annotations) != info.frames:
            raise ValueError(
                f"clip {info.id}: clip.json says {info.frames} frames, {len(self.annotations)} written"
            )
        with open(self.tmp / ANNOTATIONS_FILE, "w") as f:
            for ann in self.annotations:
                f.write(ann.model_dump_json() + "\n")
        (self.tmp / CLIP_FILE).write_text(info.model_dump_json(indent=1))
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_clip(root: Path, info: ClipInfo, frames: Sequence[EncodedFrame]) -> Path:
    """Write one clip folder atomically and return its path."""
    writer = ClipWriter(root, info.id)
    try:
        for frame in frames:
            writer.add(frame)
        return writer.finish(info)
    except BaseException:
        writer.abort()
        raise


def merge_manifest(
    root: Path, *, name: str, source: dict, splits: dict[str, list[str]], clip: ClipEntry
) -> Manifest:
    """Add or replace one clip in an existing manifest (or start one), keeping splits disjoint."""
    path = root / MANIFEST
    clips: list[ClipEntry] = []
    merged: dict[str, list[str]] = {k: list(v) for k, v in splits.items()}
    if path.exists():
        old = load_manifest(root)
        name, source = old.name, old.source
        clips = [c for c in old.clips if c.id != clip.id]
        for split, students in old.splits.items():
            merged[split] = sorted(set(merged.get(split, [])) | set(students))
    return write_manifest(root, name=name, source=source, splits=merged, clips=[*clips, clip])


def write_manifest(
    root: Path,
    *,
    name: str,
    source: dict,
    splits: dict[str, list[str]],
    clips: Sequence[ClipEntry],
    window: dict | None = None,
) -> Manifest:
    manifest = Manifest(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        name=name,
        source=source,
        behaviours=list(BEHAVIOURS),
        keypoints=list(KEYPOINTS),
        window=window or {"frames": 16, "fps": 8.0, "hop": 8},
        splits={k: sorted(v) for k, v in splits.items()},
        clips=sorted(clips, key=lambda c: (c.split, c.id)),
    )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=1))
    os.replace(tmp, root / MANIFEST)
    (root / CLIPS_DIR).mkdir(exist_ok=True)
    return manifest
