"""Recording converter: a stand-in for pyk4a's playback (no Kinect file reader here) and a real
thermal video written with cv2.VideoWriter."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest

from services.cli.main import main
from services.dataset.check import check_dataset
from services.dataset.convert import convert_recording, fit_opencv_distortion
from services.dataset.format import AnnotationError, DatasetError, FormatError, StudentAnnotation
from services.dataset.reader import FolderDataset
from services.simulator.geometry import rotation_x

R_DEPTH = rotation_x(np.radians(6.0))
T_DEPTH = np.array([-32.0, -2.0, 4.0])
COLOUR_K = np.array([[610.0, 0, 639.2], [0, 609.5, 359.1], [0, 0, 1]])
DEPTH_K = np.array([[252.0, 0, 160.5], [0, 252.3, 164.0], [0, 0, 1]])
COLOUR_DIST = np.array([0.08, -0.05, 0.001, -0.0004, 0.01, 0.0, 0.0, 0.0])  # k1 k2 p1 p2 k3 k4 k5 k6
DEPTH_DIST = np.array([0.5, -0.1, 0.0002, 0.0001, -0.02, 0.85, -0.05, -0.01])  # rational, like the device
FRAME_US = 66_667  # 15 fps


class FakeCalibration:
    """pyk4a.Calibration's public surface used by the converter."""

    def get_camera_matrix(self, camera):
        return COLOUR_K if camera == 1 else DEPTH_K

    def get_distortion_coefficients(self, camera):
        return COLOUR_DIST if camera == 1 else DEPTH_DIST

    def depth_to_color_3d(self, point):
        return tuple(R_DEPTH @ np.asarray(point, float) + T_DEPTH)


class FakeCapture:
    def __init__(self, color, depth, ts):
        self.color = color
        self.depth = depth
        self.color_timestamp_usec = ts
        self.depth_timestamp_usec = ts + 120


class FakePlayback:
    """Stands in for pyk4a.PyK4APlayback: open/close, configuration, calibration, get_next_capture."""

    def __init__(self, captures):
        self.captures = list(captures)
        self.configuration = {"color_format": 0, "camera_fps": 1}  # MJPG, 15 fps
        self.calibration = FakeCalibration()
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def close(self):
        self.closed = True

    def get_next_capture(self):
        if not self.captures:
            raise EOFError()
        return self.captures.pop(0)


def _depth(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:48, 0:64]
    return (2000 + 10 * xx + 5 * yy + i).astype(np.uint16)


def _colour(i: int) -> np.ndarray:
    img = np.zeros((72, 128, 3), np.uint8)
    img[:, :, 1] = 40 + 10 * i
    cv2.rectangle(img, (10 + i, 10), (40 + i, 50), (200, 100, 50), -1)
    return img


def _captures(n: int):
    out = []
    for i in range(n):
        ok, jpg = cv2.imencode(".jpg", _colour(i), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        out.append(FakeCapture(jpg.reshape(-1), _depth(i), 5_000 + i * FRAME_US))
    out.insert(3, FakeCapture(None, _depth(99), 5_000 + 2 * FRAME_US + 1000))  # an incomplete capture
    return out


def _thermal_video(path, frames: int = 12, fps: float = 9.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (80, 60), True)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((60, 80, 3), 50 + 10 * i, np.uint8))
    writer.release()


def _annotation_file(path, clip_id="room101-a", split="train", student="S01"):
    doc = {
        "format": "smartclass-recording",
        "version": 1,
        "clip_id": clip_id,
        "split": split,
        "classroom_id": "room101",
        "analysis_size": [128, 72],
        "start_time_us": 1_800_000_000_000_000,
        "seats": [{"id": "r1c1", "box": [0, 0, 64, 72]}, {"id": "r1c2", "box": [64, 0, 128, 72]}],
        "students": [{"id": student, "seat": "r1c1"}, {"id": "X1", "seat": "r1c2", "extra": True}],
        "thermal": {
            "intrinsics": {"width": 80, "height": 60, "fx": 75.0, "fy": 75.0, "cx": 39.5, "cy": 29.5},
            "to_rgb": {"translation_mm": [70.0, 0.0, 0.0]},
            "time_offset_us": 2500,
            "start_us": 0,
            "encoding": "linear8",
            "scale_c": 0.1,
            "offset_c": 10.0,
        },
        "labels": [
            {"student": student, "behaviour": "note_taking", "start_s": 0.0, "end_s": 0.5},
            {"student": student, "behaviour": "hand_raising", "start_s": 0.5, "end_s": 5.0},
        ],
        "keypoints": [{"frame": 2, "student": student, "points": [[10.0 + k, 20.0, 2] for k in range(17)]}],
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture()
def recording(tmp_path):
    video = tmp_path / "thermal.avi"
    _thermal_video(video)
    mkv = tmp_path / "rec.mkv"
    mkv.write_bytes(b"stand-in: the playback object is injected")
    return mkv, video, _annotation_file(tmp_path / "rec.json")


def test_converts_colour_depth_thermal_labels_and_calibration(recording, tmp_path):
    mkv, video, ann = recording
    out = tmp_path / "data"
    playback = FakePlayback(_captures(20))
    info = convert_recording(
        mkv=mkv, thermal_video=video, annotations=ann, out=out, playback_factory=lambda p: playback
    )
    assert playback.opened and playback.closed
    # 12 thermal frames at 9 fps cover 1.33 s: 20 colour frames at 15 fps (one incomplete capture skipped).
    assert info.frames == 20 and info.fps == 15.0 and info.source["skipped_incomplete_captures"] == 1
    ds = FolderDataset(out)
    calib = ds.clip_info("room101-a").calibration
    r, t = calib.depth.to_rgb.matrix()
    np.testing.assert_allclose(r, R_DEPTH, atol=1e-9)
    np.testing.assert_allclose(t, T_DEPTH, atol=1e-9)
    assert (calib.rgb.fx, calib.rgb.cy, calib.rgb.width) == (610.0, 359.1, 128)
    np.testing.assert_allclose(calib.rgb.distortion, [0.08, -0.05, 0.001, -0.0004, 0.01], atol=1e-12)
    assert calib.thermal.time_offset_us == 2500
    annotations = ds.clip_annotations("room101-a")
    frames = list(ds.iter_frames("room101-a"))
    for k, (frame, a) in enumerate(zip(frames, annotations, strict=True)):
        np.testing.assert_array_equal(frame.depth_mm, _depth(k))
        assert np.abs(frame.rgb.astype(int) - _colour(k)).mean() < 3.0  # JPEG round trip
        nearest = round(k * FRAME_US * 9.0 / 1e6)  # thermal frame closest on the colour clock
        np.testing.assert_allclose(frame.thermal_c, 10.0 + 0.1 * (50 + 10 * nearest), atol=0.006)
        assert a.rgb_ts_us == 1_800_000_000_000_000 + k * FRAME_US
        assert a.thermal_ts_us == 1_800_000_000_000_000 + round(nearest * 1e6 / 9.0) + 2500
        subject = next(s for s in a.students if s.student_id == "S01")
        assert subject.label == ("note_taking" if k * FRAME_US < 500_000 else "hand_raising")
        assert (subject.keypoints is not None) == (k == 2)
        assert next(s for s in a.students if s.student_id == "X1").label is None
    assert check_dataset(out, deep=True).ok
    assert ds.splits["train"] == ["S01"]


def test_second_recording_extends_the_manifest_and_splits_stay_disjoint(recording, tmp_path):
    mkv, video, ann = recording
    out = tmp_path / "data"
    convert_recording(
        mkv=mkv,
        thermal_video=video,
        annotations=ann,
        out=out,
        playback_factory=lambda p: FakePlayback(_captures(6)),
    )
    other = _annotation_file(tmp_path / "b.json", clip_id="room101-b", split="test", student="S02")
    convert_recording(
        mkv=mkv,
        thermal_video=video,
        annotations=other,
        out=out,
        playback_factory=lambda p: FakePlayback(_captures(6)),
    )
    ds = FolderDataset(out)
    assert set(ds.clip_ids()) == {"room101-a", "room101-b"}
    assert ds.splits["test"] == ["S02"]
    clash = _annotation_file(tmp_path / "c.json", clip_id="room101-c", split="test", student="S01")
    with pytest.raises(DatasetError, match="cannot add room101-c: student S01 is in train already"):
        convert_recording(
            mkv=mkv,
            thermal_video=video,
            annotations=clash,
            out=out,
            playback_factory=lambda p: FakePlayback(_captures(6)),
        )
    assert not (out / "clips" / "room101-c").exists()


def test_bad_annotation_file_and_missing_inputs(recording, tmp_path):
    mkv, video, ann = recording
    doc = json.loads(ann.read_text())
    doc["labels"][0]["behaviour"] = "napping"
    ann.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="unknown behaviour 'napping'"):
        convert_recording(
            mkv=mkv,
            thermal_video=video,
            annotations=ann,
            out=tmp_path / "o",
            playback_factory=lambda p: FakePlayback([]),
        )
    with pytest.raises(DatasetError, match="thermal video missing"):
        convert_recording(
            mkv=mkv,
            thermal_video=tmp_path / "none.avi",
            annotations=_annotation_file(ann),
            out=tmp_path / "o",
        )


def test_keypoint_visibility_outside_0_1_2_is_a_clear_error(recording, tmp_path, capsys):
    mkv, video, ann = recording
    doc = json.loads(ann.read_text())
    doc["keypoints"][0]["points"][5][2] = 3
    ann.write_text(json.dumps(doc))
    playback = FakePlayback(_captures(6))
    with pytest.raises(AnnotationError) as caught:
        convert_recording(
            mkv=mkv,
            thermal_video=video,
            annotations=ann,
            out=tmp_path / "o",
            playback_factory=lambda p: playback,
        )
    message = str(caught.value)
    assert message.startswith(f"{ann}: keypoints.0.points.5 (frame 2, student S01)")
    assert "visibility 3 is not 0, 1 or 2" in message
    assert not playback.opened and not (tmp_path / "o").exists()  # refused before anything is read
    # The CLI prints it as one line and exits 2 (no pyk4a needed: the file is checked first).
    argv = ["dataset", "convert", "--mkv", str(mkv), "--thermal", str(video), "--annotations", str(ann)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == f"classroom dataset convert: {message}\n"


def test_cli_prints_validation_problems_as_one_line(recording, tmp_path, capsys, monkeypatch):
    mkv, video, ann = recording

    def invalid(**kwargs):
        StudentAnnotation(student_id="S01", keypoints=[(0.0, 0.0, 7)] * 17)

    monkeypatch.setattr("services.dataset.convert.convert_recording", invalid)
    argv = ["dataset", "convert", "--mkv", str(mkv), "--thermal", str(video), "--annotations", str(ann)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "classroom dataset convert: StudentAnnotation: (top): Value error, keypoint visibility 7"
    )
    assert main(["dataset", "info", "sim:nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("classroom dataset info: ") and err.count("\n") == 1


@pytest.mark.skipif(importlib.util.find_spec("pyk4a") is not None, reason="pyk4a is installed here")
def test_without_pyk4a_the_error_says_how_to_get_it(recording, tmp_path):
    mkv, video, ann = recording
    with pytest.raises(DatasetError, match=r"needs pyk4a.*smartclass\[kinect\]"):
        convert_recording(mkv=mkv, thermal_video=video, annotations=ann, out=tmp_path / "o")


def test_distortion_refit_is_exact_for_opencv_models_and_close_for_rational_ones():
    coeffs, rms = fit_opencv_distortion(COLOUR_DIST, fx=610.0)
    np.testing.assert_allclose(coeffs, [0.08, -0.05, 0.001, -0.0004, 0.01], atol=1e-12)
    assert rms < 1e-9
    _, rms_rational = fit_opencv_distortion(DEPTH_DIST, fx=252.0)
    assert rms_rational < 0.5  # pixels, over the central field
