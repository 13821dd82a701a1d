"""A thermal camera through OpenCV VideoCapture: a USB (UVC) device, a network stream, or a file.

Radiometric cameras (e.g. Lepton/PureThermal in Y16 mode) deliver 16-bit raw values that map
to kelvin linearly (``scale``, ``offset``, from the camera's documentation; centi-kelvin is
scale 0.01, offset 0). 8-bit video (most RTSP streams) carries no temperatures: it is refused,
because the attention stages need real temperatures, not a colour map.

How each kind of target is opened:

- a USB camera, by index (``0``) or V4L2 path (``/dev/video0``): asked for raw Y16 frames;
- a network stream (``rtsp://...``, any URL): OpenCV's FFmpeg backend with open and read
  timeouts (``timeout_s``), so a camera that vanishes fails a read instead of hanging it;
- a file (the thermal video paired with an MKV recording): read as it is, to its end.

A live camera (USB or network) that stops delivering is reopened in place with the suite's one
retry policy (``services.common.retry``: jittered backoff capped at 1 s), at most
``reconnect_attempts`` times; the loss and the recovery are logged and counted (``losses``,
``recoveries``). A camera not back by then raises ``ThermalCameraLost`` with the last error,
and each later ``read`` tries one reopen. A file is never reopened: a recording that ended is
not a camera that was lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np

from services.capture.sources import CameraUnavailable
from services.common.retry import call_until_available

KELVIN = 273.15

log = logging.getLogger("capture.thermal")

# cv2.VideoCapture(target, api_preference, params); injectable so tests stand in for the camera
OpenCapture = Callable[[int | str, int, list[int]], Any]


class ThermalSignalLost(CameraUnavailable):
    """The camera cannot be opened or a read delivered no frame: reopening may bring it back."""


class ThermalCameraLost(CameraUnavailable):
    """The camera stayed lost through every reopen attempt."""


class NotRadiometric(CameraUnavailable):
    """The camera delivers 8-bit video without temperatures: reopening does not change that."""


def target_kind(device: str) -> Literal["usb", "network", "file"]:
    """What a CAPTURE_THERMAL_DEVICE / _VIDEO value names: a USB camera, a stream URL, a file."""
    if device.isdigit() or device.startswith("/dev/"):
        return "usb"
    if "://" in device:
        return "network"
    return "file"


def display_name(device: str) -> str:
    """The device as logs and errors show it: a stream URL's password is never written out."""
    if target_kind(device) != "network":
        return device
    parts = urlsplit(device)
    if parts.password is None:
        return device
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


class ThermalCamera:
    """One thermal camera, read frame by frame in degrees Celsius, reopened when it is lost."""

    def __init__(
        self,
        device: str,
        *,
        scale: float = 0.01,
        offset: float = 0.0,
        reconnect_attempts: int = 5,
        timeout_s: float = 5.0,
        must_open: bool = True,
        open_capture: OpenCapture | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,  # tests skip the backoff
    ) -> None:
        """Open the camera; one that does not open raises ``ThermalSignalLost``, or, with
        ``must_open=False``, starts out lost and is tried again by each ``read``."""
        if reconnect_attempts < 0:
            raise ValueError(f"reconnect_attempts must be 0 or more, got {reconnect_attempts}")
        self.device = device
        self.name = display_name(device)
        self.kind = target_kind(device)
        self.scale = scale
        self.offset = offset
        self.timeout_s = timeout_s
        # a file is read to its end, never reopened (its frames would start again from the first)
        self.reconnect_attempts = 0 if self.kind == "file" else reconnect_attempts
        self._open_with: Callable[..., Any] = open_capture or cv2.VideoCapture
        self._sleep = sleep
        self.losses = 0
        self.recoveries = 0
        self._lost_since: float | None = None  # monotonic time the current loss began
        self._given_up = False  # the current loss outlasted reconnect_attempts: one try per read
        self.capture: Any = None
        try:
            self.capture = self._open_capture()
        except ThermalSignalLost as exc:
            if must_open:
                raise
            self._mark_lost(exc)
            self._given_up = True

    @property
    def frame_rate(self) -> float:
        if self.capture is None:
            return 0.0
        return float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> tuple[np.ndarray, int]:
        """The next frame in degrees Celsius and its capture time (µs since the epoch); a live
        camera that delivers none is reopened first (``ThermalCameraLost`` when it stays lost).
        Blocking: call it from a thread without a running event loop (the capture reader)."""
        try:
            frame = self._read_frame()
        except ThermalSignalLost as exc:
            if self.kind == "file":
                raise
            self._mark_lost(exc)
            frame = self._reopen()
        if self._lost_since is not None:
            self._found_again()
        return frame

    def to_celsius(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint16:
            raise NotRadiometric(
                f"thermal camera {self.name!r} delivers {frame.dtype} frames, not radiometric 16-bit; "
                "switch the camera to Y16/radiometric output"
            )
        if frame.ndim == 3:
            frame = frame[..., 0]
        return (
            frame.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset) - np.float32(KELVIN)
        )

    def close(self) -> None:
        self._release()

    # -- opening and reopening ---------------------------------------------------------------

    def _open_capture(self) -> Any:
        target: int | str = int(self.device) if self.device.isdigit() else self.device
        api = cv2.CAP_ANY
        params: list[int] = []
        if self.kind == "network":
            timeout_ms = round(self.timeout_s * 1000)
            api = cv2.CAP_FFMPEG
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        capture = self._open_with(target, api, params)
        if not capture.isOpened():
            capture.release()
            raise ThermalSignalLost(f"thermal camera {self.name!r} cannot be opened")
        # Ask for raw 16-bit frames: no conversion to 8-bit BGR.
        capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        if self.kind == "usb":
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"Y16 "))
        return capture

    def _read_frame(self) -> tuple[np.ndarray, int]:
        if self.capture is None:
            raise ThermalSignalLost(f"thermal camera {self.name!r} is not open")
        try:
            ok, frame = self.capture.read()
        except cv2.error as exc:  # some backends raise where others return no frame
            raise ThermalSignalLost(f"thermal camera {self.name!r} failed to read: {exc}") from exc
        ts = time.time_ns() // 1000
        if not ok or frame is None:
            raise ThermalSignalLost(f"thermal camera {self.name!r} delivered no frame")
        return self.to_celsius(frame), ts

    def _reopen(self) -> tuple[np.ndarray, int]:
        """Reopen and read one frame with the one retry policy, up to ``reconnect_attempts``
        tries (one try once the loss was reported); ``ThermalCameraLost`` after the last."""
        limit = min(1, self.reconnect_attempts) if self._given_up else self.reconnect_attempts
        tries = 0
        last_error: BaseException | None = None

        async def attempt() -> tuple[np.ndarray, int]:
            nonlocal tries
            tries += 1
            self._release()
            self.capture = self._open_capture()
            return self._read_frame()  # a camera that opens but delivers nothing is still lost

        def failed(error: BaseException, delay: float) -> None:
            nonlocal last_error
            last_error = error
            log.info(
                "thermal camera reopen failed",
                extra={"device": self.name, "attempt": tries, "of": limit, "error": str(error)},
            )

        async def wait_or_give_up(delay: float) -> None:
            if tries >= limit:
                raise self._give_up(tries, last_error) from last_error
            await self._sleep(delay)

        if limit == 0:
            raise self._give_up(0, None)
        # the reader thread has no event loop of its own: the policy runs in a fresh one
        return asyncio.run(
            call_until_available(
                attempt, retry_on=(ThermalSignalLost,), on_retry=failed, sleep=wait_or_give_up
            )
        )

    def _give_up(self, tries: int, last_error: BaseException | None) -> ThermalCameraLost:
        reported, self._given_up = self._given_up, True
        self._release()
        lost_s = time.monotonic() - (self._lost_since or time.monotonic())
        reason = (
            f"thermal camera {self.name!r} lost {lost_s:.1f} s ago and not found again "
            f"after {tries} reopen attempt{'s' if tries != 1 else ''}"
        )
        if last_error is not None:
            reason += f" (last: {last_error})"
        log.log(
            logging.DEBUG if reported else logging.ERROR,
            "thermal camera not found again",
            extra={"device": self.name, "reason": reason},
        )
        return ThermalCameraLost(reason)

    def _mark_lost(self, error: BaseException) -> None:
        self._release()
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self.losses += 1
            log.warning(
                "thermal camera lost",
                extra={"device": self.name, "error": str(error), "attempts": self.reconnect_attempts},
            )

    def _found_again(self) -> None:
        self.recoveries += 1
        down_s = time.monotonic() - (self._lost_since or time.monotonic())
        log.info("thermal camera found again", extra={"device": self.name, "down_s": round(down_s, 3)})
        self._lost_since = None
        self._given_up = False

    def _release(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None
