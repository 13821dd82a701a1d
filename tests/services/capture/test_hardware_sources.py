"""The Azure Kinect and thermal camera sources against stand-ins for the hardware (a fake pyk4a
module and a fake VideoCapture, tests/services/capture/hardware_fakes.py): live and MKV
playback, a device missing or unplugged, an RTSP thermal stream, an 8-bit thermal stream, a
thermal camera lost and found again. Each failure is CameraUnavailable with a reason, which the
capture agent reports and retries; a thermal camera that is out never stops a live Kinect."""

from __future__ import annotations

import logging
import sys
import types

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from services.capture.config import CaptureSettings
from services.capture.sources import NO_THERMAL, CameraUnavailable
from services.capture.sources.kinect import KinectSource, kinect_source
from services.capture.sources.thermal import (
    NotRadiometric,
    ThermalCameraLost,
    ThermalSignalLost,
)
from services.common.retry import RETRY_CAP_S
from tests.services.capture.hardware_fakes import (
    THERMAL_C,
    THERMAL_CAL,
    THERMAL_URL,
    FakeThermalRig,
    Waits,
    fake_pyk4a,
    thermal_camera,
)

# --- the thermal camera -------------------------------------------------------------------------


def test_an_rtsp_thermal_camera_is_opened_through_ffmpeg_with_timeouts_and_reads_celsius():
    rig = FakeThermalRig()
    camera = thermal_camera(rig, timeout_s=2.5)
    capture = rig.captures[0]
    assert capture.target == THERMAL_URL  # a URL goes to OpenCV as it is
    assert capture.api == cv2.CAP_FFMPEG
    assert capture.params == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2500, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2500]
    assert capture.props[cv2.CAP_PROP_CONVERT_RGB] == 0  # raw frames, no 8-bit conversion
    assert cv2.CAP_PROP_FOURCC not in capture.props  # Y16 is asked of USB cameras only
    celsius, ts = camera.read()
    assert celsius.dtype == np.float32 and celsius.shape == (24, 32)
    assert np.allclose(celsius, THERMAL_C) and ts > 0
    assert camera.frame_rate == 9.0


def test_a_usb_thermal_camera_is_asked_for_y16():
    for device, target in (("0", 0), ("/dev/video2", "/dev/video2")):
        rig = FakeThermalRig()
        thermal_camera(rig, device)
        capture = rig.captures[0]
        assert capture.target == target and capture.api == cv2.CAP_ANY and capture.params == []
        assert capture.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"Y16 ")


def test_a_thermal_camera_that_does_not_open_is_named_without_its_password():
    with pytest.raises(ThermalSignalLost, match="'rtsp://edge-box/thermal' cannot be opened"):
        thermal_camera(FakeThermalRig(unplugged=True))
    rig = FakeThermalRig(unplugged=True)
    with pytest.raises(CameraUnavailable) as refused:
        thermal_camera(rig, "rtsp://admin:s3cret@10.0.0.7:554/thermal")
    assert "'rtsp://admin:***@10.0.0.7:554/thermal' cannot be opened" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    assert rig.captures[0].target == "rtsp://admin:s3cret@10.0.0.7:554/thermal"  # the camera gets it
    assert rig.captures[0].released


def test_an_8_bit_thermal_stream_is_refused_with_the_reason():
    rig = FakeThermalRig(dtype=np.uint8)
    camera = thermal_camera(rig)
    with pytest.raises(
        NotRadiometric, match="uint8 frames, not radiometric 16-bit; switch the camera to Y16"
    ):
        camera.read()
    assert len(rig.captures) == 1 and camera.losses == 0  # not a loss: reopening would not help


def test_a_thermal_camera_lost_and_found_again_resumes_its_frames(caplog):
    rig, waits = FakeThermalRig(), Waits()
    camera = thermal_camera(rig, reconnect_attempts=5, sleep=waits)
    camera.read()
    # the stream breaks (the backend raises), then the next two cameras opened deliver nothing
    rig.read_errors, rig.failed_reads = 1, 2
    with caplog.at_level(logging.INFO, logger="capture.thermal"):
        celsius, _ = camera.read()
    assert np.allclose(celsius, THERMAL_C)
    assert (camera.losses, camera.recoveries) == (1, 1)
    assert len(rig.captures) == 1 + 3  # reopened three times: two delivered nothing, the third did
    assert all(c.released for c in rig.captures[:-1])  # nothing left open behind
    assert len(waits.delays) == 2 and all(0 <= w <= RETRY_CAP_S for w in waits.delays)  # the one policy
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("thermal camera lost") == 1
    assert messages.count("thermal camera reopen failed") == 2
    assert messages.count("thermal camera found again") == 1
    lost = next(r for r in caplog.records if r.getMessage() == "thermal camera lost")
    assert "stream read error" in lost.error
    assert np.allclose(camera.read()[0], THERMAL_C)  # and on it goes, on the last capture opened
    assert len(rig.captures) == 4


def test_a_thermal_camera_gives_up_after_the_configured_attempts_and_comes_back_later(caplog):
    rig, waits = FakeThermalRig(), Waits()
    camera = thermal_camera(rig, reconnect_attempts=3, sleep=waits)
    camera.read()
    rig.unplugged = True
    with pytest.raises(ThermalCameraLost) as lost:
        camera.read()
    assert str(lost.value).startswith("thermal camera 'rtsp://edge-box/thermal' lost ")
    assert str(lost.value).endswith(
        "not found again after 3 reopen attempts (last: thermal camera 'rtsp://edge-box/thermal' cannot be opened)"
    )
    assert len(rig.captures) == 1 + 3 and len(waits.delays) == 2  # no wait after the last
    with pytest.raises(ThermalCameraLost, match="after 1 reopen attempt "):
        camera.read()  # reported lost: one try per read from now on
    assert len(rig.captures) == 1 + 3 + 1
    rig.unplugged = False
    assert np.allclose(camera.read()[0], THERMAL_C)
    assert (camera.losses, camera.recoveries) == (1, 1)
    gave_up = [r for r in caplog.records if r.getMessage() == "thermal camera not found again"]
    assert [r.levelno for r in gave_up] == [logging.ERROR]  # said once, not at every later try


def test_a_thermal_camera_with_no_reconnect_attempts_reports_the_loss_at_once():
    rig = FakeThermalRig()
    camera = thermal_camera(rig, reconnect_attempts=0)
    rig.failed_reads = 1
    with pytest.raises(ThermalCameraLost, match="after 0 reopen attempts"):
        camera.read()
    assert len(rig.captures) == 1
    with pytest.raises(ValueError, match="reconnect_attempts must be 0 or more"):
        thermal_camera(rig, reconnect_attempts=-1)


def test_a_thermal_video_file_is_read_to_its_end_and_never_reopened():
    rig = FakeThermalRig()
    camera = thermal_camera(rig, "lecture-thermal.avi")
    assert rig.captures[0].api == cv2.CAP_ANY and camera.reconnect_attempts == 0
    camera.read()
    rig.unplugged = True  # the video ended
    with pytest.raises(ThermalSignalLost, match="delivered no frame"):
        camera.read()
    assert len(rig.captures) == 1  # reopening would start the video again, out of step with the MKV


# --- the Kinect ---------------------------------------------------------------------------------


def kinect(rig: FakeThermalRig | None = None, **kwargs) -> KinectSource:
    pyk4a_kwargs = {
        k: kwargs.pop(k) for k in ("lost_after", "start_error", "broken_at", "devices") if k in kwargs
    }
    camera = thermal_camera(rig or FakeThermalRig(), reconnect_attempts=kwargs.pop("reconnect_attempts", 2))
    return KinectSource(
        thermal=camera, thermal_calibration=THERMAL_CAL, pyk4a_module=fake_pyk4a(**pyk4a_kwargs), **kwargs
    )


def test_a_live_kinect_with_its_thermal_camera_gives_frame_sets():
    devices: list = []
    source = kinect(devices=devices, device_id=1)
    assert source.live and source.frame_rate == 15.0 and source.degraded == ""
    assert devices[0].device_id == 1 and devices[0].config.synchronized_images_only
    assert source.calibration.rgb.width == 64 and source.calibration.depth.intrinsics.width == 32
    assert source.calibration.depth.to_rgb.translation_mm == pytest.approx((-32.0, -2.0, 4.0))
    assert source.calibration.thermal == THERMAL_CAL
    frames = [f for _, f in zip(range(3), source, strict=False)]
    assert [f.sequence for f in frames] == [0, 1, 2]
    first = frames[0]
    assert first.rgb.shape == (36, 64, 3) and first.rgb[0, 0, 2] == 200  # BGRA -> BGR
    assert first.depth_mm.dtype == np.uint16 and np.allclose(first.thermal_c, THERMAL_C)
    assert frames[1].rgb_ts_us - first.rgb_ts_us == 66_666  # the device's timeline, on the wall clock
    assert first.depth_ts_us - first.rgb_ts_us == 100
    assert abs(first.thermal_ts_us - first.rgb_ts_us) < 5_000_000  # both on the wall clock
    source.close()
    assert devices[0].stopped


def test_a_kinect_that_is_not_there_is_named_and_its_thermal_camera_released():
    rig = FakeThermalRig()
    with pytest.raises(
        CameraUnavailable, match="Azure Kinect device 0 cannot be opened: K4A device not found"
    ):
        kinect(rig, start_error="K4A device not found")
    assert rig.captures[0].released  # free for the agent's next attempt to open


def test_a_kinect_unplugged_mid_run_stops_the_source_with_a_reason():
    source = kinect(lost_after=3)
    taken = []
    with pytest.raises(CameraUnavailable, match="stopped delivering frames: K4A_WAIT_RESULT_FAILED"):
        for frame in source:
            taken.append(frame.sequence)
    assert taken == [0, 1, 2]
    with pytest.raises(RuntimeError, match="device not connected"):
        source.close()  # the agent closes it quietly (test_camera_failures.py)
    assert source.thermal.capture is None  # the thermal camera is closed all the same


def test_a_live_kinect_keeps_going_while_its_thermal_camera_is_out():
    rig = FakeThermalRig()
    source = kinect(rig, reconnect_attempts=2, thermal_retry_s=3600)
    frames = iter(source)
    assert np.allclose(next(frames).thermal_c, THERMAL_C)
    rig.unplugged = True
    out = next(frames)  # the thermal camera is reopened twice, then reported lost
    assert out.sequence == 1 and out.thermal_c is NO_THERMAL and out.rgb.shape == (36, 64, 3)
    assert "not found again after 2 reopen attempts" in source.degraded
    opened = len(rig.captures)
    assert [next(frames).thermal_c is NO_THERMAL for _ in range(3)] == [True] * 3
    assert len(rig.captures) == opened  # not tried again before thermal_retry_s
    source.close()


def test_a_live_kinect_takes_its_thermal_camera_back_when_it_returns():
    rig = FakeThermalRig()
    source = kinect(rig, reconnect_attempts=1, thermal_retry_s=0)
    frames = iter(source)
    next(frames)
    rig.unplugged = True
    assert next(frames).thermal_c is NO_THERMAL
    assert next(frames).thermal_c is NO_THERMAL  # one reopen attempt per try while it is out
    rig.unplugged = False
    back = next(frames)
    assert back.sequence == 3 and np.allclose(back.thermal_c, THERMAL_C)
    assert source.degraded == "" and source.thermal.recoveries == 1
    source.close()


def test_a_live_kinect_starts_while_its_thermal_camera_is_missing():
    rig = FakeThermalRig(unplugged=True)
    camera = thermal_camera(rig, must_open=False, reconnect_attempts=2)
    source = KinectSource(
        thermal=camera, thermal_calibration=THERMAL_CAL, thermal_retry_s=0, pyk4a_module=fake_pyk4a()
    )
    frames = iter(source)
    assert next(frames).thermal_c is NO_THERMAL
    assert "cannot be opened" in source.degraded
    rig.unplugged = False
    assert np.allclose(next(frames).thermal_c, THERMAL_C)
    source.close()


def test_an_8_bit_thermal_stream_beside_a_live_kinect_is_named_and_left_out():
    source = kinect(FakeThermalRig(dtype=np.uint8))
    frame = next(iter(source))
    assert frame.thermal_c is NO_THERMAL and "not radiometric 16-bit" in source.degraded
    source.close()


def test_an_mkv_recording_plays_to_its_end(tmp_path):
    mkv = tmp_path / "lecture.mkv"
    mkv.write_bytes(b"recording")
    rig = FakeThermalRig()
    source = KinectSource(
        thermal=thermal_camera(rig, str(tmp_path / "lecture-thermal.avi")),
        thermal_calibration=THERMAL_CAL,
        mkv_path=mkv,
        pyk4a_module=fake_pyk4a(captures=4, mjpg=True),
    )
    frames = list(source)
    assert not source.live and len(frames) == 4
    assert frames[0].rgb.shape == (36, 64, 3)  # MJPG decoded
    assert all(f.thermal_ts_us == f.rgb_ts_us for f in frames)  # a recording's thermal video in lock-step
    assert all(np.allclose(f.thermal_c, THERMAL_C) for f in frames)
    source.close()
    assert rig.captures[0].released


def test_an_mkv_recording_that_is_missing_or_unreadable_is_named(tmp_path):
    with pytest.raises(CameraUnavailable, match="does not exist"):
        KinectSource(
            thermal=thermal_camera(FakeThermalRig()),
            thermal_calibration=THERMAL_CAL,
            mkv_path=tmp_path / "none.mkv",
            pyk4a_module=fake_pyk4a(),
        )
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"not matroska")
    with pytest.raises(CameraUnavailable, match=r"broken\.mkv cannot be opened: K4A_RESULT_FAILED"):
        KinectSource(
            thermal=thermal_camera(FakeThermalRig()),
            thermal_calibration=THERMAL_CAL,
            mkv_path=broken,
            pyk4a_module=fake_pyk4a(open_error="K4A_RESULT_FAILED"),
        )


def test_an_mkv_whose_thermal_video_ends_first_stops_with_the_reason(tmp_path):
    mkv = tmp_path / "lecture.mkv"
    mkv.write_bytes(b"recording")
    rig = FakeThermalRig()
    rig.loss_at_read = 3  # the thermal video has two frames, the MKV four
    source = KinectSource(
        thermal=thermal_camera(rig, "lecture-thermal.avi"),
        thermal_calibration=THERMAL_CAL,
        mkv_path=mkv,
        pyk4a_module=fake_pyk4a(captures=4),
    )
    taken = []
    with pytest.raises(ThermalSignalLost, match="delivered no frame"):
        for frame in source:
            taken.append(frame.sequence)
    assert taken == [0, 1] and len(rig.captures) == 1  # never paired with a restarted video


def test_without_pyk4a_the_source_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyk4a(name, *args, **kwargs):
        if name == "pyk4a":
            raise ImportError("No module named 'pyk4a'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyk4a)
    rig = FakeThermalRig()
    with pytest.raises(CameraUnavailable, match=r"pip install '\.\[kinect\]'"):
        KinectSource(thermal=thermal_camera(rig), thermal_calibration=THERMAL_CAL)
    assert rig.captures[0].released


# --- from the settings --------------------------------------------------------------------------


def settings(**values) -> CaptureSettings:
    return CaptureSettings(kafka_bootstrap="127.0.0.1:9", classroom_id="room-1", camera_id="front", **values)


@pytest.fixture()
def edge_box(monkeypatch, tmp_path):
    """pyk4a, the thermal camera's VideoCapture and the campus file of an edge box, faked."""
    devices: list = []
    rig = FakeThermalRig()
    monkeypatch.setitem(sys.modules, "pyk4a", fake_pyk4a(captures=2, devices=devices))
    monkeypatch.setattr(cv2, "VideoCapture", rig.open)
    camera = types.SimpleNamespace(calibration=types.SimpleNamespace(thermal=THERMAL_CAL))
    campus = types.SimpleNamespace(
        camera=lambda room, cam: camera if (room, cam) == ("room-1", "front") else None
    )
    monkeypatch.setattr("services.common.campus.load_campus", lambda path: campus)
    return types.SimpleNamespace(rig=rig, devices=devices, campus_file=tmp_path / "campus.yaml")


def test_the_kinect_source_is_built_from_the_capture_settings(edge_box, tmp_path):
    source = kinect_source(
        settings(
            source="kinect",
            campus_file=edge_box.campus_file,
            kinect_device=2,
            thermal_device="rtsp://edge-box/thermal",
            thermal_reconnect_attempts=7,
            thermal_timeout_s=1.5,
            reconnect_s=3.0,
        )
    )
    assert source.live and edge_box.devices[0].device_id == 2
    assert source.thermal.reconnect_attempts == 7 and source.thermal_retry_s == 3.0
    assert edge_box.rig.captures[0].params == [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        1500,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        1500,
    ]
    source.close()
    edge_box.rig.unplugged = True  # live, the Kinect starts without its thermal camera
    source = kinect_source(settings(source="kinect", campus_file=edge_box.campus_file, thermal_device="0"))
    assert next(iter(source)).thermal_c is NO_THERMAL
    source.close()
    mkv = tmp_path / "lecture.mkv"
    mkv.write_bytes(b"recording")
    recorded = settings(
        source="mkv", campus_file=edge_box.campus_file, mkv_path=mkv, thermal_video=tmp_path / "t.avi"
    )
    with pytest.raises(CameraUnavailable, match=r"t\.avi' cannot be opened"):
        kinect_source(recorded)  # a recording's thermal video must be there
    edge_box.rig.unplugged = False
    source = kinect_source(recorded)
    assert not source.live and source.thermal.reconnect_attempts == 0
    source.close()


def test_thermal_settings_that_cannot_work_get_one_clear_error():
    with pytest.raises(
        ValidationError, match="source=kinect needs its thermal camera in CAPTURE_THERMAL_DEVICE"
    ):
        settings(source="kinect")
    with pytest.raises(ValidationError, match=r"is neither a USB camera .* nor a stream URL"):
        settings(source="kinect", thermal_device="thermal.avi")
    with pytest.raises(ValidationError, match="source=mkv needs the thermal video"):
        settings(source="mkv", mkv_path="lecture.mkv", thermal_device="0")
    with pytest.raises(ValidationError, match="thermal_reconnect_attempts"):
        settings(source="kinect", thermal_device="0", thermal_reconnect_attempts=-1)
    with pytest.raises(ValidationError, match="thermal_timeout_s"):
        settings(source="kinect", thermal_device="0", thermal_timeout_s=0)
    assert settings(source="kinect", thermal_device="rtsp://10.0.0.7/thermal").thermal_reconnect_attempts == 5
