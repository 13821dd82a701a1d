"""Data functions of the store: idempotent event inserts that keep the aggregates current.

Every function that touches the database takes the SQLModel ``session`` as a keyword
argument and leaves the commit to the caller, so a batch of events and its aggregate
updates land in one transaction or not at all. The aggregates' arithmetic itself
(``fold_events`` and the row values of what it folded) is pure, so a bulk loader of
events that are new by construction (dashboards/tools/semester.py) writes exactly the rows
record_events would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from services.common.campus import Campus
from services.common.db import as_utc
from services.common.db.models import (
    SECONDS_COLUMNS,
    BehaviourEvent,
    Classroom,
    ClassSession,
    Course,
    CourseInstructor,
    SessionMinute,
    StudentMinute,
    StudentSessionSummary,
    seconds_column,
)

HAND_RAISING = "hand_raising"
SESSION_MINUTE_KEYS = ("session_id", "minute")
STUDENT_MINUTE_KEYS = ("session_id", "student_id", "minute")


def _insert(session: Session, table: type[SQLModel]):  # type: ignore[no-untyped-def]
    """A dialect insert construct that supports ON CONFLICT (SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {dialect}")


def sync_campus(*, session: Session, campus: Campus) -> None:
    """Upsert classrooms, courses and instructors from the campus file."""
    for room in campus.classrooms:
        stmt = _insert(session, Classroom).values(id=room.id, name=room.name, building=room.building)
        session.exec(
            stmt.on_conflict_do_update(
                index_elements=["id"], set_={"name": room.name, "building": room.building}
            )
        )  # type: ignore[call-overload]
    for course in campus.courses:
        stmt = _insert(session, Course).values(id=course.id, name=course.name, classroom_id=course.classroom)
        session.exec(  # type: ignore[call-overload]
            stmt.on_conflict_do_update(
                index_elements=["id"], set_={"name": course.name, "classroom_id": course.classroom}
            )
        )
        for username in course.instructors:
            stmt = _insert(session, CourseInstructor).values(course_id=course.id, username=username)
            session.exec(stmt.on_conflict_do_nothing())  # type: ignore[call-overload]


class EventFields(Protocol):
    """What the aggregate fold reads of an event: a BehaviourEvent, or any record with its fields."""

    @property
    def session_id(self) -> str: ...

    @property
    def classroom_id(self) -> str: ...

    @property
    def course_id(self) -> str: ...

    @property
    def camera_id(self) -> str: ...

    @property
    def student_id(self) -> str: ...

    @property
    def seat_id(self) -> str: ...

    @property
    def window_start(self) -> datetime: ...

    @property
    def window_end(self) -> datetime: ...

    @property
    def segment_start(self) -> datetime: ...

    @property
    def segment_end(self) -> datetime: ...

    @property
    def label(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    @property
    def model_trained(self) -> bool: ...


@dataclass
class Increment:
    """What a batch of events adds to one aggregate row: seconds per behaviour column and events."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    n_events: int = 0


@dataclass
class StudentIncrement(Increment):
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    classroom_id: str = ""
    course_id: str = ""
    seat_id: str = ""
    first_label: str = ""
    last_label: str = ""
    onsets_after_first: int = 0  # hand-raise onsets within the batch, not counting its first event


@dataclass
class AggregateIncrements:
    """What a batch of events adds to ClassSession and the three aggregate tables."""

    sessions: dict[str, ClassSession] = field(default_factory=dict)
    students: dict[tuple[str, str], StudentIncrement] = field(default_factory=dict)
    session_minutes: dict[tuple[str, datetime], Increment] = field(
        default_factory=lambda: defaultdict(Increment)
    )
    student_minutes: dict[tuple[str, str, datetime], Increment] = field(
        default_factory=lambda: defaultdict(Increment)
    )


def _minute_slices(start: datetime, end: datetime) -> Iterable[tuple[datetime, float]]:
    """Split [start, end) into (minute bucket, seconds) pieces."""
    cursor = start
    while cursor < end:
        bucket = cursor.replace(second=0, microsecond=0)
        stop = min(end, bucket + timedelta(minutes=1))
        yield bucket, (stop - cursor).total_seconds()
        cursor = stop


def fold_events(events: Iterable[EventFields]) -> AggregateIncrements:
    """The aggregates' arithmetic: what ``events`` add to each session, student and minute row.

    The one implementation of it: record_events folds the events it inserted, and a bulk
    loader (dashboards/tools/semester.py) folds a whole session before writing it in one go.
    Events of one student must come in time order (ties keep their order).
    """
    folded = AggregateIncrements()
    sessions, students = folded.sessions, folded.students
    session_minutes, student_minutes = folded.session_minutes, folded.student_minutes

    for event in sorted(events, key=lambda e: (e.session_id, e.student_id, e.segment_start)):
        cs = sessions.get(event.session_id)
        if cs is None:
            sessions[event.session_id] = ClassSession(
                id=event.session_id,
                classroom_id=event.classroom_id,
                course_id=event.course_id,
                camera_id=event.camera_id,
                started_at=event.window_start,
                ended_at=event.window_end,
                model_version=event.model_version,
                model_trained=event.model_trained,
            )
        else:  # compared first: assigning an ORM attribute costs more than the fold
            if event.window_start < cs.started_at:
                cs.started_at = event.window_start
            if event.window_end > cs.ended_at:
                cs.ended_at = event.window_end

        column = seconds_column(event.label)
        key = (event.session_id, event.student_id)
        inc = students.get(key)
        if inc is None:
            inc = students[key] = StudentIncrement(
                first_seen=event.window_start,
                last_seen=event.window_end,
                classroom_id=event.classroom_id,
                course_id=event.course_id,
                seat_id=event.seat_id,
                first_label=event.label,
            )
        else:
            if event.label == HAND_RAISING and inc.last_label != HAND_RAISING:
                inc.onsets_after_first += 1
            inc.first_seen = min(inc.first_seen or event.window_start, event.window_start)
            inc.last_seen = max(inc.last_seen or event.window_end, event.window_end)
        inc.last_label = event.label
        inc.n_events += 1
        for minute, seconds in _minute_slices(event.segment_start, event.segment_end):
            inc.seconds[column] += seconds
            session_minutes[(event.session_id, minute)].seconds[column] += seconds
            student_minutes[(event.session_id, event.student_id, minute)].seconds[column] += seconds
        session_minutes[
            (event.session_id, event.segment_start.replace(second=0, microsecond=0))
        ].n_events += 1
        student_minutes[
            (event.session_id, event.student_id, event.segment_start.replace(second=0, microsecond=0))
        ].n_events += 1
    return folded


def student_summary_values(session_id: str, student_id: str, inc: StudentIncrement) -> dict[str, Any]:
    """The StudentSessionSummary row of a student whose first events these are."""
    return {
        "session_id": session_id,
        "student_id": student_id,
        "classroom_id": inc.classroom_id,
        "course_id": inc.course_id,
        "seat_id": inc.seat_id,
        "first_seen": inc.first_seen,
        "last_seen": inc.last_seen,
        "n_events": inc.n_events,
        "hand_raise_count": inc.onsets_after_first + int(inc.first_label == HAND_RAISING),
        "last_label": inc.last_label,
        **{c: inc.seconds.get(c, 0.0) for c in SECONDS_COLUMNS},
    }


def minute_values(keys: Sequence[str], increments: dict[tuple, Increment]) -> list[dict[str, Any]]:
    """SessionMinute or StudentMinute rows (``keys`` name the key columns) of minutes not stored yet."""
    return [
        {
            **dict(zip(keys, key, strict=True)),
            "n_events": inc.n_events,
            **{c: inc.seconds.get(c, 0.0) for c in SECONDS_COLUMNS},
        }
        for key, inc in increments.items()
    ]


# what makes two events with one id the same event (a redelivery) rather than a conflict
EVENT_IDENTITY = (
    "session_id",
    "classroom_id",
    "student_id",
    "seat_id",
    "window_start",
    "window_end",
    "label",
    "model_version",
)


@dataclass(frozen=True)
class Recorded:
    """What ``record_events`` did: how many events were new, and the events it refused because an
    event with the same id is stored with other content (position in the call's ``events`` ->
    the fields that differ)."""

    inserted: int
    conflicts: dict[int, tuple[str, ...]] = field(default_factory=dict)


def _comparable(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def differing_fields(stored: BehaviourEvent, event: BehaviourEvent) -> tuple[str, ...]:
    """The identity fields (``EVENT_IDENTITY``) in which two events with one id differ."""
    return tuple(
        name
        for name in EVENT_IDENTITY
        if _comparable(getattr(stored, name)) != _comparable(getattr(event, name))
    )


def _conflicts(
    session: Session, events: Sequence[BehaviourEvent], positions: Sequence[int]
) -> dict[int, tuple[str, ...]]:
    """Of ``events[k]`` for k in ``positions`` (not inserted by this call), those whose id is
    stored with other content."""
    if not positions:
        return {}
    ids = sorted({events[k].event_id for k in positions})
    query = select(BehaviourEvent).where(col(BehaviourEvent.event_id).in_(ids))
    stored = {row.event_id: row for row in session.exec(query)}
    found = {}
    for k in positions:
        row = stored.get(events[k].event_id)
        differ = differing_fields(row, events[k]) if row is not None else ()
        if differ:
            found[k] = differ
    return found


def record_events(*, session: Session, events: Sequence[BehaviourEvent]) -> Recorded:
    """Insert events that are not stored yet and fold exactly those into the aggregates.

    A redelivered event (same ``event_id``, same ``EVENT_IDENTITY``) changes nothing; one whose
    id is stored with other content is not written and comes back in ``Recorded.conflicts``
    for the caller to count, log and dead-letter. Events of one student must come in time
    order within a call (they do: one classroom's messages stay on one partition).
    """
    if not events:
        return Recorded(0)
    rows = [e.model_dump() for e in events]
    stmt = _insert(session, BehaviourEvent).values(rows)
    stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"]).returning(BehaviourEvent.event_id)  # type: ignore[attr-defined]
    inserted_ids = set(session.exec(stmt).scalars().all())  # type: ignore[call-overload]
    # the first event of each inserted id is new; a later one with that id, in this call or
    # stored before, is a redelivery or a conflict
    new_events, others, first = [], [], set()
    for k, event in enumerate(events):
        if event.event_id in inserted_ids and event.event_id not in first:
            first.add(event.event_id)
            new_events.append(event)
        else:
            others.append(k)
    conflicts = _conflicts(session, events, others)
    if not new_events:
        return Recorded(0, conflicts)

    folded = fold_events(new_events)
    for cs in folded.sessions.values():
        stmt = _insert(session, ClassSession).values(cs.model_dump())
        table = ClassSession.__table__  # type: ignore[attr-defined]
        session.exec(  # type: ignore[call-overload]
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "started_at": func.min(table.c.started_at, stmt.excluded.started_at),
                    "ended_at": func.max(table.c.ended_at, stmt.excluded.ended_at),
                    "model_version": stmt.excluded.model_version,
                    "model_trained": stmt.excluded.model_trained,
                },
            )
            if session.get_bind().dialect.name == "sqlite"
            else stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "started_at": func.least(table.c.started_at, stmt.excluded.started_at),
                    "ended_at": func.greatest(table.c.ended_at, stmt.excluded.ended_at),
                    "model_version": stmt.excluded.model_version,
                    "model_trained": stmt.excluded.model_trained,
                },
            )
        )

    _upsert_students(session, folded.students)
    _upsert_minutes(session, SessionMinute, SESSION_MINUTE_KEYS, folded.session_minutes)
    _upsert_minutes(session, StudentMinute, STUDENT_MINUTE_KEYS, folded.student_minutes)
    return Recorded(len(new_events), conflicts)


def _lesser(session: Session):  # type: ignore[no-untyped-def]
    return func.min if session.get_bind().dialect.name == "sqlite" else func.least


def _greater(session: Session):  # type: ignore[no-untyped-def]
    return func.max if session.get_bind().dialect.name == "sqlite" else func.greatest


def _upsert_students(session: Session, students: dict[tuple[str, str], StudentIncrement]) -> None:
    table = StudentSessionSummary.__table__  # type: ignore[attr-defined]
    lesser, greater = _lesser(session), _greater(session)
    for (session_id, student_id), inc in students.items():
        first_is_onset = inc.first_label == HAND_RAISING
        values = student_summary_values(session_id, student_id, inc)
        stmt = _insert(session, StudentSessionSummary).values(values)
        # The batch's first event starts a hand raise only if the stored last label was not one.
        carried_onset = case((table.c.last_label == HAND_RAISING, 0), else_=1) if first_is_onset else 0
        update = {
            "first_seen": lesser(table.c.first_seen, stmt.excluded.first_seen),
            "last_seen": greater(table.c.last_seen, stmt.excluded.last_seen),
            "n_events": table.c.n_events + stmt.excluded.n_events,
            "hand_raise_count": table.c.hand_raise_count + inc.onsets_after_first + carried_onset,
            "last_label": stmt.excluded.last_label,
            "seat_id": stmt.excluded.seat_id,
            **{c: table.c[c] + stmt.excluded[c] for c in SECONDS_COLUMNS},
        }
        session.exec(stmt.on_conflict_do_update(index_elements=["session_id", "student_id"], set_=update))  # type: ignore[call-overload]


def _upsert_minutes(
    session: Session,
    model: type[SQLModel],
    keys: Sequence[str],
    increments: dict[tuple, Increment],
) -> None:
    if not increments:
        return
    table = model.__table__  # type: ignore[attr-defined]
    rows = minute_values(keys, increments)
    stmt = _insert(session, model).values(rows)
    update = {
        "n_events": table.c.n_events + stmt.excluded.n_events,
        **{c: table.c[c] + stmt.excluded[c] for c in SECONDS_COLUMNS},
    }
    session.exec(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))  # type: ignore[call-overload]
