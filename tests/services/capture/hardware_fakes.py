"""Stand-ins for the capture agent's hardware: a radiometric thermal camera behind
cv2.VideoCapture (``FakeThermalRig``) and the pyk4a module of an Azure Kinect (``fake_pyk4a``).
Each can be broken the way real ones break: unplugged, refusing to open, dropping reads."""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import cv2
import numpy as np

from services.capture.sources.thermal import ThermalCamera
from services.common.calibration import Extrinsics, Intrinsics, SensorCalibration

THERMAL_URL = "rtsp://edge-box/thermal"
THERMAL_C = 34.0  # what every radiometric frame of the rig reads: 307.15 K in centi-kelvin
THERMAL_CAL = SensorCalibration(
    intrinsics=Intrinsics(width=32, height=24, fx=30, fy=30, cx=15.5, cy=11.5), to_rgb=Extrinsics()
)


class FakeThermalRig:
    """A thermal camera and its cable; ``open`` is ThermalCamera's ``open_capture``.

    Every capture opened is kept in ``captures``. A test breaks the camera with ``unplugged``
    (opens refused, reads fail), ``refused_opens`` (the next N opens fail), ``failed_reads``
    (the next N reads deliver nothing), ``read_errors`` (the next N reads raise cv2.error), or
    ``loss_at_read`` (that read, counted from the first, fails and the next
    ``refused_opens_after_loss`` opens are refused: a loss scripted ahead for a reader thread).
    """

    def __init__(self, *, dtype: type = np.uint16, unplugged: bool = False) -> None:
        self.dtype = dtype
        self.unplugged = unplugged
        self.refused_opens = 0
        self.failed_reads = 0
        self.read_errors = 0
        self.loss_at_read: int | None = None
        self.refused_opens_after_loss = 0
        self.reads = 0
        self.captures: list[FakeVideoCapture] = []

    def open(self, target, api, params) -> FakeVideoCapture:
        refused = self.unplugged or self.refused_opens > 0
        self.refused_opens = max(0, self.refused_opens - 1)
        capture = FakeVideoCapture(self, target, api, params, opened=not refused)
        self.captures.append(capture)
        return capture

    def deliver(self):
        self.reads += 1
        if self.read_errors > 0:
            self.read_errors -= 1
            raise cv2.error("VIDEOIO(FFMPEG): stream read error")
        if self.reads == self.loss_at_read:
            self.refused_opens = self.refused_opens_after_loss
            return False, None
        if self.unplugged:
            return False, None
        if self.failed_reads > 0:
            self.failed_reads -= 1
            return False, None
        if self.dtype == np.uint16:
            return True, np.full((24, 32), 30_715, np.uint16)  # 307.15 K = 34 °C in centi-kelvin
        return True, np.full((24, 32, 3), 128, np.uint8)


class FakeVideoCapture:
    """cv2.VideoCapture on a ``FakeThermalRig``: what it was opened with, and what was set."""

    def __init__(self, rig: FakeThermalRig, target, api, params, *, opened: bool) -> None:
        self.rig, self.target, self.api, self.params, self.opened = rig, target, api, params, opened
        self.props: dict[int, float] = {}
        self.released = False

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return 9.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if not self.opened:
            return False, None
        return self.rig.deliver()

    def release(self):
        self.opened, self.released = False, True


class Waits:
    """ThermalCamera's ``sleep``: records the backoff delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def thermal_camera(rig: FakeThermalRig, device: str = THERMAL_URL, **kwargs) -> ThermalCamera:
    kwargs.setdefault("sleep", Waits())
    return ThermalCamera(device, open_capture=rig.open, **kwargs)


# --- the Kinect ---------------------------------------------------------------------------------


@dataclass
class FakeCapture:
    k: int
    mjpg: bool = False
    broken: bool = False
    depth: np.ndarray = field(init=False)
    _color: np.ndarray = field(init=False)

    def __post_init__(self):
        bgra = np.zeros((36, 64, 4), np.uint8)
        bgra[..., 2] = 200
        self._color = cv2.imencode(".jpg", bgra[..., :3])[1].ravel() if self.mjpg else bgra
        self.depth = np.full((28, 32), 2000 + self.k, np.uint16)

    @property
    def color(self):
        if self.broken:  # what the SDK's wrapper raises on a capture it cannot convert
            raise ValueError("cannot reshape array of size 0 into shape (1080,1920,4)")
        return self._color

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


def fake_pyk4a(
    *,
    captures=3,
    start_error=None,
    open_error=None,
    lost_after=None,
    broken_at=None,
    mjpg=False,
    devices=None,
):
    """A stand-in for the pyk4a module: a live device (endless unless ``lost_after``: unplugged
    after that many captures, when stopping it fails too), a recording of ``captures``, a
    missing device (``start_error``), a recording it cannot open (``open_error``), a capture the
    wrapper cannot convert (``broken_at``). Every device made is appended to ``devices``."""

    class Device:
        calibration = FakeCalibration()

        def __init__(self, config=None, device_id=0):
            self.config, self.device_id, self.k = config, device_id, 0
            self.started = self.stopped = False
            if devices is not None:
                devices.append(self)

        def start(self):
            if start_error:
                raise RuntimeError(start_error)
            self.started = True

        def stop(self):
            if lost_after is not None and self.k >= lost_after:
                raise RuntimeError("K4A_RESULT_FAILED: device not connected")
            self.stopped = True

        def get_capture(self):
            if lost_after is not None and self.k >= lost_after:
                raise RuntimeError("K4A_WAIT_RESULT_FAILED: device disconnected")
            self.k += 1
            return FakeCapture(self.k - 1, broken=self.k - 1 == broken_at)

    class Playback(Device):
        def __init__(self, path):
            super().__init__()
            self.path = path
            self.configuration = {"camera_fps": 1}

        def open(self):
            if open_error:
                raise RuntimeError(open_error)

        def close(self):
            self.stopped = True

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
