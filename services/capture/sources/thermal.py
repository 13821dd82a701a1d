"""A thermal camera through OpenCV VideoCapture (UVC device index, or a file/RTSP URL).

Radiometric cameras (e.g. Lepton/PureThermal in Y16 mode) deliver 16-bit raw values that map
to kelvin linearly (``scale``, ``offset``, from the camera's documentation; centi-kelvin is
scale 0.01, offset 0). 8-bit video (most RTSP streams) carries no temperatures: it is refused,
because the attention stages need real temperatures, not a colour map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from services.capture.sources import CameraUnavailable

KELVIN = 273.15


class ThermalCamera:
    def __init__(
        self,
        device: str,
        *,
        scale: float = 0.01,
        offset: float = 0.0,
        # injectable: tests stand in for the camera (default cv2.VideoCapture)
        open_capture: Callable[[int | str], Any] | None = None,
    ) -> None:
        self.device = device
        self.scale = scale
        self.offset = offset
        target: int | str = int(device) if device.isdigit() else device
        self.capture = (open_capture or cv2.VideoCapture)(target)
        if not self.capture.isOpened():
            raise CameraUnavailable(f"thermal camera {device!r} cannot be opened")
        # Ask for raw 16-bit frames: no conversion to 8-bit BGR.
        self.capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        if isinstance(target, int):
            self.capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"Y16 "))

    @property
    def frame_rate(self) -> float:
        return float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> tuple[np.ndarray, int]:
        """The next frame in degrees Celsius and its capture time (µs since the epoch)."""
        ok, frame = self.capture.read()
        ts = time.time_ns() // 1000
        if not ok or frame is None:
            raise CameraUnavailable(f"thermal camera {self.device!r} delivered no frame")
        return self.to_celsius(frame), ts

    def to_celsius(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint16:
            raise CameraUnavailable(
                f"thermal camera {self.device!r} delivers {frame.dtype} frames, not radiometric 16-bit; "
                "switch the camera to Y16/radiometric output"
            )
        if frame.ndim == 3:
            frame = frame[..., 0]
        return (
            frame.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset) - np.float32(KELVIN)
        )

    def close(self) -> None:
        self.capture.release()
