"""Folder data sets: reading, windows on the 8 fps grid, and a clear error for every broken file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from services.dataset.api import open_dataset
from services.dataset.check import check_dataset
from services.dataset.format import (
    AnnotationError,
    CorruptFileError,
    DatasetError,
    FormatError,
    FrameAnnotation,
    MissingFileError,
    StudentAnnotation,
)
from services.dataset.reader import FolderDataset, grid_windows
from services.dataset.virtual import PRESETS, VirtualDataset
from services.dataset.writer import FrameData, label_segments


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "tiny"
    VirtualDataset(PRESETS["tiny"], seed=0).export(root, limit=1)
    return root


@pytest.fixture()
def copy(pristine, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(pristine, root)
    return root


def _clip(root, split="train"):
    return root / "clips" / f"{split}-00000"


def test_folder_matches_the_virtual_data_set(pristine):
    folder = open_dataset(pristine)
    virtual = VirtualDataset(PRESETS["tiny"], seed=0)
    ref = folder.windows("test")[0]
    assert ref == virtual.windows("test")[0]
    assert folder.samples("test") == virtual.samples("test")[: len(folder.samples("test"))]
    a, b = folder.load_window(ref), virtual.load_window(ref)
    assert all(x.rgb.tobytes() == y.rgb.tobytes() for x, y in zip(a.frames, b.frames, strict=True))
    assert a.camera.calibration == b.camera.calibration and len(a.camera.seats) == 12
    assert check_dataset(pristine, deep=True).ok


def test_missing_image_is_named(copy):
    (_clip(copy) / "depth" / "000003.png").unlink()
    ds = FolderDataset(copy)
    with pytest.raises(MissingFileError, match=r"train-00000/depth/000003\.png: missing"):
        ds.load_window(ds.windows("train")[0])
    report = check_dataset(copy)
    assert not report.ok and "000003.png" in report.problems[0]


def test_missing_manifest_and_clip_file(copy, tmp_path):
    with pytest.raises(DatasetError, match="no such data set folder"):
        open_dataset(tmp_path / "nowhere")
    (_clip(copy, "val") / "clip.json").unlink()
    ds = FolderDataset(copy)
    with pytest.raises(MissingFileError, match=r"val-00000/clip\.json: missing"):
        ds.windows("val")
    (copy / "manifest.json").unlink()
    with pytest.raises(MissingFileError, match=r"manifest\.json: missing"):
        FolderDataset(copy)


@pytest.mark.parametrize("name", ["rgb/000005.jpg", "thermal/000005.png", "reference/depth/000005.png"])
def test_truncated_image_is_caught(copy, name):
    path = _clip(copy) / name
    data = path.read_bytes()
    size = len(data) // 2
    path.write_bytes(data[:size])
    ds = FolderDataset(copy)
    with pytest.raises(CorruptFileError, match="truncated"):
        ds.load_window(ds.windows("train")[0])
    for deep in (False, True):  # the quick check reads only the first and last bytes
        problems = [p for p in check_dataset(copy, deep=deep).problems if "truncated" in p]
        assert len(problems) == 1 and name in problems[0]
        assert f"({size} bytes, no " in problems[0]  # the file's real size, not the bytes sampled


def test_truncated_annotations_and_clip_json(copy):
    ann = _clip(copy) / "annotations.jsonl"
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join(lines[:10]) + "\n" + lines[10][:40])
    ds = FolderDataset(copy)
    with pytest.raises(AnnotationError, match=r"11 frame annotations, clip\.json says 16"):
        ds.load_window(ds.windows("train")[0])
    info = _clip(copy, "test") / "clip.json"
    info.write_text(info.read_text()[:200])
    with pytest.raises(FormatError, match="not valid JSON"):
        FolderDataset(copy).windows("test")


def _edit_first_frame(root, edit):
    path = _clip(root) / "annotations.jsonl"
    lines = path.read_text().splitlines()
    doc = json.loads(lines[0])
    edit(doc)
    lines[0] = json.dumps(doc)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["students"][0].update(label="sleeping", label_index=None),
            "unknown behaviour 'sleeping'",
        ),
        (
            lambda d: d["students"][0].update(label_index=(d["students"][0]["label_index"] + 1) % 10),
            "has index",
        ),
        (lambda d: d["students"][0].update(keypoints=d["students"][0]["keypoints"][:16]), "16 keypoints"),
        (lambda d: d["students"][0].update(student_id="S99"), "S99 is not listed in clip.json"),
    ],
)
def test_mislabelled_annotations_are_refused(copy, edit, message):
    _edit_first_frame(copy, edit)
    ds = FolderDataset(copy)
    with pytest.raises(AnnotationError, match=message):
        ds.load_window(ds.windows("train")[0])
    assert not check_dataset(copy).ok


def test_label_that_contradicts_the_clip_segments_is_refused(copy):
    def relabel(doc):
        st = next(s for s in doc["students"] if not s["extra"])
        st["label"] = "hand_raising" if st["label"] != "hand_raising" else "page_turning"
        st["label_index"] = 0 if st["label"] == "hand_raising" else 1

    _edit_first_frame(copy, relabel)
    ds = FolderDataset(copy)
    with pytest.raises(AnnotationError, match="label segments say"):
        ds.load_annotations(ds.windows("train")[0])


def test_subject_in_the_wrong_split_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    moved = manifest["splits"]["train"].pop()
    manifest["splits"]["test"].append(moved)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnnotationError, match=f"student {moved} belongs to test"):
        FolderDataset(copy).windows("train")
    manifest["splits"]["train"].append(moved)  # now in two splits
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="splits must be disjoint by student"):
        FolderDataset(copy)


def test_grid_windows_resample_to_8_fps():
    # 8 fps clip of 16 frames: one window, every frame.
    assert grid_windows(16, 8.0) == [tuple(range(16))]
    # 15 fps, 64 frames: grid points at 0, 1.875, 3.75 ... frames; windows every 8 grid steps.
    windows = grid_windows(64, 15.0)
    assert windows[0][:4] == (0, 2, 4, 6) and windows[0][-1] == 28  # round(15 * 1.875) = 28
    assert windows[1][0] == 15 and len(windows) == 3  # 34 grid points -> starts 0, 8, 16
    assert grid_windows(15, 8.0) == []


def test_label_segments_summarise_runs():
    def frame(i, label):
        st = StudentAnnotation(student_id="S01", label=label, label_index=None)
        return FrameAnnotation(
            frame=i, sequence=i, rgb_ts_us=0, depth_ts_us=0, thermal_ts_us=0, students=[st]
        )

    frames = [frame(0, "note_taking"), frame(1, "note_taking"), frame(2, None), frame(3, "hand_raising")]
    segs = label_segments(frames)
    assert [(s.label, s.start_frame, s.end_frame) for s in segs] == [
        ("note_taking", 0, 1),
        ("hand_raising", 3, 3),
    ]


def test_frame_data_refuses_an_annotation_with_other_capture_times():
    images = (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint16), np.zeros((2, 2), np.float32))
    stamps = {"rgb_ts_us": 1_000, "depth_ts_us": 1_300, "thermal_ts_us": 900}
    annotation = FrameAnnotation(frame=0, sequence=0, **stamps)
    frame = FrameData(*images, 1_000, 1_300, 900, annotation=annotation)
    assert (frame.rgb_ts_us, frame.depth_ts_us, frame.thermal_ts_us) == (1_000, 1_300, 900)
    with pytest.raises(ValueError, match="capture times"):
        FrameData(*images, 1_000, 1_300, 901, annotation=annotation)
