"""The Kafka data plane every stream service runs on (aiokafka, asyncio).

``StreamService`` is the consume -> process -> produce -> commit loop:

- a batch of records is polled (``max_poll_records``) and handed to ``process_batch``;
- a record whose input is bad (``BadInput``) goes to the dead-letter topic with its reason,
  is counted, and the service keeps going;
- a dependency that is down (``DependencyUnavailable``: model server, database) makes the
  loop retry the same batch with capped exponential backoff, committing nothing, so no
  message is lost and none is skipped;
- offsets are committed only after every output of the batch (and every dead letter) was
  acknowledged by the broker; on shutdown the batch in flight is finished first; a partition
  assigned (a start, a restart, a rebalance) resumes at the group's committed offset, logged;
- a frame stage sheds a frame set older than ``shed_after_s`` since capture, counted and, when
  it is every frame set of a classroom for a while, logged (``services.common.freshness``).

Start-up, signals, the health server and the order of shutdown are the skeleton's
(``services.common.runner``); this loop and what it closes are the stream stage's own.

Why aiokafka: measured here it moves 300 KB messages at about 200 MB/s produce and
400 MB/s consume on loopback, against about 10 MB/s for kafka-python (DESIGN.md and
``classroom bench pipeline``); faust-streaming, which the recognition service uses for
its windowed state, runs on it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.common.campus_watch import CampusFile
from services.common.errors import BadInput, OversizedMessage
from services.common.freshness import FrameAgeWatch
from services.common.kafka_security import client_kwargs
from services.common.lifecycle import StopFlag
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.pb.classroom.v1 import deadletter_pb2
from services.common.retry import Dependency
from services.common.runner import ShutdownStep, run_service
from services.common.settings import FrameStageSettings, ServiceSettings
from services.common.topics import DEAD_LETTER

# Bytes of protocol overhead a record adds on top of key and value.
RECORD_OVERHEAD = 512


class StoppedDuringOutage(Exception):
    """Shutdown was asked for while a dependency was down; the batch stays uncommitted."""


class DependencyUnavailable(Exception):
    """A dependency (model server, database) failed in a way that may pass: retry, do not dead-letter."""


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes
    value: bytes
    # the record's timestamp: the capture time of the frame set it derives from, carried from
    # stage to stage so each can tell a stale frame set without parsing it (None: the producer's clock)
    timestamp_ms: int | None = None


@dataclass(slots=True)
class RecordResult:
    """What became of one input record: outputs to produce, or the bad input that stopped it."""

    outputs: list[Output]
    bad_input: BadInput | None = None


def now_us() -> int:
    return time.time_ns() // 1000


class Producer:
    """aiokafka producer that refuses messages above the campus limit before sending them."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics, *, client_id: str) -> None:
        self.max_message_bytes = settings.max_message_bytes
        self.metrics = metrics
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here: aiokafka binds clients to the running event loop.
        self._producer = AIOKafkaProducer(
            **client_kwargs(
                self._settings.kafka_bootstrap,
                client_id=self._client_id,
                security=self._settings.kafka_security(),
            ),
            acks="all",
            linger_ms=2,
            # Our own limit is enforced in send(); the client's is set just above it so the
            # client never silently differs from what the campus broker accepts.
            max_request_size=self._settings.max_message_bytes + RECORD_OVERHEAD,
            request_timeout_ms=30_000,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    def check_size(self, key: bytes | None, value: bytes) -> None:
        size = len(value) + len(key or b"")
        if size > self.max_message_bytes:
            raise OversizedMessage(
                f"message of {size} bytes exceeds the configured limit of {self.max_message_bytes}"
            )

    async def send(self, output: Output) -> asyncio.Future:
        """Queue one message; returns the future the broker's acknowledgement resolves."""
        self.check_size(output.key, output.value)
        assert self._producer is not None, "Producer.start() first"
        future = await self._producer.send(
            output.topic, output.value, key=output.key, timestamp_ms=output.timestamp_ms
        )
        self.metrics.count_out(output.topic)
        return future

    async def flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()


class SourceRecord(Protocol):
    """Where a refused message came from: a Kafka record (aiokafka's, recognition's), or a
    frame set capture made itself (``partition`` -1, ``offset`` its sequence)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def dead_letter(
    *,
    service: str,
    record: SourceRecord,
    error: BadInput,
    keep_payload: bool,
    max_payload: int,
    advice: str = "",
) -> deadletter_pb2.DeadLetter:
    """The one dead-letter envelope of the suite: the reason always, the payload only when the
    service keeps payloads (``<PREFIX>_DEADLETTER_KEEP_PAYLOAD``) and it fits."""
    payload = record.value or b""
    keep = keep_payload and len(payload) <= max_payload
    return deadletter_pb2.DeadLetter(
        service=service,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key or b"",
        reason_code=error.reason_code,
        reason=(error.detail + (f" ({advice})" if advice else ""))[:2000],
        failed_ts_us=now_us(),
        payload_size=len(payload),
        payload=payload if keep else b"",
        payload_dropped=not keep,
    )


def refuse(
    record: SourceRecord,
    error: BadInput,
    *,
    service: str,
    metrics: ServiceMetrics,
    log: logging.Logger | logging.LoggerAdapter[Any],
    keep_payload: bool,
    max_payload: int,
    advice: str = "",
) -> bytes:
    """What every runner does with a message it cannot use, short of sending it: counted under its
    reason, logged with where it came from (never its payload), and the dead-letter envelope's
    bytes returned for the runner's own producer (aiokafka or faust) to send."""
    metrics.count_dead_letter(error.reason_code)
    log.warning(
        "dead letter",
        extra={
            "reason_code": error.reason_code,
            "reason": error.detail[:300],
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        },
    )
    envelope = dead_letter(
        service=service,
        record=record,
        error=error,
        keep_payload=keep_payload,
        max_payload=max_payload,
        advice=advice,
    )
    return envelope.SerializeToString()


class StreamService(ABC):
    """Base of the enhancement, fusion and store services (see the module docstring)."""

    #: service name: consumer group id, metrics label, log field
    name: str = "service"
    #: what process_batch raises DependencyUnavailable for: readiness, retry metric and log name it
    depends_on: str = "dependency"

    def __init__(self, settings: ServiceSettings, *, input_topic: str, group_id: str | None = None) -> None:
        self.settings = settings
        self.input_topic = settings.topic_prefix + input_topic
        self.dead_letter_topic = settings.topic_prefix + DEAD_LETTER
        self.group_id = group_id or f"classroom-{self.name}"
        self.metrics = ServiceMetrics(self.name)
        self.log = logging.getLogger(self.name)
        self.stop = StopFlag()
        self.health = HealthServer(self.metrics, readiness=self.readiness)
        self.producer = Producer(settings, self.metrics, client_id=f"classroom-{self.name}")
        self.consumer: AIOKafkaConsumer | None = None
        self.processed = 0
        self.dead_lettered = 0
        self._assigned = False
        self._assignment: set[TopicPartition] = set()
        self._resuming: set[TopicPartition] = set()  # assigned, first batch not handled yet
        # frame stages: every frame set's age on arrival, stale ones shed (services.common.freshness)
        self.freshness = (
            FrameAgeWatch(settings.shed_after_s, metrics=self.metrics, log=self.log)
            if isinstance(settings, FrameStageSettings) and settings.shed_after_s > 0
            else None
        )
        # what process_batch depends on (model server, database), for readiness and the logs
        self.dependency = Dependency(
            self.depends_on, log=self.log, count_retry=self.metrics.count_retry, beat=self.health.beat
        )
        # the campus file, reloaded while running (services.common.campus_watch); None: not read
        self.campus: CampusFile | None = (
            CampusFile(settings.campus_file, reload_s=settings.campus_reload_s, log=self.log)
            if settings.campus_file is not None
            else None
        )

    # -- hooks -------------------------------------------------------------------------

    async def campus_changed(self) -> None:  # noqa: B027 - optional hook, empty by default
        """The campus file changed and the new version is in ``self.campus.current``."""

    async def setup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Connect to dependencies (model server, database). Called before consuming."""

    async def teardown(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release dependencies. Called after the last commit."""

    @abstractmethod
    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[RecordResult]:
        """Outputs per record, in order. Raise DependencyUnavailable to retry the whole batch."""

    def readiness(self) -> tuple[bool, str]:
        if self.consumer is None or not self._assigned:
            return False, "not consuming yet"
        if not self.dependency.ok:
            return False, self.dependency.detail
        return True, "ok"

    # -- loop ----------------------------------------------------------------------------

    def _make_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            self.input_topic,
            **client_kwargs(
                self.settings.kafka_bootstrap,
                client_id=f"classroom-{self.name}",
                security=self.settings.kafka_security(),
            ),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.settings.session_timeout_ms // 5),
            max_poll_interval_ms=600_000,
            max_partition_fetch_bytes=max(2 * self.settings.max_message_bytes, 4_000_000),
            fetch_max_bytes=64_000_000,
        )

    async def run(self) -> int:
        """Run until stopped (``services.common.runner``); returns the process exit code."""
        return await run_service(self)

    async def serve(self, metrics_port: int) -> int:
        """Connect, then consume until stopped; a stop during a dependency outage leaves the
        batch in flight uncommitted (redelivered on restart)."""
        self.log.info("starting", extra={"input_topic": self.input_topic, "metrics_port": metrics_port})
        try:
            await self.producer.start()
            await self.setup()
            self.consumer = self._make_consumer()
            await self.consumer.start()
            while not self.stop.is_set():
                await self._turn()
        except StoppedDuringOutage as exc:
            self.log.warning(
                "stopped while a dependency was down; the batch in flight will be redelivered",
                extra={"error": str(exc)},
            )
        return 0

    async def _turn(self) -> None:
        """One turn of the loop: beat, follow the campus file, handle one poll's batches."""
        assert self.consumer is not None
        self.health.beat()
        if self.campus is not None and self.campus.poll():
            await self.campus_changed()
        batches = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.max_poll_records)
        self._follow_assignment()
        for tp, records in batches.items():
            await self._handle(tp, records)
            await self._update_lag(tp)

    def shutdown_steps(self) -> list[ShutdownStep]:
        return [
            ("consumer", self._stop_consumer),
            ("dependencies", self.teardown),
            ("producer", self.producer.stop),
        ]

    async def _stop_consumer(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    def stopped_fields(self) -> dict[str, Any]:
        return {"processed": self.processed, "dead_letters": self.dead_lettered}

    async def _handle(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        assert self.consumer is not None
        self.metrics.count_in(tp.topic, len(records))
        oversized = {
            i: OversizedMessage(
                f"incoming message of {len(r.value or b'')} bytes exceeds the limit of {self.settings.max_message_bytes}"
            )
            for i, r in enumerate(records)
            if len(r.value or b"") > self.settings.max_message_bytes
        }
        if tp in self._resuming:
            self._resuming.discard(tp)
            self._log_resume(tp, records[0])
        stale = self._stale(tp, records)
        regular = [r for i, r in enumerate(records) if i not in oversized and i not in stale]
        started = time.perf_counter()
        results = await self._process_with_retry(regular) if regular else []
        by_index: dict[int, RecordResult] = {}
        it = iter(results)
        for i in range(len(records)):
            if i in stale:
                by_index[i] = RecordResult([])  # shed: nothing to produce, committed with the rest
            else:
                by_index[i] = RecordResult([], oversized[i]) if i in oversized else next(it)
        futures: list[asyncio.Future] = []
        for i, record in enumerate(records):
            result = by_index[i]
            if result.bad_input is None:
                try:
                    for output in result.outputs:
                        if output.timestamp_ms is None:  # the capture time travels on
                            output = replace(output, timestamp_ms=record.timestamp)
                        futures.append(await self.producer.send(output))
                    continue
                except OversizedMessage as exc:
                    result = RecordResult([], OversizedMessage(f"output too large: {exc.detail}"))
            futures.append(await self._send_dead_letter(record, result.bad_input))  # type: ignore[arg-type]
        # Commit only what the broker acknowledged: a failed send raises and nothing is committed.
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        for _ in records:
            self.metrics.observe_stage(elapsed / len(records))
        await self.consumer.commit({tp: records[-1].offset + 1})
        self.processed += len(records)

    def _stale(self, tp: TopicPartition, records: list[ConsumerRecord]) -> set[int]:
        """Indices of frame sets older than ``shed_after_s`` since capture (their record timestamp);
        every frame set's age is told to the watch, which counts and logs (``FrameAgeWatch``)."""
        if self.freshness is None:
            return set()  # the store never sheds: events are not frames
        assert self.consumer is not None
        now_ms = time.time_ns() // 1_000_000
        highwater = self.consumer.highwater(tp)
        stale = set()
        for i, record in enumerate(records):
            if record.timestamp <= 0:
                continue
            shed = self.freshness.arrived(
                (record.key or b"").decode(errors="replace"),
                (now_ms - record.timestamp) / 1000,
                messages_behind=None if highwater is None else max(0, highwater - record.offset - 1),
            )
            if shed:
                stale.add(i)
        return stale

    def _follow_assignment(self) -> None:
        """Note the partitions this consumer was just given: their first batch is logged."""
        assert self.consumer is not None
        assignment = set(self.consumer.assignment())
        self._resuming = (self._resuming | (assignment - self._assignment)) & assignment
        self._assignment = assignment
        self._assigned = bool(assignment)

    def _log_resume(self, tp: TopicPartition, first: ConsumerRecord) -> None:
        """Where a partition just assigned (a start, a restart, a rebalance) resumes: the group's
        committed offset, how far behind its end, and how old its first frame set is."""
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        age_s = time.time() - first.timestamp / 1000 if first.timestamp > 0 else None
        self.log.info(
            "resuming partition at the committed offset",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": first.offset,
                "messages_behind": None if highwater is None else highwater - first.offset,
                "first_age_s": None if age_s is None else round(age_s, 1),
            },
        )

    async def _wait_unless_stopped(self, delay: float) -> None:
        """The wait between retries; a stop mid-outage ends it (``StoppedDuringOutage``): the
        batch stays uncommitted and is redelivered on restart."""
        if await self.stop.wait(delay):
            raise StoppedDuringOutage(self.dependency.detail)

    async def _process_with_retry(self, records: list[ConsumerRecord]) -> list[RecordResult]:
        """``process_batch`` until its dependencies answer (``services.common.retry``)."""
        results = await self.dependency.call(
            lambda: self.process_batch(records),
            retry_on=(DependencyUnavailable,),
            sleep=self._wait_unless_stopped,
        )
        if len(results) != len(records):
            raise RuntimeError(
                f"{self.name}: process_batch returned {len(results)} results for {len(records)}"
            )
        return results

    async def _send_dead_letter(self, record: ConsumerRecord, error: BadInput) -> asyncio.Future:
        self.dead_lettered += 1
        envelope = refuse(
            record,
            error,
            service=self.name,
            metrics=self.metrics,
            log=self.log,
            keep_payload=self.settings.deadletter_keep_payload,
            max_payload=self.settings.max_message_bytes - 4096,
        )
        return await self.producer.send(Output(self.dead_letter_topic, record.key or b"", envelope))

    async def _update_lag(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            return
        position = await self.consumer.position(tp)
        self.metrics.set_lag(tp.topic, tp.partition, max(0, highwater - position))
