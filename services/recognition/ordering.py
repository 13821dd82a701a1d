"""Every record of a partition handled once, in offset order: the recognition worker's guard around
faust's fetch loop. This module is the whole workaround, and it uses faust's and aiokafka's public API
only (``App.rebalancing``, ``App.rebalancing_count``, ``App.tables.actives_ready``, ``App.conf.id``,
``App.consumer``'s ``assignment``/``position``/``seek_wait``/``ack``/``earliest_offsets``, and
``AIOKafkaAdminClient.list_consumer_group_offsets``).

Why: faust-streaming 0.15.3 can drop records whose hand-off to the agent races a flow suspension
(``Consumer._drain_messages``: ``wait_first(callback(message), suspend_flow.wait())``; the read
offset moves on anyway), as happens at start and in every rebalance. The agent then sees
offsets 60, 116, 117, ... and the windows built from 61-115 are never made
(tests/services/recognition/test_recognition_service.py caught it about one run in four).
Upstream tracks rebalance-time skips as https://github.com/faust-streaming/faust/issues/221
("Prefetched events cause out of order issue after rebalance"; its fixes, #223 and #253, added the
flow suspension whose race drops records here) and
https://github.com/faust-streaming/faust/issues/216. Remove this module once a faust-streaming
release hands every fetched record to the agent across a rebalance (the recognition service test
above, run a few times, shows it). Seeking faust's consumer back does not help: its ``seek``
touches the consumer thread's client from the wrong thread, and records already in flight move
the read offset past the sought one again.

So the agent reads what faust skipped itself. The observations topic has no gaps of its own
(plain producers, no compaction, no transactions): a forward jump in a partition's offsets
means skipped records. ``OffsetOrder.check`` reports the missing range, ``GapReader`` fetches it
straight from the broker with a short-lived consumer outside the group, and ``OrderedDelivery``
handles those records, acknowledges them to faust (so its commits move past them) and only then
the record after the gap. A redelivery (an offset at or below the expected one) is handled as
usual: windows and event ids are idempotent. Where each partition resumed after an assignment is
the group's committed offset, read from the broker (``BrokerCommitted``): faust seeks there, and
nobody else commits the partition while this worker holds it.

faust can also drop *every* record it has fetched, so that none arrives to show a jump: the
worker then sits idle while its consumer's position is past the offset it expects. The watchdog
(``OrderedDelivery.watchdog``) looks for exactly that, an idle agent with ``position > expected``,
and then seeks faust's consumer back to the expected offset through ``seek_wait`` (which runs on
the consumer's own thread; with nothing in flight the read offset stays where it was put).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from faust.types import TP
from faust.types import Message as FaustMessage

from services.common.kafka_security import KafkaSecurity, client_kwargs
from services.common.metrics import ServiceMetrics

log = logging.getLogger("recognition")

# The watchdog looks every WATCHDOG_INTERVAL_S for an agent idle for WATCHDOG_IDLE_S whose
# consumer has fetched past the offset it expects (faust dropped what it fetched).
WATCHDOG_INTERVAL_S = 2.0
WATCHDOG_IDLE_S = 3.0


class ConsumerView(Protocol):
    """What the guard needs of the group's consumer: assignments seen and where they resumed."""

    def rebalances(self) -> int: ...

    async def committed(self) -> Mapping[Any, int]: ...

    async def earliest(self, tp: Any) -> int | None: ...


class BrokerCommitted:
    """The consumer group's committed offsets, asked of the group coordinator (no group membership)."""

    def __init__(
        self, bootstrap: str, *, security: KafkaSecurity | None = None, timeout_s: float = 15.0
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security  # None: plaintext (client_kwargs)
        self.timeout_s = timeout_s

    async def read(self, group_id: str, partitions: list[Any]) -> dict[TP, int]:
        """tp -> committed offset for those of ``partitions`` that have one."""
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        if not partitions:
            return {}
        admin = AIOKafkaAdminClient(
            **client_kwargs(
                self.bootstrap, client_id="classroom-recognition-committed", security=self.security
            ),
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        await admin.start()
        try:
            # Partitions named: the embedded broker cannot answer "every partition of the group".
            offsets = await admin.list_consumer_group_offsets(
                group_id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in partitions]
            )
        finally:
            await admin.close()
        # -1: nothing committed (the group then starts at the earliest offset)
        return {TP(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


class FaustConsumerView:
    """ConsumerView over a running faust app (public API only)."""

    def __init__(self, app: Any, topic: str, committed: BrokerCommitted) -> None:
        self.app = app
        self.topic = topic
        self.broker_committed = committed

    def rebalances(self) -> int:
        return int(self.app.rebalancing_count)

    async def committed(self) -> Mapping[Any, int]:
        """Where faust resumed each assigned partition: the group's committed offsets (faust's
        recovery seeks there, and no one commits a partition this worker holds but this worker)."""
        assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == self.topic]
        return await self.broker_committed.read(self.app.conf.id, sorted(assigned))

    async def earliest(self, tp: Any) -> int | None:
        offset = (await self.app.consumer.earliest_offsets(tp)).get(tp)
        return offset if isinstance(offset, int) and offset >= 0 else None


def worker_ready(app: Any) -> bool:
    """The worker has its partitions and its tables are restored (faust's "Worker ready")."""
    return not app.rebalancing and bool(app.tables.actives_ready)


@dataclass(frozen=True)
class Gap:
    start: int  # first missing offset
    end: int  # the offset that arrived instead (exclusive end of the gap)


class OffsetOrder:
    def __init__(self, consumer: ConsumerView) -> None:
        self.consumer = consumer
        self._expected: dict[Any, int] = {}  # tp -> the offset that should come next
        self._asked_earliest: set[Any] = set()
        self._rebalances = -1

    async def expected(self, tp: Any) -> int | None:
        """The offset of ``tp`` that should come next (None: not known yet)."""
        if self.consumer.rebalances() != self._rebalances:
            # a new assignment: each partition continues from the offset faust resumed it at
            self._rebalances = self.consumer.rebalances()
            committed = await self.consumer.committed()
            self._expected = {t: o for t, o in committed.items() if isinstance(o, int) and o >= 0}
            self._asked_earliest.clear()
        expected = self._expected.get(tp)
        if expected is None and tp not in self._asked_earliest:
            # nothing committed yet: the group starts at the beginning (auto_offset_reset earliest)
            self._asked_earliest.add(tp)
            expected = await self.consumer.earliest(tp)
            if expected is not None:
                self._expected[tp] = expected
        return expected

    async def check(self, tp: Any, offset: int) -> Gap | None:
        """The range skipped before this record, if any; the record itself is to be handled."""
        expected = await self.expected(tp)
        self._expected[tp] = max(offset + 1, expected or 0)
        if expected is None or offset <= expected:
            if expected is not None and offset < expected:
                log.info(
                    "redelivery", extra={"partition": _partition(tp), "offset": offset, "expected": expected}
                )
            return None
        return Gap(expected, offset)


async def undelivered(order: OffsetOrder, positions: Mapping[Any, int | None]) -> dict[Any, int]:
    """Partitions whose consumer position is past the offset expected next: tp -> where to re-read.

    Only meaningful while the agent is idle (nothing it has been handed is still being handled).
    """
    out = {}
    for tp, position in positions.items():
        expected = await order.expected(tp)
        if expected is not None and position is not None and position > expected:
            out[tp] = expected
    return out


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class GapReader:
    """Reads a range of one partition straight from the broker (no group, nothing committed)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        max_fetch_bytes: int,
        timeout_s: float = 15.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security  # None: plaintext (client_kwargs)
        self.max_fetch_bytes = max_fetch_bytes
        self.timeout_s = timeout_s

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            **client_kwargs(
                self.bootstrap, client_id="classroom-recognition-gap-reader", security=self.security
            ),
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=self.max_fetch_bytes,
            fetch_max_bytes=self.max_fetch_bytes,
        )
        records: list[Record] = []
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            deadline = time.monotonic() + self.timeout_s
            position, empty_polls = start, 0
            # (end_offsets cannot bound the loop: the embedded broker's ListOffsets answers with a
            # count of batches, not of records; two empty polls in a row end a range that stops short)
            while position < end and time.monotonic() < deadline and empty_polls < 2:
                batch = await consumer.getmany(tp, timeout_ms=500)
                empty_polls = 0 if batch else empty_polls + 1
                for r in batch.get(tp, []):
                    if r.offset >= end:
                        position = end
                        break
                    records.append(Record(topic, partition, r.offset, r.timestamp, r.key, r.value))
                    position = r.offset + 1
        finally:
            await consumer.stop()
        return records


def _partition(tp: Any) -> int | None:
    return getattr(tp, "partition", None)


class OrderedDelivery:
    """Hands each observation record to ``process`` in offset order, the records faust skipped included.

    The agent calls ``deliver`` for every event and the app's timer calls ``watchdog``;
    ``heartbeat`` is called while a record waits for a rebalance to end.
    """

    def __init__(
        self,
        app: Any,
        *,
        topic: str,
        order: OffsetOrder,
        gap_reader: GapReader,
        process: Callable[[Record], Awaitable[None]],
        metrics: ServiceMetrics,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.topic = topic
        self.order = order
        self.gap_reader = gap_reader
        self.process = process
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.busy = False
        self.last_record_at = time.monotonic()

    @classmethod
    def over(
        cls,
        app: Any,
        *,
        topic: str,
        bootstrap: str,
        security: KafkaSecurity,
        max_fetch_bytes: int,
        process: Callable[[Record], Awaitable[None]],
        metrics: ServiceMetrics,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> OrderedDelivery:
        """The guard for the agent of ``app`` that reads ``topic`` from the brokers at ``bootstrap``."""
        committed = BrokerCommitted(bootstrap, security=security)
        return cls(
            app,
            topic=topic,
            order=OffsetOrder(FaustConsumerView(app, topic, committed)),
            gap_reader=GapReader(bootstrap, max_fetch_bytes=max_fetch_bytes, security=security),
            process=process,
            metrics=metrics,
            heartbeat=heartbeat,
        )

    def ready(self) -> bool:
        return worker_ready(self.app)

    async def deliver(self, event: Any) -> None:
        """Handle one event of the agent's stream, after any records faust skipped before it."""
        message = event.message
        self.busy = True
        try:
            if not await self._settled(event):
                return
            gap = await self.order.check(message.tp, message.offset)
            if gap is not None:
                await self._fill_gap(message.tp, gap)
            await self.process(
                Record(message.topic, message.partition, message.offset, 0, event.key, event.value)
            )
        finally:
            self.busy = False
            self.last_record_at = time.monotonic()

    async def _settled(self, event: Any) -> bool:
        """Wait out a rebalance and its table recovery; False if the event's partition moved away.

        faust 0.15 can hand the agent records fetched between a partition's assignment and its
        pause, while the window table is still being restored from the changelog: processed then,
        they would start every student's window afresh (lost windows), and recovery would then
        overwrite what they wrote. Waiting until the rebalance is over ("Worker ready") makes them
        see the recovered table; a record of a partition that was revoked meanwhile is left to its
        new owner (faust discards commits of revoked partitions, so it is redelivered there).
        """
        waited, since, told = False, time.monotonic(), 0.0
        while not self.ready():
            waited = True
            self.heartbeat()
            if time.monotonic() - since > told + 10.0:
                told = time.monotonic() - since
                log.warning(
                    "a record waits for the rebalance to end",
                    extra={
                        "waited_s": round(told, 1),
                        "rebalancing": self.app.rebalancing,
                        "recovered": self.app.tables.actives_ready,
                        "partition": event.message.partition,
                        "offset": event.message.offset,
                    },
                )
            await asyncio.sleep(0.02)
        if waited and event.message.tp not in self.app.consumer.assignment():
            log.info(
                "skipped a record of a revoked partition",
                extra={"partition": event.message.partition, "offset": event.message.offset},
            )
            return False
        return True

    async def _fill_gap(self, tp: Any, gap: Gap) -> None:
        """Handle the records faust skipped, then acknowledge them to faust."""
        log.warning(
            "the consumer skipped records; reading them from the broker",
            extra={"partition": tp.partition, "from_offset": gap.start, "to_offset": gap.end},
        )
        self.metrics.count_retry("skipped_records")
        records = await self.gap_reader.read(tp.topic, tp.partition, gap.start, gap.end)
        for record in records:
            await self.process(record)
            self.app.consumer.ack(_faust_message(record, tp))
        missing = (gap.end - gap.start) - len(records)
        if missing:
            log.error(
                "records missing from the partition, going on without them",
                extra={"partition": tp.partition, "missing": missing, "from_offset": gap.start},
            )
            self.metrics.count_dead_letter("offset_gap")

    async def watchdog(self) -> None:
        """Re-read what faust fetched but never delivered (an idle agent, its consumer ahead)."""
        if self.busy or not self.ready():
            return
        if time.monotonic() - self.last_record_at < WATCHDOG_IDLE_S:
            return
        consumer = self.app.consumer
        positions = {
            tp: await consumer.position(tp) for tp in consumer.assignment() if tp.topic == self.topic
        }
        for tp, expected in (await undelivered(self.order, positions)).items():
            if self.busy:
                return
            log.warning(
                "records fetched but not delivered; reading them again",
                extra={"partition": tp.partition, "from_offset": expected, "position": positions[tp]},
            )
            self.metrics.count_retry("undelivered_records")
            await consumer.seek_wait({tp: expected})
            self.last_record_at = time.monotonic()


def _faust_message(record: Record, tp: Any) -> FaustMessage:
    """The faust message that acknowledges ``record`` (faust's ack needs only its tp and offset)."""
    return FaustMessage(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms / 1000,
        0,
        None,
        record.key,
        record.value,
        None,
        tp=tp,
    )
