"""The recognition worker: a faust app whose agent turns observations into behaviour events.

Why faust here: the sliding windows are per-student state that must survive a restart of
the service and move with partitions when workers are added. A faust Table keeps it in
memory and in a compacted changelog topic; on start or rebalance a worker recovers exactly
the partitions it is assigned. Entries are small (services/recognition/windows.py), so the
changelog costs about a kilobyte per student per grid slot.

For each observation set: store every student's observation in the table, collect the
windows that are complete, classify them in one gRPC call (batched across students; the
model server batches across classrooms), produce the events and wait for the broker's
acknowledgement, then mark the windows emitted. The event is acked to faust only after
that, so its offset is committed only once its output exists. A model server that is down
blocks the partition with capped exponential backoff: nothing is lost or skipped.

Unlike the other runners this one does not go through the service skeleton's
``run_service`` (``services.common.runner``): faust's ``Worker`` owns the event loop, the
SIGINT/SIGTERM handlers and the shutdown (acked offsets committed, the table's changelog
flushed). It shares the entry point (``services.common.entrypoint``) and starts its health
server the skeleton's way, from a faust task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import faust
import numpy as np

from services.common.bus import DependencyUnavailable, now_us, refuse
from services.common.codecs import parse_message
from services.common.errors import BadInput, MalformedMessage, OversizedMessage
from services.common.kafka_security import KafkaSecurity, client_kwargs
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.model_client import ModelClient
from services.common.pb.classroom.v1 import events_pb2, inference_pb2, observations_pb2
from services.common.retry import Dependency
from services.common.runner import start_health
from services.common.seats import normalise_keypoints
from services.common.tls import client_tls
from services.common.topics import BEHAVIOURS, DEAD_LETTER, OBSERVATIONS, RECOGNITION_STATE
from services.common.vocabulary import HOP_FRAMES, NUM_KEYPOINTS, WINDOW_FPS, WINDOW_FRAMES
from services.recognition.config import RecognitionSettings
from services.recognition.ordering import WATCHDOG_INTERVAL_S, OrderedDelivery, Record
from services.recognition.windows import ReadyWindow, WindowTracker, event_id

log = logging.getLogger("recognition")

TABLE_NAME = "windows"


def app_id(prefix: str) -> str:
    return f"{prefix}classroom-recognition"


def topic_partitions(
    bootstrap: str, topic: str, timeout_s: float = 30.0, *, security: KafkaSecurity | None = None
) -> int:
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                **client_kwargs(bootstrap, client_id="classroom-recognition-setup", security=security)
            )
            try:
                described = admin.describe_topics([topic])
            finally:
                admin.close()
            partitions = described[0].get("partitions") or []
            if partitions:
                return len(partitions)
        except Exception as exc:  # broker still starting
            if time.monotonic() > deadline:
                raise ConnectionError(f"cannot describe {topic} at {bootstrap}: {exc}") from exc
        if time.monotonic() > deadline:
            raise ConnectionError(
                f"topic {topic} does not exist at {bootstrap}; run `classroom topics` first"
            )
        time.sleep(0.5)


def faust_app(settings: RecognitionSettings, partitions: int) -> faust.App:
    """The worker's faust app: raw keys and values, tables in memory (their changelogs restore them)."""
    prefix = settings.topic_prefix
    security = settings.kafka_security()
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id(prefix),
        broker=brokers,
        broker_credentials=security.faust_credentials(),
        store="memory://",
        datadir=str(Path(settings.state_dir) / app_id(prefix)),
        topic_partitions=partitions,
        topic_allow_declare=True,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.1, settings.session_timeout_ms / 5000),
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=settings.standby_replicas,
        producer_max_request_size=settings.max_message_bytes + 512,
        # One record per produce batch: the embedded broker answers ListOffsets with the last
        # batch's base offset + 1, so a changelog batch of several records would make faust's
        # recovery stop short of the newest window updates (measured, see README).
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_acks=-1,
        stream_wait_empty=False,
    )


def behaviour_event(
    observations: observations_pb2.ObservationSet,
    window: ReadyWindow,
    student: observations_pb2.StudentObservation,
    result: inference_pb2.RecognitionResult,
    response: inference_pb2.RecognitionBatchResponse,
    published_ts_us: int,
) -> events_pb2.BehaviourEvent:
    """The event of one classified window: the top label, top-5, attention, and where it came from."""
    top = result.probabilities[0]
    return events_pb2.BehaviourEvent(
        event_id=event_id(window.student_key, window.end_slot),
        classroom_id=observations.classroom_id,
        session_id=observations.session_id,
        camera_id=observations.camera_id,
        course_id=observations.course_id,
        student_id=student.student_id,
        seat_id=student.seat_id,
        window_start_us=window.window_start_us,
        window_end_us=window.window_end_us,
        segment_start_us=window.segment_start_us,
        segment_end_us=window.segment_end_us,
        first_sequence=window.first_sequence,
        last_sequence=window.last_sequence,
        label=top.label,
        confidence=top.probability,
        top5=list(result.probabilities[:5]),
        attention=result.attention,
        model_version=response.model_version,
        model_trained=response.model_trained,
        published_ts_us=published_ts_us,
        frame_published_ts_us=observations.frame_published_ts_us,
    )


class RecognitionService:
    name = "recognition"

    def __init__(self, settings: RecognitionSettings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics(self.name)
        self.health = HealthServer(self.metrics, readiness=self.readiness)
        self.client = ModelClient(
            settings.model_server,
            timeout_s=settings.model_timeout_s,
            tls=client_tls(
                settings.model_server_ca_file, settings.model_server_cert_file, settings.model_server_key_file
            ),
        )
        self.window_frames = WINDOW_FRAMES
        self.feature_dim = 0
        self.processed = 0
        self.events_out = 0
        self.model_server = Dependency(
            "model server",
            log=log,
            count_retry=self.metrics.count_retry,
            beat=self.health.beat,
            ok=False,
            detail="not contacted yet",
        )
        prefix = settings.topic_prefix
        security = settings.kafka_security()
        self.partitions = topic_partitions(settings.kafka_bootstrap, prefix + OBSERVATIONS, security=security)
        self.app = faust_app(settings, self.partitions)
        self.observations = self.app.topic(prefix + OBSERVATIONS, key_type=bytes, value_type=bytes)
        self.behaviours = self.app.topic(prefix + BEHAVIOURS, key_type=bytes, value_type=bytes)
        self.dead_letters = self.app.topic(prefix + DEAD_LETTER, key_type=bytes, value_type=bytes)
        assert self.app.conf.id + f"-{TABLE_NAME}-changelog" == prefix + RECOGNITION_STATE
        self.table = self.app.Table(
            TABLE_NAME, default=None, key_type=bytes, value_type=bytes, partitions=self.partitions
        )
        # faust drops records around rebalances: services/recognition/ordering.py reads them again
        self.delivery = OrderedDelivery.over(
            self.app,
            topic=prefix + OBSERVATIONS,
            bootstrap=settings.kafka_bootstrap,
            security=security,
            max_fetch_bytes=settings.max_message_bytes * 4,
            process=self._process,
            metrics=self.metrics,
            heartbeat=self.health.beat,
        )
        self.app.agent(self.observations, name="recognise", concurrency=1)(self._agent)
        self.app.task(self._on_start)
        self.app.timer(interval=WATCHDOG_INTERVAL_S)(self.delivery.watchdog)
        self._late_logged_at = 0.0
        self.tracker = WindowTracker(
            self.table,
            frames=WINDOW_FRAMES,
            fps=WINDOW_FPS,
            hop=HOP_FRAMES,
            on_skip=self._skipped,
            on_gap=self._gap,
        )

    def _gap(self, student_key: str, windows: int) -> None:
        """A student's observations stopped for longer than a window may bridge (frames shed
        upstream, a camera or stage down): the windows in between are counted, not emitted."""
        self.metrics.count_not_emitted("gap", windows)
        log.info("windows not emitted after a gap", extra={"student": student_key, "windows": windows})

    def _skipped(self, reason: str, student_key: str, behind_slots: int) -> None:
        """An observation the windows do not use: counted by reason; a late one is logged too
        (at most once a second: under overload there can be many)."""
        self.metrics.count_skipped(reason)
        if reason == "late" and time.monotonic() - self._late_logged_at >= 1.0:
            self._late_logged_at = time.monotonic()
            log.warning(
                "late observation not used",
                extra={
                    "student_key": student_key,
                    "slots_behind": behind_slots,
                    "late_total": self.tracker.skipped["late"],
                },
            )

    def readiness(self) -> tuple[bool, str]:
        if not self.delivery.ready():
            return False, "joining the consumer group or restoring the window table"
        return (self.model_server.ok, self.model_server.detail)

    async def _on_start(self) -> None:
        port = await start_health(self.health, self.settings)
        log.info("started", extra={"metrics_port": port, "partitions": self.partitions})
        info = await self._with_retry(self.client.info)
        self.window_frames = int(info.window_frames) or WINDOW_FRAMES
        self.feature_dim = int(info.feature_dim)
        self.tracker = WindowTracker(
            self.table,
            frames=self.window_frames,
            fps=WINDOW_FPS,
            hop=HOP_FRAMES,
            on_skip=self._skipped,
            on_gap=self._gap,
        )
        log.info(
            "model server answers",
            extra={
                "model": info.recognition_model_version,
                "trained": info.trained,
                "window_frames": self.window_frames,
            },
        )
        while True:
            self.health.beat()
            await asyncio.sleep(1.0)

    async def _with_retry(self, call, *args):  # type: ignore[no-untyped-def]
        """``call(*args)`` until the model server answers (``services.common.retry``)."""
        return await self.model_server.call(lambda: call(*args), retry_on=(DependencyUnavailable,))

    async def _agent(self, stream) -> None:  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await self.delivery.deliver(event)

    async def _process(self, record: Record) -> None:
        self.metrics.count_in(record.topic)
        started = time.perf_counter()
        try:
            await self._handle(record.value or b"")
        except BadInput as exc:
            await self._dead_letter(record, exc)
        self.processed += 1
        self.metrics.observe_stage(time.perf_counter() - started)

    async def _handle(self, payload: bytes) -> None:
        if len(payload) > self.settings.max_message_bytes:
            raise OversizedMessage(
                f"observation set of {len(payload)} bytes exceeds {self.settings.max_message_bytes}"
            )
        observations = parse_message(payload, observations_pb2.ObservationSet)
        assert isinstance(observations, observations_pb2.ObservationSet)
        if not observations.classroom_id or not observations.session_id:
            raise MalformedMessage("observation set lacks classroom or session id")
        ready: list[tuple[ReadyWindow, observations_pb2.StudentObservation]] = []
        for student in observations.students:
            keypoints, features = self._arrays(student)
            key = WindowTracker.student_key(
                observations.classroom_id, observations.session_id, observations.camera_id, student.student_id
            )
            window = self.tracker.observe(
                key,
                capture_ts_us=observations.capture_ts_us,
                keypoints=keypoints,
                node_features=features,
                seat_id=student.seat_id,
                course_id=observations.course_id,
                sequence=observations.sequence,
            )
            if window is not None:
                ready.append((window, student))
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "window state %s slot %s meta %s ready %s",
                    student.student_id,
                    self.tracker.slot_of(observations.capture_ts_us),
                    self.tracker.meta(key),
                    window.end_slot if window is not None else None,
                )
        if ready:
            await self._classify_and_emit(observations, ready)

    def _arrays(self, student: observations_pb2.StudentObservation) -> tuple[np.ndarray, np.ndarray]:
        if len(student.keypoints) != NUM_KEYPOINTS:
            raise BadInput(
                f"student {student.student_id}: {len(student.keypoints)} keypoints, expected {NUM_KEYPOINTS}"
            )
        if self.feature_dim and student.feature_dim != self.feature_dim:
            raise BadInput(
                f"student {student.student_id}: feature_dim {student.feature_dim}, model takes {self.feature_dim}"
            )
        if len(student.node_features) != NUM_KEYPOINTS * student.feature_dim * 2:
            raise BadInput(f"student {student.student_id}: node features have the wrong byte length")
        box = (student.box.x0, student.box.y0, student.box.x1, student.box.y1)
        if not (box[2] > box[0] and box[3] > box[1]):
            raise BadInput(f"student {student.student_id}: empty seat box")
        keypoints = np.array([[k.x, k.y, k.confidence] for k in student.keypoints], dtype=np.float32)
        features = np.frombuffer(student.node_features, dtype="<f2").reshape(
            NUM_KEYPOINTS, student.feature_dim
        )
        # Relative to the seat's crop square, as the network was trained (services/common/seats.py).
        return normalise_keypoints(keypoints, np.asarray(box, np.float64)), features

    async def _classify_and_emit(
        self,
        observations: observations_pb2.ObservationSet,
        ready: list[tuple[ReadyWindow, observations_pb2.StudentObservation]],
    ) -> None:
        request = inference_pb2.RecognitionBatchRequest(
            items=[
                inference_pb2.RecognitionItem(
                    request_id=str(i),
                    frames=w.keypoints.shape[0],
                    feature_dim=w.node_features.shape[2],
                    keypoints=np.ascontiguousarray(w.keypoints, dtype="<f4").tobytes(),
                    node_features=np.ascontiguousarray(w.node_features, dtype="<f2").tobytes(),
                )
                for i, (w, _) in enumerate(ready)
            ]
        )
        response = await self._with_retry(self.client.recognise, request)
        published_ts_us = now_us()
        futures = []
        for (window, student), result in zip(ready, response.results, strict=True):
            if result.error or not result.probabilities:
                log.warning(
                    "model refused a window", extra={"student": student.student_id, "error": result.error}
                )
                self.metrics.count_dead_letter("model_refused_window")
                continue
            event = behaviour_event(observations, window, student, result, response, published_ts_us)
            futures.append(
                await self.behaviours.send(
                    key=observations.classroom_id.encode(), value=event.SerializeToString()
                )
            )
            self.metrics.count_out(self.behaviours.get_topic_name())
            if observations.frame_published_ts_us:
                self.metrics.observe_since_capture(
                    (published_ts_us - observations.frame_published_ts_us) / 1e6
                )
        # Wait for the broker's acknowledgement before the windows count as emitted and the
        # source event is acked (and later committed).
        await asyncio.gather(*futures)
        self.events_out += len(futures)
        for window, _ in ready:
            self.tracker.mark_emitted(window.student_key, window.end_slot)

    async def _dead_letter(self, record: Record, error: BadInput) -> None:
        envelope = refuse(
            record,
            error,
            service=self.name,
            metrics=self.metrics,
            log=log,
            keep_payload=self.settings.deadletter_keep_payload,
            max_payload=self.settings.max_message_bytes - 4096,
        )
        await (await self.dead_letters.send(key=record.key or b"", value=envelope))

    def run(self) -> int:
        """Run the faust worker in this process until SIGINT/SIGTERM; it commits acked offsets on the way out."""
        worker = faust.Worker(
            self.app,
            loglevel=os.environ.get("RECOGNITION_FAUST_LOGLEVEL", "warn"),
            quiet=True,
            override_logging=False,
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
