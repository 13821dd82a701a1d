"""The capture loop: read a source, encode, publish frame sets keyed by classroom.

Reading and encoding run in a thread (they are CPU and I/O bound and release the GIL in
OpenCV); the event loop only produces. A bounded queue between them applies backpressure:
a live camera that outruns the broker drops frames at the source (counted, visible as
sequence gaps) instead of growing memory.

A camera failure degrades the agent, never stops it:

- a source that cannot open, or stops delivering (``CameraUnavailable``, or any error its
  camera library raises), is reported (not ready, logged with the reason, counted in
  ``classroom_camera_failures_total{camera=<source>}``), closed, and reopened every
  ``reconnect_s``; the frame sets resume when it is back;
- where one camera of a pair is out and the other still makes a frame set (a live Kinect
  whose thermal camera is lost past its reopen attempts), frame sets keep going out without
  the missing image (the wire's mark of a missing modality, docs/contracts.md), counted in
  ``classroom_frame_sets_incomplete_total{missing="thermal"}``; the agent is not ready, with
  the source's reason, until the camera is back (``classroom_camera_failures_total{camera="thermal"}``
  counts each time it goes out).

Only a failure that is no camera's (e.g. an unreadable campus file) ends the reader: the agent
logs it and exits with 1, never 0 as if the source had ended.

Start-up, signals, the health server and the order of shutdown are the skeleton's
(``services.common.runner``); the reader thread and the publishing loop are capture's own.

A live camera's clock is measured against this host's at every frame set and put back on it
when it is off by more than ``clock_tolerance_s`` (``services.capture.clock``): counted in
``classroom_camera_clock_corrections_total``, its offset a gauge, logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import Counter, Gauge

from services.capture.clock import CameraClock, Direction
from services.capture.config import CaptureSettings
from services.capture.sources import NO_THERMAL, CameraUnavailable, FrameSource
from services.capture.sources.open import open_source
from services.capture.sources.replay import Recorder
from services.common import codecs
from services.common.bus import Output, Producer, now_us, refuse
from services.common.errors import BadInput, OversizedMessage
from services.common.frames import CapturedFrameSet
from services.common.lifecycle import StopFlag
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.pb.classroom.v1 import frames_pb2
from services.common.runner import ShutdownStep, run_service
from services.common.topics import DEAD_LETTER, FRAMES_RAW
from services.common.vocabulary import SLOT_US


@dataclass(frozen=True)
class CapturedRecord:
    """A frame set capture made and could not publish, as the dead-letter envelope describes it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


log = logging.getLogger("capture")

_END = object()

# a camera clock put back on the host's is logged at most this often (each time is counted)
CLOCK_LOG_EVERY_S = 60.0


def default_session_id(settings: CaptureSettings, started: datetime) -> str:
    """``<course or classroom>-<UTC start to the second>-<8 random hex digits>``: readable, and
    unique across restarts and machines (two captures of one course that start within the same
    second get two sessions, never one merged session with clashing event ids)."""
    owner = settings.course_id or settings.classroom_id
    return f"{owner}-{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def frame_set_message(
    frames: CapturedFrameSet, settings: CaptureSettings, *, session_id: str, frame_rate: float, source: str
) -> frames_pb2.FrameSet:
    """Encode one capture into the wire message with this agent's ids (``codecs.encode_frame_set``);
    a frame set whose thermal camera delivered nothing (``NO_THERMAL``) goes without ``thermal``."""
    message = codecs.encode_frame_set(
        frames,
        classroom_id=settings.classroom_id,
        session_id=session_id,
        camera_id=settings.camera_id,
        course_id=settings.course_id,
        frame_rate=frame_rate,
        source=source,
        jpeg_quality=settings.jpeg_quality,
    )
    if frames.thermal_c is NO_THERMAL:
        message.ClearField("thermal")  # absent, as docs/contracts.md marks a missing modality
    return message


class CaptureService:
    name = "capture"

    def __init__(self, settings: CaptureSettings, *, source: FrameSource | None = None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics(self.name)
        self.health = HealthServer(self.metrics, readiness=self.readiness)
        self.producer = Producer(settings, self.metrics, client_id="classroom-capture")
        self.stop = StopFlag()
        self.topic = settings.topic_prefix + FRAMES_RAW
        self.dead_letter_topic = settings.topic_prefix + DEAD_LETTER
        self.session_id = settings.session_id or default_session_id(settings, datetime.now(UTC))
        self._source = source
        self._camera_ok = False
        self._camera_detail = "not opened yet"
        self.published = 0
        self.dropped = 0
        self.encode_failures = 0
        self.camera_failures = Counter(
            "classroom_camera_failures_total",
            "camera opens that failed, and cameras that stopped delivering, by camera",
            ["service", "camera"],
            registry=self.metrics.registry,
        )
        self.incomplete = Counter(
            "classroom_frame_sets_incomplete_total",
            "frame sets published without an image a camera did not deliver, by missing modality",
            ["service", "missing"],
            registry=self.metrics.registry,
        )
        self.clock_offset = Gauge(
            "classroom_camera_clock_offset_seconds",
            "a live camera's capture times minus their arrival at this host (the least delayed of the last "
            "frame sets), before any correction; positive: the camera's clock runs ahead",
            ["service", "classroom", "camera"],
            registry=self.metrics.registry,
        )
        self.clock_corrections = Counter(
            "classroom_camera_clock_corrections_total",
            "times a live camera's capture times were put back on this host's clock, off by more than "
            "clock_tolerance_s, by direction",
            ["service", "classroom", "camera", "direction"],
            registry=self.metrics.registry,
        )
        self.clock = CameraClock(round(settings.clock_tolerance_s * 1e6))
        self.clock_steps = 0  # times the camera's clock was put back on this host's
        self._clock_logged_at = -CLOCK_LOG_EVERY_S  # monotonic time of the last clock line
        # after a camera clock was put back: stamps up to here were published already, not reused
        self._hold_until_us: int | None = None
        self._thermal_out = False  # the source's frame sets currently go out without thermal
        self.reader_error: str | None = None  # what ended the reader other than a camera
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._halt = threading.Event()
        self._ground_truth: TextIO | None = None
        self._shift_us: int | None = None  # this source run's timeline -> wall clock (_restamp)
        self._last_ts_us: int | None = None  # the newest stamp published: stamps only go forward
        self._last_slot: int | None = None  # the recognition slot of the newest frame set published
        self._replayed = 0  # frame sets of an encoded source (replay) numbered by this agent
        self._recorder: Recorder | None = None
        self._pending: list[asyncio.Future] = []  # sends not yet acknowledged by the broker

    def readiness(self) -> tuple[bool, str]:
        return self._camera_ok, self._camera_detail

    # -- reader thread ---------------------------------------------------------------------

    def _open(self) -> FrameSource | None:
        while not self._halt.is_set():
            try:
                source = self._source if self._source is not None else open_source(self.settings)
                self._source = source
                self._shift_us = None  # a (re)opened source: its timeline is mapped afresh
                self.clock.reset()
                self._thermal_out = False
                self._camera_ok, self._camera_detail = True, "ok"
                log.info("camera open", extra={"source": self.settings.source, "fps": source.frame_rate})
                return source
            except CameraUnavailable as exc:
                self._camera_ok, self._camera_detail = False, str(exc)
                self.camera_failures.labels(self.name, self.settings.source).inc()
                log.error(
                    "camera unavailable", extra={"error": str(exc), "retry_in_s": self.settings.reconnect_s}
                )
                self._halt.wait(self.settings.reconnect_s)
        return None

    def _reader(self) -> None:
        """The reader thread: frame sets from the source until it ends, ``max_frames`` or a stop."""
        try:
            self._read_frames()
        except Exception as exc:  # not a camera's failure (those are handled in _read_frames)
            self.reader_error = f"{type(exc).__name__}: {exc}"
            self._camera_ok, self._camera_detail = False, self.reader_error
            log.exception("capture reader failed", extra={"error": self.reader_error})
        finally:
            self._queue.put(_END)

    def _read_frames(self) -> None:
        """Read, pace and encode in this thread; hand finished messages to the event loop."""
        interval = 1.0 / self.settings.fps
        produced = 0
        while not self._halt.is_set():
            source = self._open()
            if source is None:
                return
            next_due = time.monotonic()
            frame_sets = iter(source)
            while not self._halt.is_set():
                try:
                    frames = next(frame_sets)
                except StopIteration:
                    log.info("source ended")
                    return
                except Exception as exc:  # CameraUnavailable, or whatever the camera's library raised
                    self._camera_lost(source, exc)
                    break
                if not source.live and self.settings.realtime:
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        self._halt.wait(delay)
                    next_due = max(next_due + interval, time.monotonic() - interval)
                self._queue_frame(frames, source)
                produced += 1
                if self.settings.max_frames and produced >= self.settings.max_frames:
                    return

    def _camera_lost(self, source: FrameSource, error: Exception) -> None:
        """Report a source that stopped delivering, close it, and wait ``reconnect_s`` to reopen it."""
        reason = str(error) if isinstance(error, CameraUnavailable) else f"{type(error).__name__}: {error}"
        self._camera_ok, self._camera_detail = False, reason
        self.camera_failures.labels(self.name, self.settings.source).inc()
        log.error(
            "camera lost",
            exc_info=not isinstance(error, CameraUnavailable),  # an unexpected error keeps its traceback
            extra={"error": reason, "retry_in_s": self.settings.reconnect_s},
        )
        self._close_source(source)
        self._source = None
        self._halt.wait(self.settings.reconnect_s)

    @staticmethod
    def _close_source(source: FrameSource) -> None:
        """Close a source; a camera that was unplugged may fail to close, which changes nothing."""
        try:
            source.close()
        except Exception as exc:
            log.warning("camera did not close cleanly", extra={"error": f"{type(exc).__name__}: {exc}"})

    def _follow_thermal(self, frames: CapturedFrameSet, source: FrameSource) -> None:
        """Readiness and counts follow the frame sets: one without thermal means the source's
        thermal camera is out (``source.degraded`` says why); one with thermal, that it is back."""
        missing = frames.thermal_c is NO_THERMAL
        if missing and not self._thermal_out:
            reason = source.degraded or "the thermal camera delivered no frame"
            self._thermal_out = True
            self._camera_ok = False
            self._camera_detail = f"{reason}; publishing frame sets without thermal"
            self.camera_failures.labels(self.name, "thermal").inc()
            log.error("thermal camera out, frame sets go out without thermal", extra={"error": reason})
        elif not missing and self._thermal_out:
            self._thermal_out = False
            self._camera_ok, self._camera_detail = True, "ok"
            log.info("thermal camera back, frame sets complete again")

    def _queue_frame(self, frames: CapturedFrameSet | frames_pb2.FrameSet, source: FrameSource) -> None:
        if isinstance(frames, frames_pb2.FrameSet):
            self._queue_encoded(frames, source)
            return
        restamped = self._restamp(frames, live=source.live)
        if restamped is None:
            return
        frames = restamped
        self._follow_thermal(frames, source)
        if not self._takes_slot(frames.rgb_ts_us):
            return
        try:
            message = frame_set_message(
                frames,
                self.settings,
                session_id=self.session_id,
                frame_rate=source.frame_rate,
                source=self.settings.source,
            )
        except ValueError as exc:  # a frame the source produced but that cannot be encoded (NaN thermal...)
            self.encode_failures += 1
            self.metrics.count_dead_letter("unencodable_frame")
            log.error(
                "frame cannot be encoded, skipped", extra={"sequence": frames.sequence, "error": str(exc)}
            )
            return
        if frames.annotations is not None and self._ground_truth is not None:
            self._ground_truth.write(
                json.dumps(
                    {
                        "session_id": self.session_id,
                        "classroom_id": self.settings.classroom_id,
                        "camera_id": self.settings.camera_id,
                        "sequence": frames.sequence,
                        "capture_ts_us": frames.rgb_ts_us,
                        **frames.annotations,
                    },
                    separators=(",", ":"),
                    default=float,
                )
                + "\n"
            )
        try:
            self._queue.put(message, timeout=1.0 if source.live else None)
        except queue.Full:
            self.dropped += 1  # live camera faster than the broker: drop at the source

    def _takes_slot(self, capture_ts_us: int) -> bool:
        """Whether a frame set is analysed: the first of its recognition slot (``capture_ts //
        SLOT_US``, the grid windows.py samples on). The others would reach recognition only to
        be skipped there after enhancement and the model server had paid for them; they are
        counted here (``classroom_observations_skipped_total{reason="slot_taken"}``)."""
        if not self.settings.window_rate_only:
            return True
        slot = capture_ts_us // SLOT_US
        if self._last_slot is not None and slot <= self._last_slot:
            self.metrics.count_skipped("slot_taken")
            return False
        self._last_slot = slot
        return True

    def _restamp(self, frames: CapturedFrameSet, *, live: bool = False) -> CapturedFrameSet | None:
        """Put a frame set on the wall clock, monotonic per camera; None: dropped (a live
        camera's clock was just put back, and this frame set would go back in time).

        A source run's timeline is shifted by one offset chosen at its first frame set (0 when
        the source stamps wall-clock time already, within ``clock_tolerance_s``, as a live camera
        does), so each timestamp says when the sensor captured the frame on that timeline, however
        late this reader gets to it: a starved reader makes frames late (latency shows it), never
        out of order. Where a source's own timeline goes back (the next clip of a recording),
        stamping continues one frame interval after the last stamp. A live camera's clock is
        checked at every frame set against this host's (``_check_clock``). Each sensor keeps its
        offset.
        """
        shift = self._shift_for(frames.rgb_ts_us, live=live)
        if shift is None:
            return None
        frames.rgb_ts_us += shift
        frames.depth_ts_us += shift
        frames.thermal_ts_us += shift
        return frames

    def _shift_for(self, rgb_ts_us: int, *, live: bool = False) -> int | None:
        """The shift that puts a frame set captured at ``rgb_ts_us`` (its source's timeline) on
        the wall clock, monotonic (``_restamp``); None: the frame set is dropped."""
        arrival_us = now_us()
        if self._shift_us is None:
            shift = arrival_us - rgb_ts_us
            self._shift_us = 0 if abs(shift) < self.clock.tolerance_us else shift
        elif live:
            self._shift_us += self._check_clock(rgb_ts_us + self._shift_us, arrival_us)
        stamped = rgb_ts_us + self._shift_us
        if self._hold_until_us is not None:
            if stamped <= self._hold_until_us:
                self.metrics.count_skipped("clock_step")
                return None
            self._hold_until_us = None
        if self._last_ts_us is not None and stamped <= self._last_ts_us:
            self._shift_us += self._last_ts_us + round(1e6 / self.settings.fps) - stamped
            stamped = rgb_ts_us + self._shift_us
        self._last_ts_us = stamped
        return self._shift_us

    def _check_clock(self, capture_us: int, arrival_us: int) -> int:
        """The step that puts a live camera's clock back on this host's (0 while it is within
        ``clock_tolerance_s``; ``services.capture.clock``): the offset is a gauge, each step is
        counted and logged. After a step back, frame sets stamped up to the newest one published
        are dropped until the camera's time passes it: stamps only go forward."""
        step, direction = self.clock.step(capture_us, arrival_us)
        offset_us = -step if direction is not None else self.clock.offset_us() or 0
        ids = (self.name, self.settings.classroom_id, self.settings.camera_id)
        self.clock_offset.labels(*ids).set(offset_us / 1e6)
        if direction is None:
            return 0
        self.clock_corrections.labels(*ids, direction).inc()
        self.clock_steps += 1
        if step < 0:
            self._hold_until_us = self._last_ts_us
        self._log_clock(direction, offset_us)
        return step

    def _log_clock(self, direction: Direction, offset_us: int) -> None:
        """One warning per ``CLOCK_LOG_EVERY_S`` at most: a clock that drifts fast steps often."""
        if time.monotonic() - self._clock_logged_at < CLOCK_LOG_EVERY_S:
            return
        self._clock_logged_at = time.monotonic()
        classroom, camera = self.settings.classroom_id, self.settings.camera_id
        log.warning(
            f"camera {classroom}/{camera}: its clock runs {abs(offset_us) / 1e6:.1f} s "
            f"{'ahead of' if direction == 'ahead' else 'behind'} this host's; capture times put back on it",
            extra={
                "classroom": classroom,
                "camera": camera,
                "direction": direction,
                "offset_s": round(offset_us / 1e6, 3),
                "tolerance_s": self.settings.clock_tolerance_s,
                "corrections": self.clock_steps,
            },
        )

    def _queue_encoded(self, message: frames_pb2.FrameSet, source: FrameSource) -> None:
        """A frame set that comes encoded (the replay camera): this agent's ids, sequence and
        timestamps, then published as it is: nothing decoded or encoded again."""
        shift = self._shift_for(message.capture_ts_us, live=source.live)
        if shift is None:
            return
        message.capture_ts_us += shift
        for image in (message.rgb, message.depth, message.thermal):
            image.capture_ts_us += shift
        if not self._takes_slot(message.capture_ts_us):
            return
        message.classroom_id = self.settings.classroom_id
        message.session_id = self.session_id
        message.camera_id = self.settings.camera_id
        message.course_id = self.settings.course_id
        message.sequence = self._replayed
        message.source = self.settings.source
        message.frame_rate = source.frame_rate
        self._replayed += 1
        self._queue.put(message)  # a recording waits for the broker: nothing to drop

    # -- event loop ------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the source ends or a stop (``services.common.runner``); returns the exit code."""
        return await run_service(self)

    async def serve(self, metrics_port: int) -> int:
        """Start the reader thread and publish what it hands over until it ends; 1 when something
        other than a camera ended it (``reader_error``), else 0."""
        if self.settings.ground_truth_out is not None:
            self.settings.ground_truth_out.parent.mkdir(parents=True, exist_ok=True)
            self._ground_truth = self.settings.ground_truth_out.open("a", buffering=1)
        if self.settings.record_to is not None:
            self._recorder = Recorder(self.settings.record_to)
        await self.producer.start()
        log.info(
            "starting",
            extra={"session_id": self.session_id, "topic": self.topic, "metrics_port": metrics_port},
        )
        threading.Thread(target=self._reader, name="capture-reader", daemon=True).start()
        loop = asyncio.get_running_loop()
        while True:
            self.health.beat()
            if self.stop.is_set():
                self._halt.set()
            try:
                item = await loop.run_in_executor(None, self._queue.get, True, 0.5)
            except queue.Empty:
                continue
            if item is _END:
                break
            self._pending.append(await self._publish(item))
            if len(self._pending) >= 16:
                await asyncio.gather(*self._pending)
                self._pending.clear()
        return 1 if self.reader_error is not None else 0

    def shutdown_steps(self) -> list[ShutdownStep]:
        return [
            ("reader", self._halt_reader),
            ("sends in flight", self._await_pending),
            ("producer", self._stop_producer),
            ("camera", self._close_camera),
            ("ground truth and recording", self._close_files),
        ]

    async def _halt_reader(self) -> None:
        self._halt.set()

    async def _await_pending(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _stop_producer(self) -> None:
        await self.producer.flush()
        await self.producer.stop()

    async def _close_camera(self) -> None:
        if self._source is not None:
            self._close_source(self._source)

    async def _close_files(self) -> None:
        if self._ground_truth is not None:
            self._ground_truth.close()
        if self._recorder is not None:
            self._recorder.close()

    def stopped_fields(self) -> dict[str, Any]:
        return {"published": self.published, "dropped": self.dropped}

    async def _publish(self, message: frames_pb2.FrameSet) -> asyncio.Future:
        message.published_ts_us = now_us()
        payload = message.SerializeToString()
        key = self.settings.classroom_id.encode()
        if self._recorder is not None:
            self._recorder.write(payload)
        try:
            future = await self.producer.send(
                Output(self.topic, key, payload, timestamp_ms=message.capture_ts_us // 1000)
            )
            self.published += 1
            if not message.HasField("thermal"):
                self.incomplete.labels(self.name, "thermal").inc()
            self.metrics.observe_since_capture((message.published_ts_us - message.capture_ts_us) / 1e6)
            return future
        except OversizedMessage as exc:
            return await self._dead_letter(message, payload, exc)

    async def _dead_letter(
        self, message: frames_pb2.FrameSet, payload: bytes, error: BadInput
    ) -> asyncio.Future:
        source = CapturedRecord(
            self.topic, -1, int(message.sequence), self.settings.classroom_id.encode(), payload
        )
        envelope = refuse(
            source,
            error,
            service=self.name,
            metrics=self.metrics,
            log=log,
            keep_payload=False,  # too large by definition
            max_payload=0,
            advice="raise the campus limit on purpose, or lower resolution/quality",
        )
        return await self.producer.send(Output(self.dead_letter_topic, source.key or b"", envelope))
