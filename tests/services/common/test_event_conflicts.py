"""record_events: a redelivered event changes nothing, an event whose id is stored with other
content is refused and reported (never a silent no-op), on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from services.common.db.crud import record_events
from services.common.db.engine import make_engine
from services.common.db.models import BehaviourEvent, StudentSessionSummary
from services.common.db.schema import upgrade_schema
from services.store.service import event_row
from tests.services.store.test_store_service import make_event


def _row(i: int, **changes) -> BehaviourEvent:
    message = make_event(i)
    for name, value in changes.items():
        setattr(message, name, value)
    return event_row(message)


def _check(url: str) -> None:
    engine = make_engine(url)
    upgrade_schema(engine)
    try:
        with Session(engine) as session:
            first = record_events(session=session, events=[_row(0), _row(1)])
            session.commit()
        assert first.inserted == 2 and first.conflicts == {}
        with Session(engine) as session:
            # a redelivery of event 0, event 1's id with another label and session, a new event 2,
            # and event 2's id twice more in the same call: once the same, once with another label
            again = record_events(
                session=session,
                events=[
                    _row(0),
                    _row(1, label="phone_usage", session_id="sess-2"),
                    _row(2),
                    _row(2),
                    _row(2, label="drinking_water"),
                ],
            )
            session.commit()
        assert again.inserted == 1
        assert again.conflicts == {1: ("session_id", "label"), 4: ("label",)}
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(BehaviourEvent)).one() == 3
            stored = session.get(BehaviourEvent, "ev-s01-1")
            assert stored is not None and stored.label == "note_taking" and stored.session_id == "sess-1"
            # the aggregates counted each stored event once
            summary = session.exec(select(StudentSessionSummary)).one()
            assert summary.n_events == 3
    finally:
        engine.dispose()


def test_conflicting_event_ids_are_reported_on_sqlite(tmp_path) -> None:
    _check(f"sqlite:///{tmp_path / 'events.db'}")


@pytest.mark.integration
@pytest.mark.postgres
def test_conflicting_event_ids_are_reported_on_postgresql(postgres_schema_url) -> None:
    _check(postgres_schema_url)
