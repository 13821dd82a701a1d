"""Azure Kinect (live, or MKV playback) through pyk4a, paired with a thermal camera.

pyk4a ships the Azure Kinect SDK in the ``pyk4a-bundle`` wheel, which needs numpy < 2: it is
installed only in the capture agent's own environment (``pip install '.[kinect]'``), never in
the whole suite's. Without it this source says so clearly.

Colour and depth come synchronised from the Kinect with its factory calibration; the thermal
camera is a separate device calibrated against the colour camera (campus file), read once per
Kinect capture (a recording's thermal video in lock-step with the MKV).

Live, a thermal camera that is out does not stop the Kinect: the thermal camera reopens itself
(``ThermalCamera``; the Kinect's next frame set waits through those few attempts, each at most
1 s of backoff plus a stream's open timeout), and while it stays out each frame set goes out without thermal
(``NO_THERMAL``), ``degraded`` says why, and the thermal camera is tried again every
``thermal_retry_s``. A Kinect that is out stops the source (``CameraUnavailable``): colour is
what a frame set is anchored on (capture time, calibration, seats), so thermal alone makes no
frame set, and the agent reopens the pair.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.capture.sources import NO_THERMAL, CameraUnavailable
from services.capture.sources.thermal import ThermalCamera
from services.common.calibration import CameraCalibration, Extrinsics, Intrinsics, SensorCalibration
from services.common.frames import CapturedFrameSet


def _pyk4a():  # type: ignore[no-untyped-def]
    try:
        import pyk4a
    except ImportError as exc:
        raise CameraUnavailable(
            "the Kinect source needs pyk4a: install the capture agent with `pip install '.[kinect]'` "
            "in its own environment (pyk4a-bundle requires numpy < 2)"
        ) from exc
    return pyk4a


def intrinsics_from_k4a(calibration, camera, width: int, height: int) -> Intrinsics:  # type: ignore[no-untyped-def]
    matrix = np.asarray(calibration.get_camera_matrix(camera), dtype=np.float64)
    dist = np.asarray(calibration.get_distortion_coefficients(camera), dtype=np.float64).ravel()
    # k4a's Brown-Conrady has k1..k6, p1, p2 (order k1 k2 p1 p2 k3 k4 k5 k6 from OpenCV's view);
    # we keep OpenCV's 5-term subset, which is what the enhancement's remap tables use.
    five = tuple(float(v) for v in (list(dist[:5]) + [0.0] * 5)[:5])
    return Intrinsics(
        width=width,
        height=height,
        fx=matrix[0, 0],
        fy=matrix[1, 1],
        cx=matrix[0, 2],
        cy=matrix[1, 2],
        distortion=five,  # type: ignore[arg-type]
    )


def depth_to_colour_extrinsics(calibration) -> Extrinsics:  # type: ignore[no-untyped-def]
    """R, t of depth -> colour from point transforms (works on every pyk4a version)."""
    origin = np.asarray(calibration.depth_to_color_3d((0.0, 0.0, 0.0)), dtype=np.float64)
    basis = [
        np.asarray(calibration.depth_to_color_3d(tuple(1000.0 * np.eye(3)[i])), dtype=np.float64) - origin
        for i in range(3)
    ]
    rotation = np.stack(basis, axis=1) / 1000.0
    u, _, vt = np.linalg.svd(rotation)  # re-orthonormalise against float round-off
    rotation = u @ vt
    return Extrinsics(
        rotation=tuple(tuple(float(v) for v in row) for row in rotation),  # type: ignore[arg-type]
        translation_mm=tuple(float(v) for v in origin),  # type: ignore[arg-type]
    )


class KinectSource:
    """Kinect colour + depth (device or MKV) with a paired radiometric thermal camera."""

    def __init__(
        self,
        *,
        thermal: ThermalCamera,
        thermal_calibration: SensorCalibration,
        device_id: int = 0,
        mkv_path: Path | None = None,
        thermal_retry_s: float = 5.0,
        pyk4a_module=None,  # type: ignore[no-untyped-def]  # injectable: tests stand in for the hardware
    ) -> None:
        """Open the Kinect (or the MKV) and read its first capture. The source owns ``thermal``:
        it closes it, also when the Kinect does not open (so the next attempt can open it)."""
        self.thermal = thermal
        self.live = mkv_path is None
        self.thermal_retry_s = thermal_retry_s
        self.degraded = ""
        self._thermal_retry_at = 0.0  # monotonic time the thermal camera, while out, is tried again
        self._clock_offset_us: int | None = None
        self.device: Any = None
        try:
            self._open(device_id, mkv_path, thermal_calibration, pyk4a_module)
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _open(  # type: ignore[no-untyped-def]
        self, device_id: int, mkv_path: Path | None, thermal_calibration: SensorCalibration, pyk4a_module
    ) -> None:
        pyk4a = pyk4a_module or _pyk4a()
        self.pyk4a = pyk4a
        try:
            if mkv_path is not None:
                if not Path(mkv_path).is_file():
                    raise CameraUnavailable(f"Kinect recording {mkv_path} does not exist")
                self.device = pyk4a.PyK4APlayback(str(mkv_path))
                self.device.open()
                fps_enum = self.device.configuration["camera_fps"]
            else:
                config = pyk4a.Config(
                    color_resolution=pyk4a.ColorResolution.RES_1080P,
                    color_format=pyk4a.ImageFormat.COLOR_BGRA32,
                    depth_mode=pyk4a.DepthMode.NFOV_2X2BINNED,
                    camera_fps=pyk4a.FPS.FPS_15,
                    synchronized_images_only=True,
                )
                self.device = pyk4a.PyK4A(config=config, device_id=device_id)
                self.device.start()
                fps_enum = config.camera_fps
        except CameraUnavailable:
            raise
        except Exception as exc:  # pyk4a raises K4AException for a missing device or a bad file
            where = mkv_path or f"device {device_id}"
            raise CameraUnavailable(f"Azure Kinect {where} cannot be opened: {exc}") from exc
        self.frame_rate = {0: 5.0, 1: 15.0, 2: 30.0}.get(int(fps_enum), 15.0)
        self._first = self._next_capture()
        colour, depth = self._images(self._first)
        k4a_cal = self.device.calibration
        types = pyk4a.CalibrationType
        self.calibration = CameraCalibration(
            rgb=intrinsics_from_k4a(k4a_cal, types.COLOR, colour.shape[1], colour.shape[0]),
            depth=SensorCalibration(
                intrinsics=intrinsics_from_k4a(k4a_cal, types.DEPTH, depth.shape[1], depth.shape[0]),
                to_rgb=depth_to_colour_extrinsics(k4a_cal),
            ),
            thermal=thermal_calibration,
        )

    def _next_capture(self):  # type: ignore[no-untyped-def]
        try:
            if self.live:
                return self.device.get_capture()
            return self.device.get_next_capture()
        except EOFError:
            raise StopIteration from None
        except Exception as exc:
            raise CameraUnavailable(f"Azure Kinect stopped delivering frames: {exc}") from exc

    def _images(self, capture) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        colour = capture.color
        if colour is None or capture.depth is None:
            raise CameraUnavailable("Kinect capture lacks colour or depth")
        if colour.ndim == 1:  # MJPG recordings
            colour = cv2.imdecode(colour, cv2.IMREAD_COLOR)
        elif colour.shape[2] == 4:
            colour = colour[:, :, :3]
        return np.ascontiguousarray(colour), capture.depth.astype(np.uint16, copy=False)

    def _thermal_frame(self) -> tuple[np.ndarray, int]:
        """The thermal frame paired with the current Kinect capture: ``NO_THERMAL`` while a live
        thermal camera is out (tried again every ``thermal_retry_s``); a recording's thermal
        video that fails ends the pair (CameraUnavailable)."""
        if not self.live:
            return self.thermal.read()
        if self.degraded and time.monotonic() < self._thermal_retry_at:
            return NO_THERMAL, time.time_ns() // 1000
        try:
            thermal = self.thermal.read()  # reopens a camera that just stopped, within its limit
        except CameraUnavailable as exc:
            self.degraded = str(exc)
            self._thermal_retry_at = time.monotonic() + self.thermal_retry_s
            return NO_THERMAL, time.time_ns() // 1000
        self.degraded = ""
        return thermal

    def _wall_time(self, device_ts_us: int) -> int:
        # Device timestamps count from the device's start; anchor them to wall time once.
        if self._clock_offset_us is None:
            self._clock_offset_us = time.time_ns() // 1000 - int(device_ts_us)
        return int(device_ts_us) + self._clock_offset_us

    def __iter__(self) -> Iterator[CapturedFrameSet]:
        capture = self._first
        sequence = 0
        while True:
            colour, depth = self._images(capture)
            thermal_c, thermal_ts = self._thermal_frame()
            rgb_ts = self._wall_time(capture.color_timestamp_usec)
            depth_ts = self._wall_time(capture.depth_timestamp_usec)
            if not self.live:
                thermal_ts = rgb_ts  # recordings: the thermal video is read in lock-step
            yield CapturedFrameSet(
                sequence=sequence,
                rgb=colour,
                depth_mm=depth,
                thermal_c=thermal_c,
                rgb_ts_us=rgb_ts,
                depth_ts_us=depth_ts,
                thermal_ts_us=thermal_ts,
            )
            sequence += 1
            try:
                capture = self._next_capture()
            except StopIteration:
                return

    def close(self) -> None:
        try:
            if self.device is not None and self.live:
                self.device.stop()
            elif self.device is not None:
                self.device.close()
        finally:
            self.thermal.close()


def kinect_source(settings) -> KinectSource:  # type: ignore[no-untyped-def]
    from services.common.campus import load_campus

    if settings.campus_file is None:
        raise CameraUnavailable(
            "the Kinect source needs CAPTURE_CAMPUS_FILE for the thermal camera's calibration"
        )
    camera = load_campus(settings.campus_file).camera(settings.classroom_id, settings.camera_id)
    if camera is None or camera.calibration is None:
        raise CameraUnavailable(
            f"camera {settings.classroom_id}/{settings.camera_id} has no calibration in {settings.campus_file}"
        )
    recording = settings.source == "mkv"
    thermal = ThermalCamera(
        str(settings.thermal_video) if recording else settings.thermal_device,
        scale=settings.thermal_scale,
        offset=settings.thermal_offset,
        reconnect_attempts=settings.thermal_reconnect_attempts,
        timeout_s=settings.thermal_timeout_s,
        must_open=recording,  # live, the Kinect starts without it and the thermal camera follows
    )
    return KinectSource(
        thermal=thermal,
        thermal_calibration=camera.calibration.thermal,
        device_id=settings.kinect_device,
        mkv_path=settings.mkv_path if recording else None,
        thermal_retry_s=settings.reconnect_s,
    )
