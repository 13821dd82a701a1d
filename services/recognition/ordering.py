"""Every record of a partition handled, in offset order: a guard around faust's fetch loop.

faust-streaming 0.15.3 can drop records whose hand-off to the agent races a flow suspension
(``Consumer._drain_messages``: ``wait_first(callback(message), suspend_flow.wait())``; the read
offset moves on anyway), as happens at start and in every rebalance. The agent then sees
offsets 60, 116, 117, ... and the windows built from 61-115 are never made
(tests/services/recognition/test_recognition_service.py caught it about one run in four).
Seeking faust's consumer back does not help: its ``_seek`` touches the consumer thread's
client from the wrong thread, and records already in flight move the read offset past the
sought one again.

So the agent reads what faust skipped itself. The observations topic has no gaps of its own
(plain producers, no compaction, no transactions): a forward jump in a partition's offsets
means skipped records. ``OffsetOrder.check`` reports the missing range, ``GapReader`` fetches it
straight from the broker with a short-lived consumer outside the group, and the agent handles
those records, acknowledges them to faust (so its commits move past them) and only then the
record after the gap. A redelivery (an offset at or below the expected one) is handled as
usual: windows and event ids are idempotent.

faust can also drop *every* record it has fetched, so that none arrives to show a jump: the
worker then sits idle while its consumer's position is past the offset it expects. The
recognition worker's watchdog (``RecognitionService._watchdog``) looks for exactly that, an idle
agent with ``position > expected``, and then seeks faust's consumer back to the expected offset
through ``seek_wait`` (which runs on the consumer's own thread; with nothing in flight the read
offset stays where it was put).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.kafka_security import KafkaSecurity

log = logging.getLogger("recognition")


class ConsumerView(Protocol):
    """What the guard needs of the group's consumer: assignments seen and where they resumed."""

    def rebalances(self) -> int: ...

    def committed(self) -> Mapping[Any, int]: ...

    async def earliest(self, tp: Any) -> int | None: ...


class FaustConsumerView:
    """ConsumerView over a running faust app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def rebalances(self) -> int:
        return int(self.app.rebalancing_count)

    def committed(self) -> Mapping[Any, int]:
        # filled by faust's perform_seek after every assignment (the offsets it resumed from)
        return getattr(self.app.consumer, "_committed_offset", None) or {}

    async def earliest(self, tp: Any) -> int | None:
        offset = (await self.app.consumer.earliest_offsets(tp)).get(tp)
        return offset if isinstance(offset, int) and offset >= 0 else None


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
            committed = self.consumer.committed()
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
        self.security = security or KafkaSecurity()
        self.max_fetch_bytes = max_fetch_bytes
        self.timeout_s = timeout_s

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=self.max_fetch_bytes,
            fetch_max_bytes=self.max_fetch_bytes,
            client_id="classroom-recognition-gap-reader",
            **self.security.kwargs(),
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
