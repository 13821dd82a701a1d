"""``classroom dataset check``: validate a data-set folder and report every problem found.

Checks the manifest (format, vocabulary, splits disjoint by student), every clip
(clip.json, students in the clip's split or marked extra, annotations line by line
against the label segments), that every image file is present and complete (JPEG end
marker, PNG IEND chunk; ``deep`` also decodes each and checks its size), and that visible
keypoints and boxes lie inside the image. Also reports samples per class and split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.common.vocabulary import BEHAVIOURS
from services.dataset.format import (
    CLIPS_DIR,
    MODALITIES,
    SPLITS,
    CorruptFileError,
    DatasetError,
    clip_dir,
)
from services.dataset.images import check_complete, read_image
from services.dataset.reader import FolderDataset


@dataclass
class CheckReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    clips: int = 0
    frames: int = 0
    samples: dict[str, Counter] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _quick_complete(path: Path) -> None:
    """The truncation check on the first and last bytes only (fast on big data sets)."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > 80:
            head = f.read(16)
            f.seek(size - 64)
            sample = head + f.read(64)
        else:
            sample = f.read()  # small enough to look at whole
    try:
        check_complete(sample, path)
    except CorruptFileError as exc:
        # check_complete counts the bytes it was given: say how big the file really is.
        message = str(exc)
        sampled = f"({len(sample)} bytes"
        if sampled in message:
            message = message.replace(sampled, f"({size} bytes", 1)
        else:
            message = f"{message} (file size {size} bytes)"
        raise CorruptFileError(message) from None


def check_dataset(root: str | Path, *, deep: bool = False, max_problems: int = 200) -> CheckReport:
    report = CheckReport(Path(root))
    try:
        ds = FolderDataset(root)
    except DatasetError as exc:
        report.problems.append(str(exc))
        return report
    listed = set(ds.clip_ids())
    clips_root = report.root / CLIPS_DIR
    if clips_root.is_dir():
        for folder in sorted(p for p in clips_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name not in listed:
                report.notes.append(f"{folder}: clip folder not listed in manifest.json (ignored)")
    for clip_id in ds.clip_ids():
        if len(report.problems) >= max_problems:
            report.notes.append(f"stopped after {max_problems} problems")
            break
        try:
            _check_clip(ds, clip_id, deep, report)
        except DatasetError as exc:
            report.problems.append(str(exc))
    for split in SPLITS:
        try:
            report.samples[split] = Counter(s.label for s in ds.samples(split))
        except DatasetError as exc:
            report.problems.append(str(exc))
    for split, counts in report.samples.items():
        present = [counts.get(b, 0) for b in BEHAVIOURS]
        if sum(present) and min(present) * 2 < max(present):
            report.notes.append(
                f"{split}: labels unbalanced (min {min(present)}, max {max(present)} samples per class)"
            )
    return report


def _check_clip(ds: FolderDataset, clip_id: str, deep: bool, report: CheckReport) -> None:
    info = ds.clip_info(clip_id)
    annotations = ds.clip_annotations(clip_id)
    report.clips += 1
    report.frames += info.frames
    base = clip_dir(ds.root, clip_id)
    aw, ah = info.analysis_size
    for ann in annotations:
        for modality in MODALITIES:
            sensor = info.sensors[modality]
            path = base / modality / f"{ann.frame:06d}.{sensor.extension}"
            if deep:
                read_image(path, kind=modality, size=(sensor.width, sensor.height))
            else:
                _quick_complete(path)
            if info.references:
                ref = base / "reference" / modality / f"{ann.frame:06d}.png"
                if deep:
                    read_image(ref, kind=modality, size=(aw, ah))
                else:
                    _quick_complete(ref)
        for st in ann.students:
            if st.keypoints is not None:
                for k, (x, y, v) in enumerate(st.keypoints):
                    if v > 0 and not (
                        -0.5 - 1e-6 <= x <= aw - 0.5 + 1e-6 and -0.5 - 1e-6 <= y <= ah - 0.5 + 1e-6
                    ):
                        report.problems.append(
                            f"{base}: frame {ann.frame}: {st.student_id} keypoint {k} at ({x}, {y}) "
                            f"is marked in the image (v={v}) but lies outside {aw}x{ah}"
                        )
            if st.box is not None:
                x0, y0, x1, y1 = st.box
                if x0 < -1 or y0 < -1 or x1 > aw + 1 or y1 > ah + 1:
                    report.problems.append(
                        f"{base}: frame {ann.frame}: {st.student_id} box {st.box} leaves {aw}x{ah}"
                    )


def format_report(report: CheckReport) -> str:
    lines = [f"{report.root}: {report.clips} clips, {report.frames} frames"]
    for split in SPLITS:
        counts = report.samples.get(split)
        if counts:
            per_class = ", ".join(f"{b} {counts.get(b, 0)}" for b in BEHAVIOURS)
            lines.append(f"  {split}: {sum(counts.values())} samples ({per_class})")
    for note in report.notes:
        lines.append(f"  note: {note}")
    for problem in report.problems:
        lines.append(f"  PROBLEM: {problem}")
    lines.append("OK" if report.ok else f"{len(report.problems)} problem(s)")
    return "\n".join(lines)
