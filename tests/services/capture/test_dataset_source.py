"""The capture agent's ``dataset`` source: a data-set folder replayed as a camera."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from services.capture.config import CaptureSettings
from services.capture.sources import CameraUnavailable
from services.capture.sources.open import open_source
from services.capture.sources.recorded import DatasetSource, resample
from services.dataset.reader import FolderDataset
from services.dataset.virtual import PRESETS, VirtualDataset


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "tiny"
    VirtualDataset(PRESETS["tiny"], seed=0).export(root, limit=1)  # 3 clips of 16 frames at 8 fps
    return root


@pytest.fixture()
def copy(pristine, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(pristine, root)
    return root


def test_replays_every_clip_in_manifest_order(pristine):
    ds = FolderDataset(pristine)
    clips = ds.clip_ids()
    source = DatasetSource(pristine, fps=8.0)
    assert source.live is False and source.frame_rate == 8.0
    assert source.calibration == ds.clip_info(clips[0]).calibration
    frames = list(source)
    assert len(frames) == 16 * len(clips) == 48
    assert [f.sequence for f in frames] == list(range(48))  # keeps counting across clips
    for f in frames:
        assert f.rgb.shape == (360, 640, 3) and f.rgb.dtype == np.uint8
        assert f.depth_mm.shape == (288, 320) and f.depth_mm.dtype == np.uint16
        assert f.thermal_c.shape == (240, 320) and f.thermal_c.dtype == np.float32
    recorded = [a for clip in clips for a in ds.clip_annotations(clip)]
    for f, a in zip(frames, recorded, strict=True):
        assert (f.rgb_ts_us, f.depth_ts_us, f.thermal_ts_us) == (a.rgb_ts_us, a.depth_ts_us, a.thermal_ts_us)
        assert f.annotations["sequence"] == f.sequence and f.annotations["frame"] == a.frame
        assert f.annotations["students"] == a.model_dump(mode="json")["students"]
    assert [f.annotations["clip_id"] for f in frames[::16]] == clips
    first = next(iter(ds.iter_frames(clips[0])))
    np.testing.assert_array_equal(frames[0].rgb, first.rgb)
    np.testing.assert_array_equal(frames[0].thermal_c, first.thermal_c)
    source.close()


def test_one_clip_is_resampled_to_the_published_rate(pristine):
    clip = "train-00000"
    recorded = FolderDataset(pristine).clip_annotations(clip)
    half = list(DatasetSource(pristine, fps=4.0, clip=clip))
    assert len(half) == 8 and [f.sequence for f in half] == list(range(8))
    assert [f.rgb_ts_us for f in half] == [a.rgb_ts_us for a in recorded[::2]]  # same speed, half the frames
    assert {f.annotations["clip_id"] for f in half} == {clip}
    double = list(DatasetSource(pristine, fps=16.0, clip=clip))
    assert len(double) == 32 and [f.sequence for f in double] == list(range(32))
    assert [f.rgb_ts_us for f in double[::2]] == [a.rgb_ts_us for a in recorded]
    assert double[0] is not double[1]  # the agent re-stamps frame sets in place


def test_resample_follows_recorded_timestamps():
    even = [1_000_000 + round(i * 1e6 / 15) for i in range(30)]
    assert resample(even, 15.0, 15.0) == list(range(30))
    assert resample(even, 15.0, 7.5) == list(range(0, 30, 2))
    jitter = [t + (7 if i % 2 else -7) for i, t in enumerate(even)]
    assert resample(jitter, 15.0, 15.0) == list(range(30))
    skipped = even[:10] + even[11:]  # a capture the recording skipped: its slot shows the nearest frame
    picks = resample(skipped, 15.0, 15.0)
    assert len(picks) == 30 and picks[:10] == list(range(10)) and picks[11:] == list(range(10, 29))
    assert resample([], 15.0, 15.0) == []


def test_missing_or_broken_folder_is_camera_unavailable(copy, tmp_path):
    with pytest.raises(CameraUnavailable, match="does not exist"):
        DatasetSource(tmp_path / "nowhere", fps=8.0)
    with pytest.raises(CameraUnavailable, match="needs a data-set folder"):
        DatasetSource(None, fps=8.0)
    with pytest.raises(CameraUnavailable, match="no clip 'train-00099'"):
        DatasetSource(copy, fps=8.0, clip="train-00099")
    (copy / "clips" / "val-00000" / "clip.json").write_text("{")
    with pytest.raises(CameraUnavailable, match=r"clip val-00000 cannot be read: .*not valid JSON"):
        DatasetSource(copy, fps=8.0)
    (copy / "manifest.json").unlink()
    with pytest.raises(CameraUnavailable, match=r"cannot be read: .*manifest\.json: missing"):
        DatasetSource(copy, fps=8.0)


def test_clips_with_another_calibration_are_refused_unless_played_alone(copy):
    path = copy / "clips" / "train-00000" / "clip.json"
    info = json.loads(path.read_text())
    info["calibration"]["working_distance_mm"] += 500.0
    path.write_text(json.dumps(info))
    with pytest.raises(CameraUnavailable, match="clip train-00000 was recorded with another calibration"):
        DatasetSource(copy, fps=8.0)
    alone = DatasetSource(copy, fps=8.0, clip="train-00000")
    assert alone.calibration.working_distance_mm == info["calibration"]["working_distance_mm"]
    assert len(list(alone)) == 16


def test_unreadable_frame_is_skipped_and_leaves_a_sequence_gap(copy):
    (copy / "clips" / "train-00000" / "depth" / "000003.png").unlink()
    frames = list(DatasetSource(copy, fps=8.0, clip="train-00000"))
    assert [f.sequence for f in frames] == [s for s in range(16) if s != 3]


def test_open_source_builds_the_dataset_source(pristine, monkeypatch):
    monkeypatch.setenv("CAPTURE_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CAPTURE_CLASSROOM_ID", "room-1")
    monkeypatch.setenv("CAPTURE_CAMERA_ID", "front")
    monkeypatch.setenv("CAPTURE_SOURCE", "dataset")
    monkeypatch.setenv("CAPTURE_DATASET_PATH", str(pristine))
    monkeypatch.setenv("CAPTURE_FPS", "8")
    source = open_source(CaptureSettings())  # type: ignore[call-arg]
    assert isinstance(source, DatasetSource)
    assert source.frame_rate == 8.0 and source.clips == FolderDataset(pristine).clip_ids()
    monkeypatch.setenv("CAPTURE_DATASET_CLIP", "val-00000")
    one = open_source(CaptureSettings())  # type: ignore[call-arg]
    assert isinstance(one, DatasetSource) and one.clips == ["val-00000"]
    monkeypatch.setenv("CAPTURE_DATASET_PATH", str(pristine.parent / "nowhere"))
    with pytest.raises(CameraUnavailable, match="does not exist"):
        open_source(CaptureSettings())  # type: ignore[call-arg]
