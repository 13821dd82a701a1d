"""The offset-order guard around faust's fetch loop: skipped records are read again, in order."""

from __future__ import annotations

import asyncio
from collections import Counter

from services.recognition.ordering import OffsetOrder

TP = ("observations", 1)


class FakeConsumer:
    """A partition of records 0..n-1 whose deliveries the test scripts; it records seeks."""

    def __init__(self, committed: dict | None = None, earliest: int | None = 0) -> None:
        self.rebalance_count = 1
        self._committed = committed or {}
        self._earliest = earliest
        self.seeks: list[tuple[object, int]] = []

    def rebalances(self) -> int:
        return self.rebalance_count

    def committed(self):
        return self._committed

    async def earliest(self, tp):
        return self._earliest

    async def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp, offset))


class Metrics:
    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()

    def count_retry(self, what: str) -> None:
        self.retries[what] += 1

    def count_dead_letter(self, reason: str) -> None:
        self.dead[reason] += 1


def admitted(order: OffsetOrder, offsets: list[int]) -> list[int]:
    async def run() -> list[int]:
        return [o for o in offsets if await order.admit(TP, o)]

    return asyncio.run(run())


def test_a_gap_is_read_again_and_what_follows_it_waits() -> None:
    consumer, metrics = FakeConsumer(committed={TP: 60}), Metrics()
    order = OffsetOrder(consumer, metrics)
    # faust hands over 60, drops 61-115, goes on with 116-121; after the seek 61.. come again
    delivered = [60, 116, 117, 118, 119, 120, 121, *range(61, 122)]
    handled = admitted(order, delivered)
    assert handled == list(range(60, 122))  # every record once, in offset order
    assert consumer.seeks == [(TP, 61)]
    assert metrics.retries["skipped_records"] == 1 and not metrics.dead


def test_redeliveries_are_admitted_for_the_idempotent_windows() -> None:
    order = OffsetOrder(FakeConsumer(committed={TP: 10}), Metrics())
    assert admitted(order, [10, 11, 12, 10, 11, 12, 13]) == [10, 11, 12, 10, 11, 12, 13]


def test_without_a_commit_the_partition_starts_at_its_earliest_offset() -> None:
    consumer = FakeConsumer(committed={}, earliest=5)
    order = OffsetOrder(consumer, Metrics())
    assert admitted(order, [9, 5, 6, 7, 8, 9]) == [5, 6, 7, 8, 9]
    assert consumer.seeks == [(TP, 5)]


def test_a_new_assignment_resumes_from_the_new_committed_offset() -> None:
    consumer = FakeConsumer(committed={TP: 0})
    order = OffsetOrder(consumer, Metrics())
    assert admitted(order, [0, 1, 2]) == [0, 1, 2]
    consumer.rebalance_count += 1
    consumer._committed = {TP: 40}  # another worker went on meanwhile
    assert admitted(order, [40, 41]) == [40, 41]
    assert consumer.seeks == []


def test_a_real_gap_is_given_up_on_after_the_timeout() -> None:
    consumer, metrics = FakeConsumer(committed={TP: 3}), Metrics()
    order = OffsetOrder(consumer, metrics, give_up_s=0.0)
    # offsets 3 and 4 do not exist: after one seek that brings nothing, the gap is accepted
    assert admitted(order, [5, 5, 6]) == [5, 6]
    assert consumer.seeks == [(TP, 3)]
    assert metrics.dead["offset_gap"] == 1
