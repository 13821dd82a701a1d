"""The Azure Kinect and thermal camera sources against stand-ins for the hardware (a fake pyk4a
module and a fake VideoCapture): live and MKV playback, a device missing or unplugged, an 8-bit
thermal stream, a thermal camera lost and found again. Each failure is CameraUnavailable with a
reason, which the capture agent reports and retries; the source never crashes the agent."""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from services.capture.sources import CameraUnavailable
from services.capture.sources.kinect import KinectSource
from services.capture.sources.thermal import ThermalCamera
from services.common.calibration import Extrinsics, Intrinsics, SensorCalibration

THERMAL_CAL = SensorCalibration(
    intrinsics=Intrinsics(width=32, height=24, fx=30, fy=30, cx=15.5, cy=11.5), to_rgb=Extrinsics()
)


class FakeVideoCapture:
    """cv2.VideoCapture of a radiometric camera: ``frames`` to deliver, then it is lost."""

    def __init__(self, target, *, frames=3, dtype=np.uint16, opened=True):
        self.target, self.left, self.dtype, self.opened = target, frames, dtype, opened
        self.props: dict[int, float] = {}

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return 9.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        if self.dtype == np.uint16:
            return True, np.full((24, 32), 30_715, np.uint16)  # 307.15 K = 34 °C in centi-kelvin
        return True, np.full((24, 32, 3), 128, np.uint8)

    def release(self):
        self.opened = False


def thermal(**kwargs) -> ThermalCamera:
    return ThermalCamera(
        "rtsp://edge-box/thermal", open_capture=lambda target: FakeVideoCapture(target, **kwargs)
    )


def test_a_radiometric_stream_reads_in_celsius_until_it_is_lost():
    camera = thermal(frames=2)
    assert camera.capture.target == "rtsp://edge-box/thermal"  # a URL goes to OpenCV as it is
    assert camera.capture.props[cv2.CAP_PROP_CONVERT_RGB] == 0  # raw frames, no 8-bit conversion
    celsius, ts = camera.read()
    assert celsius.dtype == np.float32 and np.allclose(celsius, 34.0) and ts > 0
    camera.read()
    with pytest.raises(CameraUnavailable, match="delivered no frame"):
        camera.read()
    again = thermal(frames=1)  # found again: the agent opens it anew after reconnect_s
    assert np.allclose(again.read()[0], 34.0)


def test_an_8_bit_thermal_stream_is_refused_with_the_reason():
    with pytest.raises(CameraUnavailable, match="not radiometric 16-bit; switch the camera to Y16"):
        thermal(dtype=np.uint8).read()


def test_a_thermal_camera_that_does_not_open_is_named():
    with pytest.raises(CameraUnavailable, match="'rtsp://edge-box/thermal' cannot be opened"):
        thermal(opened=False)


def test_a_usb_thermal_camera_is_asked_for_y16():
    camera = ThermalCamera("0", open_capture=lambda target: FakeVideoCapture(target))
    assert camera.capture.target == 0
    assert camera.capture.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"Y16 ")


# --- the Kinect ---------------------------------------------------------------------------------


@dataclass
class FakeCapture:
    k: int
    mjpg: bool = False
    color: np.ndarray = field(init=False)
    depth: np.ndarray = field(init=False)

    def __post_init__(self):
        bgra = np.zeros((36, 64, 4), np.uint8)
        bgra[..., 2] = 200
        self.color = cv2.imencode(".jpg", bgra[..., :3])[1].ravel() if self.mjpg else bgra
        self.depth = np.full((28, 32), 2000 + self.k, np.uint16)

    @property
    def color_timestamp_usec(self):
        return 1_000_000 + self.k * 66_666

    @property
    def depth_timestamp_usec(self):
        return 1_000_100 + self.k * 66_666


class FakeCalibration:
    def get_camera_matrix(self, camera):
        return np.array([[50.0, 0, 31.5], [0, 50.0, 17.5], [0, 0, 1]])

    def get_distortion_coefficients(self, camera):
        return np.zeros(8)

    def depth_to_color_3d(self, point):
        return tuple(np.asarray(point, float) + np.array([-32.0, -2.0, 4.0]))


def fake_pyk4a(*, captures=3, start_error=None, lost_after=None, mjpg=False):
    """A stand-in for the pyk4a module: ``captures`` frames, a missing device, an unplugged one."""

    class Device:
        calibration = FakeCalibration()

        def __init__(self, config=None, device_id=0):
            self.k = 0

        def start(self):
            if start_error:
                raise RuntimeError(start_error)

        def stop(self):
            pass

        def get_capture(self):
            if lost_after is not None and self.k >= lost_after:
                raise RuntimeError("K4A_WAIT_RESULT_FAILED: device disconnected")
            self.k += 1
            return FakeCapture(self.k - 1)

    class Playback(Device):
        def __init__(self, path):
            super().__init__()
            self.configuration = {"camera_fps": 1}

        def open(self):
            pass

        def close(self):
            pass

        def get_next_capture(self):
            if self.k >= captures:
                raise EOFError
            self.k += 1
            return FakeCapture(self.k - 1, mjpg=mjpg)

    enum = types.SimpleNamespace
    return types.SimpleNamespace(
        PyK4A=Device,
        PyK4APlayback=Playback,
        Config=lambda **kw: types.SimpleNamespace(**kw),
        ColorResolution=enum(RES_1080P=1),
        ImageFormat=enum(COLOR_BGRA32=3),
        DepthMode=enum(NFOV_2X2BINNED=1),
        FPS=enum(FPS_15=1),
        CalibrationType=enum(COLOR=1, DEPTH=0),
    )


def test_a_live_kinect_with_its_thermal_camera_gives_frame_sets():
    source = KinectSource(
        thermal=thermal(frames=10), thermal_calibration=THERMAL_CAL, pyk4a_module=fake_pyk4a()
    )
    assert source.live and source.frame_rate == 15.0
    assert source.calibration.rgb.width == 64 and source.calibration.depth.intrinsics.width == 32
    assert source.calibration.depth.to_rgb.translation_mm == pytest.approx((-32.0, -2.0, 4.0))
    frames = [f for _, f in zip(range(3), source, strict=False)]
    assert [f.sequence for f in frames] == [0, 1, 2]
    first = frames[0]
    assert first.rgb.shape == (36, 64, 3) and first.rgb[0, 0, 2] == 200  # BGRA -> BGR
    assert first.depth_mm.dtype == np.uint16 and np.allclose(first.thermal_c, 34.0)
    assert frames[1].rgb_ts_us - first.rgb_ts_us == 66_666  # the device's timeline, on the wall clock
    assert first.depth_ts_us - first.rgb_ts_us == 100
    source.close()


def test_a_kinect_that_is_not_there_is_named():
    with pytest.raises(
        CameraUnavailable, match="Azure Kinect device 0 cannot be opened: K4A device not found"
    ):
        KinectSource(
            thermal=thermal(),
            thermal_calibration=THERMAL_CAL,
            pyk4a_module=fake_pyk4a(start_error="K4A device not found"),
        )


def test_a_kinect_unplugged_mid_run_stops_the_source_with_a_reason():
    source = KinectSource(
        thermal=thermal(frames=10), thermal_calibration=THERMAL_CAL, pyk4a_module=fake_pyk4a(lost_after=3)
    )
    taken = []
    with pytest.raises(CameraUnavailable, match="stopped delivering frames: K4A_WAIT_RESULT_FAILED"):
        for frame in source:
            taken.append(frame.sequence)
    assert taken == [0, 1, 2]


def test_an_mkv_recording_plays_to_its_end(tmp_path):
    mkv = tmp_path / "lecture.mkv"
    mkv.write_bytes(b"recording")
    source = KinectSource(
        thermal=thermal(frames=10),
        thermal_calibration=THERMAL_CAL,
        mkv_path=mkv,
        pyk4a_module=fake_pyk4a(captures=4, mjpg=True),
    )
    frames = list(source)
    assert not source.live and len(frames) == 4
    assert frames[0].rgb.shape == (36, 64, 3)  # MJPG decoded
    assert all(f.thermal_ts_us == f.rgb_ts_us for f in frames)  # a recording's thermal video in lock-step
    with pytest.raises(CameraUnavailable, match="does not exist"):
        KinectSource(
            thermal=thermal(),
            thermal_calibration=THERMAL_CAL,
            mkv_path=tmp_path / "none.mkv",
            pyk4a_module=fake_pyk4a(),
        )


def test_without_pyk4a_the_source_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyk4a(name, *args, **kwargs):
        if name == "pyk4a":
            raise ImportError("No module named 'pyk4a'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyk4a)
    with pytest.raises(CameraUnavailable, match=r"pip install '\.\[kinect\]'"):
        KinectSource(thermal=thermal(), thermal_calibration=THERMAL_CAL)
