"""The offset-order guard around faust's fetch loop: what faust skipped is found and read again, through
faust's and aiokafka's public API only."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP as FaustTP

from services.common.embedded_broker import EmbeddedBroker
from services.common.metrics import ServiceMetrics
from services.recognition.ordering import (
    WATCHDOG_IDLE_S,
    BrokerCommitted,
    FaustConsumerView,
    Gap,
    GapReader,
    OffsetOrder,
    OrderedDelivery,
    Record,
    worker_ready,
)
from tests.kafka_helpers import produce

TP = ("observations", 1)


class FakeConsumer:
    def __init__(self, committed: dict | None = None, earliest: int | None = 0) -> None:
        self.rebalance_count = 1
        self._committed = committed or {}
        self._earliest = earliest

    def rebalances(self) -> int:
        return self.rebalance_count

    async def committed(self):
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


# --- the guard over a faust app: public attributes only --------------------------------------------


class PublicOnly:
    """A stand-in for a faust object that refuses any private attribute (``_name``)."""

    def __init__(self, **attrs) -> None:
        self.__dict__.update(attrs)

    def __getattribute__(self, name: str):
        if name.startswith("_") and not name.startswith("__"):
            raise AssertionError(f"the guard read faust's private {name}")
        return object.__getattribute__(self, name)


class FaustConsumer:
    """The public part of faust's ConsumerT that the guard uses."""

    def __init__(self, assigned: set, positions: dict | None = None) -> None:
        self.assigned = assigned
        self.positions = positions or {}
        self.acked: list[int] = []
        self.sought: list[dict] = []

    def assignment(self) -> set:
        return set(self.assigned)

    def ack(self, message) -> bool:
        self.acked.append(message.offset)
        return True

    async def position(self, tp):
        return self.positions.get(tp)

    async def seek_wait(self, partitions) -> None:
        self.sought.append(dict(partitions))

    async def earliest_offsets(self, *tps):
        return {tp: 0 for tp in tps}


class FakeGapReader:
    def __init__(self, available: range) -> None:
        self.available = available
        self.asked: list[tuple[int, int]] = []

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Record]:
        self.asked.append((start, end))
        return [
            Record(topic, partition, o, 0, b"room", f"record {o}".encode())
            for o in range(start, end)
            if o in self.available
        ]


FAUST_TP = FaustTP("observations", 1)


def faust_app(
    consumer: FaustConsumer, *, rebalancing: bool = False, actives_ready: bool = True
) -> PublicOnly:
    return PublicOnly(
        rebalancing=rebalancing,
        rebalancing_count=1,
        tables=PublicOnly(actives_ready=actives_ready),
        consumer=PublicOnly(
            **{
                n: getattr(consumer, n)
                for n in ("assignment", "ack", "position", "seek_wait", "earliest_offsets")
            }
        ),
        conf=PublicOnly(id="classroom-recognition"),
    )


def event(offset: int, tp: FaustTP = FAUST_TP) -> SimpleNamespace:
    message = SimpleNamespace(tp=tp, topic=tp.topic, partition=tp.partition, offset=offset)
    return SimpleNamespace(message=message, key=b"room", value=f"record {offset}".encode())


def delivery(app, committed: dict, reader: FakeGapReader, handled: list[int]) -> OrderedDelivery:
    async def process(record: Record) -> None:
        handled.append(record.offset)

    return OrderedDelivery(
        app,
        topic="observations",
        order=OffsetOrder(FakeConsumer(committed=committed)),
        gap_reader=reader,  # type: ignore[arg-type]
        process=process,
        metrics=ServiceMetrics("recognition-test"),
    )


def test_the_worker_is_ready_once_the_rebalance_is_over_and_the_tables_are_restored() -> None:
    consumer = FaustConsumer({FAUST_TP})
    assert worker_ready(faust_app(consumer))
    assert not worker_ready(faust_app(consumer, rebalancing=True))
    assert not worker_ready(faust_app(consumer, actives_ready=False))  # first recovery still running


def test_skipped_records_are_handled_and_acked_in_offset_order_before_the_record_after_the_gap() -> None:
    consumer, reader, handled = FaustConsumer({FAUST_TP}), FakeGapReader(range(0, 200)), []
    guard = delivery(faust_app(consumer), {FAUST_TP: 60}, reader, handled)

    async def run() -> None:
        for offset in (60, 116, 117):
            await guard.deliver(event(offset))

    asyncio.run(run())
    assert handled == list(range(60, 118))
    assert reader.asked == [(61, 116)]
    # faust acks what it delivered itself; the guard acks what it read in its place
    assert consumer.acked == list(range(61, 116))


def test_records_gone_from_the_partition_are_counted_and_the_rest_handled() -> None:
    consumer, handled = FaustConsumer({FAUST_TP}), []
    guard = delivery(faust_app(consumer), {FAUST_TP: 10}, FakeGapReader(range(13, 100)), handled)
    asyncio.run(guard.deliver(event(15)))
    assert handled == [13, 14, 15]
    counted = guard.metrics.registry.get_sample_value(
        "classroom_dead_letters_total", {"service": "recognition-test", "reason": "offset_gap"}
    )
    assert counted == 1


def test_an_idle_worker_whose_consumer_fetched_past_the_expected_offset_is_sought_back() -> None:
    consumer, handled = FaustConsumer({FAUST_TP}, positions={FAUST_TP: 122}), []
    guard = delivery(faust_app(consumer), {FAUST_TP: 60}, FakeGapReader(range(0)), handled)
    asyncio.run(guard.deliver(event(60)))
    asyncio.run(guard.watchdog())
    assert consumer.sought == []  # handled a record a moment ago: not idle yet
    guard.last_record_at -= WATCHDOG_IDLE_S + 1
    asyncio.run(guard.watchdog())
    assert consumer.sought == [{FAUST_TP: 61}]


def test_a_record_that_waited_out_a_rebalance_is_left_to_the_partitions_new_owner() -> None:
    consumer, handled = FaustConsumer(set()), []
    app = faust_app(consumer, rebalancing=True)
    guard = delivery(app, {FAUST_TP: 5}, FakeGapReader(range(0)), handled)

    async def run() -> None:
        waiting = asyncio.create_task(guard.deliver(event(5)))
        await asyncio.sleep(0.1)
        assert not waiting.done() and guard.busy
        app.__dict__["rebalancing"] = False  # the rebalance ends; the partition went elsewhere
        await waiting

    asyncio.run(run())
    assert handled == [] and not guard.busy


@pytest.mark.integration
def test_where_partitions_resume_is_the_groups_committed_offset_on_the_broker(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic, group = topic_prefix + "observations.v1", f"group-{topic_prefix}"

    async def run() -> dict:
        committer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False
        )
        await committer.start()
        try:
            committer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
            await committer.commit({TopicPartition(topic, 1): 42})
        finally:
            await committer.stop()
        assigned = {FaustTP(topic, 0), FaustTP(topic, 1), FaustTP(topic_prefix + "other", 0)}
        app = faust_app(FaustConsumer(assigned))
        app.__dict__["conf"] = PublicOnly(id=group)
        return dict(await FaustConsumerView(app, topic, BrokerCommitted(broker.bootstrap)).committed())

    # partition 0 has no commit (the group starts it at its earliest offset); other topics are not asked
    assert asyncio.run(run()) == {FaustTP(topic, 1): 42}
