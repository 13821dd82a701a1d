"""One semester of synthetic behaviour events for a whole campus, with the aggregates the store keeps.

What it generates (``SemesterPlan``; the defaults are the benchmark's data set):
50 classrooms, 4 sessions a day, 5 days a week, 15 weeks (15,000 class sessions of
50 minutes); 12 courses per classroom (8 meet twice a week, 4 once), rosters of 20-40
students drawn from a population of 8,000, 85-97 % attendance, some students late or
leaving early. Each present student's behaviour follows a latent on-task level (a
student's baseline, the time of day, fatigue over the session, AR(1) noise, occasional
personal slumps and whole-class lulls), from which one behaviour per segment is drawn,
sticky from one segment to the next. A few sessions have a camera gap (minutes without
any event), so the dashboard's gap handling is exercised on real volumes.

Segments are coarse on purpose: the store receives one event per student per second
(docs/contracts.md), which for a semester would be about a billion rows; here one event
covers ``segment_seconds`` (60 s by default, each student's segments start at a random
phase so a minute bucket mixes two behaviours). The pages read only the aggregates
(StudentSessionSummary, SessionMinute, StudentMinute), and those have exactly the
per-minute and per-session shape they would have with 1 s events.

The aggregates are always built by the store's own arithmetic, by one of two writers:
``bulk`` (the default) folds a batch of 25 sessions with ``crud.fold_events``, takes the
rows record_events would insert for events new to the database
(``crud.student_summary_values``, ``crud.minute_values``) and writes them and the events
with PostgreSQL's COPY (SQLite: executemany) in one transaction; ``store`` sends every
session through ``crud.record_events`` (the store's write path, one transaction per
session, 13-25 times slower: docs/benchmarks.md). Both write the same rows
(tests/dashboards/tools/test_semester.py compares every table). Event ids are deterministic and
sessions already present are skipped, so an interrupted run resumes. Several worker
processes can share the work: PostgreSQL takes their writes concurrently; SQLite's WAL
lets one write at a time (the busy timeout covers the wait).

Events carry ``model_version = "synthetic/semester-v1"`` and ``model_trained = False``:
nothing here was recognised from a camera, and the dashboard says so on every page.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter, methodcaller
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.schema import Column, Table
from sqlmodel import Session, select

from dashboards.database import open_engine
from dashboards.queries import CLASS_SESSION, EVENT, SESSION_MINUTE, STUDENT_MINUTE, SUMMARY
from services.common.campus import Camera, Campus, Classroom, Course, RosterEntry, Seat
from services.common.db.crud import (
    SESSION_MINUTE_KEYS,
    STUDENT_MINUTE_KEYS,
    fold_events,
    minute_values,
    record_events,
    student_summary_values,
    sync_campus,
)
from services.common.db.models import BehaviourEvent, ClassSession
from services.common.vocabulary import BEHAVIOURS

SYNTHETIC_MODEL_VERSION = "synthetic/semester-v1"

# The generator's own ground truth of how on-task each behaviour is. It is deliberately
# not the engagement mapping (services/common/engagement.py): the mapping is what the
# dashboard assumes, this is what the synthetic students do, and a campus that changes
# the mapping should see the numbers change.
ON_TASK: dict[str, float] = {
    "hand_raising": 1.0,
    "attentive_listening": 0.95,
    "note_taking": 0.95,
    "head_down_writing": 0.8,
    "page_turning": 0.7,
    "upright_sitting": 0.6,
    "drinking_water": 0.5,
    "chin_resting": 0.25,
    "side_conversation": 0.1,
    "phone_usage": 0.0,
}
# How common each behaviour is in a lecture, before the on-task level tilts it.
BASE_RATE: dict[str, float] = {
    "attentive_listening": 0.26,
    "note_taking": 0.15,
    "upright_sitting": 0.15,
    "head_down_writing": 0.10,
    "chin_resting": 0.08,
    "page_turning": 0.07,
    "phone_usage": 0.07,
    "side_conversation": 0.05,
    "drinking_water": 0.03,
    "hand_raising": 0.02,
}
TILT = 10.0  # how strongly the on-task level favours on-task behaviours
# Chance a student keeps the previous segment's behaviour: on-task behaviours last, off-task
# ones are mostly brief unless the student's on-task level stays low (then they recur).
STICKINESS_ON_TASK = 0.6
STICKINESS_OFF_TASK = 0.3
SLOT_STARTS = ((8, 0), (10, 0), (13, 0), (15, 0), (17, 0), (19, 0))
SEAT_ROWS, SEAT_COLUMNS = 5, 8  # 40 seats per classroom


@dataclass(frozen=True)
class SemesterPlan:
    rooms: int = 50
    weeks: int = 15
    days_per_week: int = 5
    slots_per_day: int = 4
    session_minutes: int = 50
    students_min: int = 20
    students_max: int = 40
    population: int = 8000
    segment_seconds: int = 60
    first_day: date = date(2025, 9, 1)  # a Monday
    seed: int = 0
    camera_gap_rate: float = 0.03
    class_lull_rate: float = 0.12
    student_slump_rate: float = 0.06

    def __post_init__(self) -> None:
        if not 1 <= self.slots_per_day <= len(SLOT_STARTS):
            raise ValueError(f"slots_per_day must be 1..{len(SLOT_STARTS)}")
        if not 1 <= self.days_per_week <= 5:
            raise ValueError("days_per_week must be 1..5")
        if not 1 <= self.students_min <= self.students_max <= SEAT_ROWS * SEAT_COLUMNS:
            raise ValueError(
                f"need 1 <= students_min <= students_max <= {SEAT_ROWS * SEAT_COLUMNS} (seats per room)"
            )
        if self.population < self.students_max:
            raise ValueError("the population must be at least students_max")
        if not 5 <= self.segment_seconds <= 300:
            raise ValueError("segment_seconds must be 5..300")
        if self.rooms < 1 or self.weeks < 1 or self.session_minutes < 10:
            raise ValueError("need at least one room, one week and 10-minute sessions")

    @property
    def n_sessions(self) -> int:
        return self.rooms * self.weeks * self.days_per_week * self.slots_per_day


@dataclass(frozen=True)
class PlannedSession:
    session_id: str
    classroom_id: str
    course_id: str
    started_at: datetime  # UTC


@dataclass
class GenerationReport:
    writer: str = "bulk"
    sessions_written: int = 0
    sessions_skipped: int = 0
    events: int = 0
    write_seconds: float = 0.0  # generating and writing, without the final ANALYZE
    seconds: float = 0.0  # everything


def _room_id(r: int) -> str:
    return f"room-{r + 1:02d}"


def _student_id(k: int) -> str:
    return f"stu-{k + 1:05d}"


def _seat_ids() -> list[str]:
    return [f"R{row + 1}-{col + 1}" for row in range(SEAT_ROWS) for col in range(SEAT_COLUMNS)]


def _course_meetings(plan: SemesterPlan) -> list[tuple[int, tuple[int, ...]]]:
    """(slot, weekdays) of each course of one classroom: Mon/Wed and Tue/Thu pairs, Friday alone."""
    pairs = [(0, 2), (1, 3)] if plan.days_per_week >= 4 else [(d,) for d in range(min(plan.days_per_week, 4))]
    singles = [(d,) for d in range(4, plan.days_per_week)]
    return [(slot, days) for slot in range(plan.slots_per_day) for days in (*pairs, *singles)]


def build_campus(plan: SemesterPlan) -> Campus:
    """Classrooms with one camera and 40 seats, courses with instructors and rosters."""
    rng = random.Random(f"{plan.seed}:campus")
    seat_ids = _seat_ids()
    seat_w, seat_h = 640 / SEAT_COLUMNS, 360 / SEAT_ROWS
    seats = tuple(
        Seat(
            id=seat_ids[i],
            box=(
                (i % SEAT_COLUMNS) * seat_w,
                (i // SEAT_COLUMNS) * seat_h,
                (i % SEAT_COLUMNS + 1) * seat_w,
                (i // SEAT_COLUMNS + 1) * seat_h,
            ),
        )
        for i in range(len(seat_ids))
    )
    classrooms = tuple(
        Classroom(
            id=_room_id(r),
            name=f"Room {r + 1}",
            building=f"Building {'ABCDE'[r % 5]}",
            cameras=(Camera(id="front", seats=seats),),
        )
        for r in range(plan.rooms)
    )
    courses = []
    meetings = _course_meetings(plan)
    n_courses = plan.rooms * len(meetings)
    n_instructors = max(1, math.ceil(n_courses / 2.5))
    for r in range(plan.rooms):
        for m in range(len(meetings)):
            index = r * len(meetings) + m
            size = rng.randint(plan.students_min, plan.students_max)
            students = rng.sample(range(plan.population), size)
            chosen_seats = rng.sample(seat_ids, size)
            courses.append(
                Course(
                    id=f"C{index + 1:04d}",
                    name=f"Course {index + 1}",
                    classroom=_room_id(r),
                    instructors=(f"instr-{rng.randrange(n_instructors) + 1:03d}",),
                    roster=tuple(
                        RosterEntry(student=_student_id(s), seat=seat)
                        for s, seat in zip(students, chosen_seats, strict=True)
                    ),
                )
            )
    return Campus(name="semester", classrooms=classrooms, courses=tuple(courses))


def planned_sessions(plan: SemesterPlan, campus: Campus) -> list[PlannedSession]:
    """Every class session of the semester, in time order."""
    meetings = _course_meetings(plan)
    by_room: dict[str, list[Course]] = {}
    for course in campus.courses:
        by_room.setdefault(course.classroom, []).append(course)
    sessions = []
    for week in range(plan.weeks):
        for weekday in range(plan.days_per_week):
            day = plan.first_day + timedelta(days=7 * week + weekday)
            for slot in range(plan.slots_per_day):
                hour, minute = SLOT_STARTS[slot]
                start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                for room in campus.classrooms:
                    course = next(
                        c
                        for c, (s, days) in zip(by_room[room.id], meetings, strict=True)
                        if s == slot and weekday in days
                    )
                    sessions.append(
                        PlannedSession(
                            session_id=f"{room.id}-{start:%Y%m%d-%H%M}",
                            classroom_id=room.id,
                            course_id=course.id,
                            started_at=start,
                        )
                    )
    return sessions


def _student_traits(plan: SemesterPlan, student_id: str) -> tuple[float, float]:
    """A student's baseline on-task level and how strongly they drift (deterministic per student)."""
    rng = random.Random(f"{plan.seed}:student:{student_id}")
    return min(0.95, max(0.25, rng.gauss(0.72, 0.08))), rng.uniform(0.04, 0.08)


def _draw_behaviour(rng: random.Random, on_task_level: float, previous: str | None) -> str:
    if previous is not None and previous != "hand_raising":
        stickiness = STICKINESS_ON_TASK if ON_TASK[previous] >= 0.5 else STICKINESS_OFF_TASK
        if rng.random() < stickiness:
            return previous
    weights = [BASE_RATE[b] * math.exp(TILT * (ON_TASK[b] - 0.5) * (on_task_level - 0.5)) for b in BEHAVIOURS]
    return rng.choices(BEHAVIOURS, weights=weights)[0]


def _top5(rng: random.Random, label: str) -> tuple[float, str]:
    confidence = round(rng.uniform(0.55, 0.95), 2)
    others = rng.sample([b for b in BEHAVIOURS if b != label], 4)
    rest, probabilities = 1.0 - confidence, []
    for _ in others:
        share = round(rest * rng.uniform(0.4, 0.7), 2)
        probabilities.append(share)
        rest -= share
    return confidence, json.dumps([[label, confidence], *map(list, zip(others, probabilities, strict=True))])


class SemesterEvent(NamedTuple):
    """One generated event: a BehaviourEvent's columns, without an ORM object's cost (a semester has millions)."""

    event_id: str
    created_at: datetime
    session_id: str
    classroom_id: str
    course_id: str
    camera_id: str
    student_id: str
    seat_id: str
    window_start: datetime
    window_end: datetime
    segment_start: datetime
    segment_end: datetime
    label: str
    confidence: float
    top5: str
    attention: str
    model_version: str
    model_trained: bool


def session_events(plan: SemesterPlan, campus: Campus, planned: PlannedSession) -> list[BehaviourEvent]:
    """The events of one class session as the store receives them (see ``session_records``)."""
    return [BehaviourEvent(**record._asdict()) for record in session_records(plan, campus, planned)]


@dataclass(frozen=True)
class _SessionMood:
    """What every student of one session shares (times in seconds from its start)."""

    class_mood: float  # added to every student's on-task level
    lull: tuple[float, float] | None  # the whole class off task
    gap: tuple[float, float] | None  # the camera saw nothing: no events
    attendance: float  # the chance that a student on the roster came


def _session_mood(
    plan: SemesterPlan, planned: PlannedSession, rng: random.Random, length: float
) -> _SessionMood:
    slot_effect = {8: -0.04, 13: -0.06}.get(planned.started_at.hour, 0.0)  # early start, after lunch
    class_mood = rng.gauss(0.0, 0.05) + slot_effect
    lull = None
    if rng.random() < plan.class_lull_rate:
        lull_start = rng.uniform(0.2, 0.7) * length
        lull = (lull_start, lull_start + rng.uniform(6, 14) * 60)
    gap = None
    if rng.random() < plan.camera_gap_rate:
        gap_start = rng.uniform(0.15, 0.75) * length
        gap = (gap_start, gap_start + rng.uniform(3, 8) * 60)
    return _SessionMood(class_mood, lull, gap, attendance=rng.uniform(0.85, 0.97))


def _student_span(
    plan: SemesterPlan, rng: random.Random, length: float
) -> tuple[float, float, tuple[float, float] | None]:
    """When a present student arrives and leaves (most come on time and stay), and a slump if any."""
    arrive = rng.uniform(120, 600) if rng.random() < 0.08 else 0.0
    leave = length - (rng.uniform(300, 900) if rng.random() < 0.05 else 0.0)
    slump = None
    if rng.random() < plan.student_slump_rate:
        slump_start = rng.uniform(0.1, 0.7) * length
        slump = (slump_start, slump_start + rng.uniform(6, 12) * 60)
    return arrive, leave, slump


def _student_records(
    plan: SemesterPlan,
    planned: PlannedSession,
    entry: RosterEntry,
    mood: _SessionMood,
    rng: random.Random,
    length: float,
) -> list[SemesterEvent]:
    """One present student's events, one segment after another from arrival to departure, each
    behaviour drawn from the on-task level of that moment."""
    base, drift = _student_traits(plan, entry.student)
    created = planned.started_at + timedelta(seconds=length)
    arrive, leave, slump = _student_span(plan, rng, length)
    lull, gap = mood.lull, mood.gap
    events: list[SemesterEvent] = []
    t = arrive + rng.uniform(0, plan.segment_seconds)  # random phase: minute buckets mix behaviours
    noise, previous, k = 0.0, None, 0
    while t + plan.segment_seconds <= leave:
        end = t + plan.segment_seconds
        noise = 0.8 * noise + rng.gauss(0.0, drift)
        level = base + mood.class_mood + noise - 0.004 * max(0.0, t / 60 - 20)  # fatigue after 20 minutes
        if lull and lull[0] <= t < lull[1]:
            level -= 0.6
        if slump and slump[0] <= t < slump[1]:
            level -= 0.5
        label = _draw_behaviour(rng, level, previous)
        previous = label
        if gap and end > gap[0] and t < gap[1]:
            t, k = end, k + 1
            continue
        confidence, top5 = _top5(rng, label)
        start = planned.started_at + timedelta(seconds=round(t, 3))
        stop = planned.started_at + timedelta(seconds=round(end, 3))
        events.append(
            SemesterEvent(
                event_id=f"{planned.session_id}:{entry.student}:{k}",
                created_at=created,
                session_id=planned.session_id,
                classroom_id=planned.classroom_id,
                course_id=planned.course_id,
                camera_id="front",
                student_id=entry.student,
                seat_id=entry.seat,
                window_start=start,
                window_end=stop,
                segment_start=start,
                segment_end=stop,
                label=label,
                confidence=confidence,
                top5=top5,
                attention="{}",  # nothing was attended to: no network produced these
                model_version=SYNTHETIC_MODEL_VERSION,
                model_trained=False,
            )
        )
        t, k = end, k + 1
    return events


def session_records(plan: SemesterPlan, campus: Campus, planned: PlannedSession) -> list[SemesterEvent]:
    """The events of one class session (deterministic in the plan's seed and the session id)."""
    rng = random.Random(f"{plan.seed}:session:{planned.session_id}")
    course = campus.course(planned.course_id)
    assert course is not None, planned.course_id
    length = plan.session_minutes * 60
    mood = _session_mood(plan, planned, rng, length)
    events: list[SemesterEvent] = []
    for entry in course.roster:
        if rng.random() > mood.attendance:
            continue
        events += _student_records(plan, planned, entry, mood, rng, length)
    return events


WRITERS = ("bulk", "store")
BULK_BATCH_SESSIONS = 25  # sessions per transaction of the bulk writer (about 30,000 events)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# every table a bulk batch writes, in the order it writes them
_BULK_TABLES: tuple[Table, ...] = (CLASS_SESSION, SUMMARY, SESSION_MINUTE, STUDENT_MINUTE, EVENT)


def bulk_rows(records: Sequence[SemesterEvent]) -> dict[str, list[dict[str, Any]]]:
    """The rows ``records`` add to each store table, by table name, for events not stored yet.

    The aggregates come from the store's own arithmetic (crud.fold_events and the row
    values record_events inserts), so a bulk load writes exactly what record_events would
    have written for the same new events.
    """
    folded = fold_events(records)
    return {
        CLASS_SESSION.name: [cs.model_dump() for cs in folded.sessions.values()],
        SUMMARY.name: [
            student_summary_values(session_id, student_id, inc)
            for (session_id, student_id), inc in folded.students.items()
        ],
        SESSION_MINUTE.name: minute_values(SESSION_MINUTE_KEYS, folded.session_minutes),
        STUDENT_MINUTE.name: minute_values(STUDENT_MINUTE_KEYS, folded.student_minutes),
        EVENT.name: [record._asdict() for record in records],
    }


def _copy_naive_utc(value: datetime) -> str:
    # a column without a time zone holds UTC, as record_events stores it
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def _copy_formatter(column: Column[Any]) -> Callable[[Any], str]:
    """How one column's values are written in COPY's text format (C-level callables: millions of rows)."""
    column_type = column.type
    if isinstance(column_type, sqltypes.TypeDecorator):  # sqlmodel's AutoString wraps a String
        column_type = column_type.impl_instance
    formatter: Callable[[Any], str]
    if isinstance(column_type, sqltypes.DateTime):
        # with an offset PostgreSQL stores the instant; naive values are read as UTC (the COPY sets it)
        formatter = methodcaller("isoformat", " ") if column_type.timezone else _copy_naive_utc
    elif isinstance(column_type, sqltypes.Boolean):
        formatter = {True: "t", False: "f"}.__getitem__
    elif isinstance(column_type, sqltypes.String):  # Text too
        formatter = methodcaller("translate", _COPY_ESCAPES)
    elif isinstance(column_type, sqltypes.Integer | sqltypes.Float):
        formatter = repr  # repr of a float round-trips exactly, as psycopg2 sends it
    else:
        raise TypeError(f"no COPY format for {column} ({column_type})")
    if column.nullable:
        not_null = formatter
        formatter = lambda value: r"\N" if value is None else not_null(value)  # noqa: E731
    return formatter


def _copy_rows(cursor: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY ``rows`` into ``table`` (PostgreSQL text format; the search path selects the schema)."""
    if not rows:
        return
    columns = [c.name for c in table.columns]
    formatters = [_copy_formatter(c) for c in table.columns]
    pick = itemgetter(*columns)
    lines = io.StringIO()
    for row in rows:
        lines.write("\t".join([f(v) for f, v in zip(formatters, pick(row), strict=True)]))
        lines.write("\n")
    lines.seek(0)
    quoted = ", ".join(f'"{c}"' for c in columns)
    cursor.copy_expert(f'COPY "{table.name}" ({quoted}) FROM STDIN', lines)


def write_bulk(engine: Engine, records: Sequence[SemesterEvent]) -> int:
    """Write events that are not stored yet and their aggregates in one transaction; how many events.

    PostgreSQL gets COPY, SQLite executemany. Unlike record_events this does not merge into
    rows already there: an event id or aggregate key that is already stored makes the
    whole transaction fail (the generator only writes sessions that are absent).
    """
    if not records:
        return 0
    rows = bulk_rows(records)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET TIME ZONE 'UTC'")
            # a crash loses at most the last batches, which a rerun writes again
            cursor.execute("SET synchronous_commit TO off")
            for table in _BULK_TABLES:
                _copy_rows(cursor, table, rows[table.name])
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
    elif engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            for table in _BULK_TABLES:
                if rows[table.name]:
                    connection.execute(table.insert(), rows[table.name])
    else:
        raise NotImplementedError(
            f"the bulk writer supports SQLite and PostgreSQL, not {engine.dialect.name}"
        )
    return len(records)


class _Progress:
    """Prints a worker's progress to stderr about every ``every`` sessions."""

    def __init__(self, worker_index: int, n_sessions: int, every: int = 500) -> None:
        self.worker_index, self.n_sessions, self.every = worker_index, n_sessions, every
        self.started = time.monotonic()
        self.next_report = every

    def __call__(self, written: int, skipped: int, events: int) -> None:
        if written < self.next_report:
            return
        self.next_report = (written // self.every + 1) * self.every
        elapsed = time.monotonic() - self.started
        rate = written / elapsed
        left = (self.n_sessions - written - skipped) / rate if rate else float("nan")
        print(
            f"  worker {self.worker_index}: {written + skipped}/{self.n_sessions} sessions, "
            f"{rate:.2f} sessions/s, {events / elapsed:,.0f} events/s, about {left / 60:.0f} min left",
            file=sys.stderr,
            flush=True,
        )


def _write_sessions(
    database_url: str,
    plan: SemesterPlan,
    sessions: list[PlannedSession],
    *,
    writer: str = "bulk",
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[int, int, int]:
    """Write ``sessions`` (skipping those present); (written, skipped, events).

    ``store``: through record_events, one transaction per session. ``bulk``: write_bulk,
    one transaction per BULK_BATCH_SESSIONS sessions. Either way a session is stored with
    all its events and aggregates or not at all, so an interrupted run resumes.
    """
    engine = open_engine(database_url)
    campus = build_campus(plan)
    with Session(engine) as session:
        sync_campus(session=session, campus=campus)
        session.commit()
        present = set(session.exec(select(ClassSession.id)).all())
    absent = [planned for planned in sessions if planned.session_id not in present]
    skipped, written, n_events = len(sessions) - len(absent), 0, 0
    batch_size = BULK_BATCH_SESSIONS if writer == "bulk" else 1
    for first in range(0, len(absent), batch_size):
        batch = absent[first : first + batch_size]
        if writer == "bulk":
            n_events += write_bulk(
                engine, [r for planned in batch for r in session_records(plan, campus, planned)]
            )
        else:
            with Session(engine) as session:
                n_events += record_events(
                    session=session, events=session_events(plan, campus, batch[0])
                ).inserted
                session.commit()
        written += len(batch)
        if progress is not None:
            progress(written, skipped, n_events)
    engine.dispose()
    return written, skipped, n_events


def _worker(job: tuple[str, SemesterPlan, list[PlannedSession], int, str]) -> tuple[int, int, int]:
    database_url, plan, sessions, worker_index, writer = job
    return _write_sessions(
        database_url, plan, sessions, writer=writer, progress=_Progress(worker_index, len(sessions))
    )


def analyse(database_url: str) -> None:
    """Refresh the planner's statistics after a bulk load (both SQLite and PostgreSQL plan by them)."""
    engine = open_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def generate_semester(
    database_url: str,
    plan: SemesterPlan,
    *,
    workers: int = 1,
    limit_sessions: int | None = None,
    writer: str = "bulk",
) -> GenerationReport:
    """Generate the plan's semester into ``database_url``; ``limit_sessions`` writes only the first N.

    ``writer`` is ``bulk`` (fast: write_bulk) or ``store`` (record_events, the store's own
    write path, one session at a time); both write the same rows.
    """
    if writer not in WRITERS:
        raise ValueError(f"writer must be one of {', '.join(WRITERS)}, not {writer!r}")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if limit_sessions is not None and limit_sessions < 0:
        raise ValueError("limit_sessions must not be negative")
    started = time.monotonic()
    campus = build_campus(plan)
    sessions = planned_sessions(plan, campus)[:limit_sessions]
    report = GenerationReport(writer=writer)
    workers = min(workers, len(sessions) or 1)
    open_engine(database_url).dispose()  # schema and tables exist before any worker starts
    # interleave so every worker gets a share of every week (progress is even)
    jobs = [(database_url, plan, sessions[w::workers], w, writer) for w in range(workers)]
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with _terminate_on_sigterm(), multiprocessing.get_context("spawn").Pool(workers) as pool:
            # SIGTERM (kill) becomes SystemExit here, so leaving the block terminates the workers
            # too; what they committed stays, and a rerun resumes after it.
            results = list(pool.imap_unordered(_worker, jobs))
    for written, skipped, n_events in results:
        report.sessions_written += written
        report.sessions_skipped += skipped
        report.events += n_events
    report.write_seconds = time.monotonic() - started
    analyse(database_url)
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def iter_plan_summary(plan: SemesterPlan) -> Iterator[str]:
    """Lines describing what a plan will generate (printed before a long run)."""
    campus = build_campus(plan)
    sizes = [len(c.roster) for c in campus.courses]
    yield (
        f"{plan.rooms} classrooms x {plan.slots_per_day} sessions/day x {plan.days_per_week} days x "
        f"{plan.weeks} weeks = {plan.n_sessions} sessions of {plan.session_minutes} min"
    )
    mean_size = sum(sizes) / len(sizes)
    yield (
        f"{len(campus.courses)} courses, rosters {min(sizes)}-{max(sizes)} students (mean {mean_size:.1f}),"
        f" events of {plan.segment_seconds} s segments"
    )
