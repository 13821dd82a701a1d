"""The store against the embedded broker and real databases: idempotent, dead-letters bad events,
waits out a database outage without losing or duplicating anything."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session, func, select

from services.cli.faults import FaultProxy
from services.common.db.engine import make_engine
from services.common.db.models import BehaviourEvent, StudentSessionSummary
from services.common.pb.classroom.v1 import deadletter_pb2, events_pb2
from services.common.topics import BEHAVIOURS, DEAD_LETTER
from services.store.config import StoreSettings
from services.store.service import StoreService
from tests.fixtures import POSTGRES_URL, ServiceThread, wait_for
from tests.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.integration

T0 = 1_767_000_000_000_000  # microseconds


def make_event(i: int, *, student: str = "s01", label: str = "note_taking") -> events_pb2.BehaviourEvent:
    end = T0 + (i + 2) * 1_000_000
    return events_pb2.BehaviourEvent(
        event_id=f"ev-{student}-{i}",
        classroom_id="room-1",
        session_id="sess-1",
        camera_id="cam-1",
        course_id="c-1",
        student_id=student,
        seat_id="A1",
        window_start_us=end - 2_000_000,
        window_end_us=end,
        segment_start_us=end - 1_000_000,
        segment_end_us=end,
        first_sequence=i * 8,
        last_sequence=i * 8 + 15,
        label=label,
        confidence=0.8,
        top5=[events_pb2.LabelProbability(label=label, probability=0.8)],
        model_version="test-model",
        model_trained=True,
    )


def settings(broker, prefix: str, url: str, **extra) -> StoreSettings:
    return StoreSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=prefix,
        database_url=url,
        session_timeout_ms=6000,
        **extra,
    )


def count_events(url: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(BehaviourEvent)).one()
    except (OperationalError, ProgrammingError):  # the store has not created the schema yet
        return 0
    finally:
        engine.dispose()


def test_events_are_stored_once_even_when_replayed(broker, topic_prefix, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    events = [make_event(i, label="hand_raising" if i in (2, 3) else "note_taking") for i in range(10)]
    produce(broker.bootstrap, topic_prefix + BEHAVIOURS, [(b"room-1", e.SerializeToString()) for e in events])
    service = ServiceThread(StoreService(settings(broker, topic_prefix, url))).start()
    try:
        wait_for(lambda: count_events(url) == 10, what="10 events in SQLite")
        # A replay (producer retry, consumer rewind) of the same events.
        produce(
            broker.bootstrap, topic_prefix + BEHAVIOURS, [(b"room-1", e.SerializeToString()) for e in events]
        )
        wait_for(lambda: service.service.processed >= 20, what="replay consumed")
    finally:
        service.stop()
    assert count_events(url) == 10
    engine = make_engine(url)
    with Session(engine) as session:
        summary = session.exec(select(StudentSessionSummary)).one()
    assert summary.n_events == 10
    assert summary.s_hand_raising == pytest.approx(2.0)
    assert summary.s_note_taking == pytest.approx(8.0)
    assert summary.hand_raise_count == 1


def test_malformed_and_invalid_events_are_dead_lettered(broker, topic_prefix, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    bad_label = make_event(1)
    bad_label.label = "sleeping"
    messages = [
        (b"room-1", make_event(0).SerializeToString()),
        (b"room-1", b"\x08\x96\x01 this is not a behaviour event \xff\xff"),
        (b"room-1", bad_label.SerializeToString()),
        (b"room-1", make_event(2).SerializeToString()),
    ]
    produce(broker.bootstrap, topic_prefix + BEHAVIOURS, messages)
    service = ServiceThread(StoreService(settings(broker, topic_prefix, url))).start()
    try:
        wait_for(lambda: count_events(url) == 2, what="the two good events")
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=2)
    finally:
        service.stop()
    reasons = sorted(deadletter_pb2.DeadLetter.FromString(r.value).reason_code for r in letters)
    assert reasons == ["bad_input", "malformed_message"]
    envelope = deadletter_pb2.DeadLetter.FromString(letters[0].value)
    assert envelope.service == "store" and envelope.source_topic == topic_prefix + BEHAVIOURS
    assert service.service.dead_lettered == 2


def test_an_event_id_stored_with_other_content_is_dead_lettered(broker, topic_prefix, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    clash = make_event(1)
    clash.session_id, clash.label = "sess-2", "phone_usage"  # another session's event under one id
    produce(broker.bootstrap, topic_prefix + BEHAVIOURS, [(b"room-1", make_event(1).SerializeToString())])
    service = ServiceThread(StoreService(settings(broker, topic_prefix, url))).start()
    try:
        wait_for(lambda: count_events(url) == 1, what="the first event")
        produce(
            broker.bootstrap,
            topic_prefix + BEHAVIOURS,
            [(b"room-1", make_event(1).SerializeToString()), (b"room-1", clash.SerializeToString())],
        )
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=1)
        wait_for(lambda: service.service.processed >= 3, what="all three consumed")
    finally:
        service.stop()
    envelope = deadletter_pb2.DeadLetter.FromString(letters[0].value)
    assert envelope.reason_code == "conflicting_event"
    assert "ev-s01-1" in envelope.reason and "session_id, label" in envelope.reason
    assert service.service.dead_lettered == 1  # the redelivery of the same event is not a conflict
    engine = make_engine(url)
    with Session(engine) as session:
        stored = session.exec(select(BehaviourEvent)).one()
    assert stored.session_id == "sess-1" and stored.label == "note_taking"


@pytest.mark.postgres
def test_database_outage_loses_and_duplicates_nothing(broker, topic_prefix, postgres_schema_url) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(POSTGRES_URL)
    proxy = FaultProxy(real.host or "127.0.0.1", real.port or 5432)
    url = postgres_schema_url.replace(f"{real.host}:{real.port}", f"127.0.0.1:{proxy.port}")
    service = ServiceThread(StoreService(settings(broker, topic_prefix, url))).start()
    try:
        produce(
            broker.bootstrap,
            topic_prefix + BEHAVIOURS,
            [(b"room-1", make_event(i).SerializeToString()) for i in range(5)],
        )
        wait_for(lambda: count_events(postgres_schema_url) == 5, what="first 5 events in PostgreSQL")
        proxy.cut()
        produce(
            broker.bootstrap,
            topic_prefix + BEHAVIOURS,
            [(b"room-1", make_event(i).SerializeToString()) for i in range(5, 12)],
        )
        wait_for(
            lambda: service.service.metrics.retries.labels("store", "database")._value.get() >= 2,
            what="the store to retry against the dead database",
        )
        assert not service.service.readiness()[0]
        proxy.restore()
        wait_for(
            lambda: count_events(postgres_schema_url) == 12, timeout=60, what="all 12 events after recovery"
        )
        assert service.service.readiness()[0]
    finally:
        service.stop()
        proxy.close()
    # Restart from scratch: a new store re-reads nothing it already committed, and a forced replay adds nothing.
    replay = ServiceThread(StoreService(settings(broker, topic_prefix, postgres_schema_url))).start()
    try:
        produce(
            broker.bootstrap,
            topic_prefix + BEHAVIOURS,
            [(b"room-1", make_event(i).SerializeToString()) for i in range(12)],
        )
        wait_for(lambda: replay.service.processed >= 12, what="replay consumed")
    finally:
        replay.stop()
    assert count_events(postgres_schema_url) == 12
