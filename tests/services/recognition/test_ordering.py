"""The offset-order guard around faust's fetch loop: what faust skipped is found and read again."""

from __future__ import annotations

import asyncio

import pytest

from services.common.embedded_broker import EmbeddedBroker
from services.recognition.ordering import Gap, GapReader, OffsetOrder
from tests.kafka_helpers import produce

TP = ("observations", 1)


class FakeConsumer:
    def __init__(self, committed: dict | None = None, earliest: int | None = 0) -> None:
        self.rebalance_count = 1
        self._committed = committed or {}
        self._earliest = earliest

    def rebalances(self) -> int:
        return self.rebalance_count

    def committed(self):
        return self._committed

    async def earliest(self, tp):
        return self._earliest


def gaps(order: OffsetOrder, offsets: list[int]) -> list[Gap | None]:
    async def run() -> list[Gap | None]:
        return [await order.check(TP, o) for o in offsets]

    return asyncio.run(run())


def test_a_forward_jump_reports_the_skipped_range_once() -> None:
    order = OffsetOrder(FakeConsumer(committed={TP: 60}))
    # faust hands over 60, drops 61-115, goes on with 116-118
    assert gaps(order, [60, 116, 117, 118]) == [None, Gap(61, 116), None, None]


def test_the_first_record_after_an_assignment_is_checked_against_the_committed_offset() -> None:
    order = OffsetOrder(FakeConsumer(committed={TP: 60}))
    assert gaps(order, [61, 62]) == [Gap(60, 61), None]


def test_redeliveries_are_no_gap() -> None:
    order = OffsetOrder(FakeConsumer(committed={TP: 10}))
    assert gaps(order, [10, 11, 12, 10, 11, 12, 13]) == [None] * 7


def test_without_a_commit_the_partition_starts_at_its_earliest_offset() -> None:
    order = OffsetOrder(FakeConsumer(committed={}, earliest=5))
    assert gaps(order, [9, 10]) == [Gap(5, 9), None]


def test_a_new_assignment_resumes_from_the_new_committed_offset() -> None:
    consumer = FakeConsumer(committed={TP: 0})
    order = OffsetOrder(consumer)
    assert gaps(order, [0, 1, 2]) == [None] * 3
    consumer.rebalance_count += 1
    consumer._committed = {TP: 40}  # another worker went on meanwhile
    assert gaps(order, [40, 41]) == [None, None]


@pytest.mark.integration
def test_the_gap_reader_reads_exactly_the_missing_range(broker: EmbeddedBroker, topic_prefix: str) -> None:
    topic = topic_prefix + "observations.v1"
    produce(broker.bootstrap, topic, [(b"room-1", f"record {i}".encode()) for i in range(30)])
    reader = GapReader(broker.bootstrap, max_fetch_bytes=1_000_000, timeout_s=10)

    async def read(start: int, end: int):
        records = []
        for partition in (0, 1):  # the key went to one of the two partitions
            records += await reader.read(topic, partition, start, end)
        return records

    records = asyncio.run(read(7, 19))
    assert [r.offset for r in records] == list(range(7, 19))
    assert [r.value for r in records] == [f"record {i}".encode() for i in range(7, 19)]
    # a range past the end of the partition comes back short, not hanging
    assert [r.offset for r in asyncio.run(read(28, 40))] == [28, 29]


def test_an_idle_partition_whose_consumer_fetched_past_the_expected_offset_is_read_again() -> None:
    from services.recognition.ordering import undelivered

    other = ("observations", 0)
    consumer = FakeConsumer(committed={TP: 60, other: 5})
    order = OffsetOrder(consumer)
    assert gaps(order, [60]) == [None]  # 60 handled, 61.. fetched and dropped: position 122
    assert asyncio.run(undelivered(order, {TP: 122, other: 5})) == {TP: 61}
    # caught up (position == expected) or not fetched yet (no position): nothing to do
    assert asyncio.run(undelivered(order, {TP: 61, other: None})) == {}
