"""The dashboard's query layer: pure functions from (engine, viewer, mapping, filters) to plain rows.

Pages call only these functions, and these enforce who may see what: every query is
scoped by the viewer (an instructor's rows are restricted to the courses that the
``courseinstructor`` table gives them), so a session id typed into the URL of another
course is refused here, not merely hidden by the page.

Only the store's aggregate tables are read on the pages' paths (StudentSessionSummary,
SessionMinute, StudentMinute, ClassSession), through their primary keys or indexes;
raw behaviour events are read for one session at a time (which model produced them, the
student x time view), and to count low-confidence events, which no aggregate keeps: per
listed session, per session of one student, and per alert window, always through the
event table's (session, student, time) or (student, time) index.
Engagement is computed in SQL from the seconds per behaviour with the configured mapping
(services/common/engagement.py), so a new mapping needs no recomputation:

- engagement of a span = Σ_b w_b·s_b / Σ_b s_b (time-weighted mean of the weights)
- engaged share        = Σ_{b: w_b ≥ threshold} s_b / Σ_b s_b
- a session's mean engagement = the mean over present students of their engagement
  (every student counts once, however long they were seen)
- an alert = at least ``alert_minutes`` consecutive observed minutes whose engagement is
  below ``alert_below``, for one student (StudentMinute) or the whole class (SessionMinute).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Float, Integer, case, func, literal, select, union_all
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.schema import Table

from dashboards.auth import Viewer
from services.common.db import as_utc
from services.common.db.models import (
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
from services.common.engagement import EngagementMapping
from services.common.vocabulary import BEHAVIOURS

# A minute counts towards an alert only when its student (or class) was seen for at least
# this long in it: a student seen for five seconds while arriving is not "disengaged".
MIN_OBSERVED_SECONDS = 20.0
# Alerts over a date range read StudentMinute of every session in it; past this many
# sessions the page asks for a narrower range instead of answering slowly.
MAX_ALERT_SESSIONS = 400
# Sessions whose minutes one alert query reads (see _alerts_for).
ALERT_SESSIONS_PER_QUERY = 100
# Sessions (or alert windows) whose events one low-confidence count reads: bounded IN lists and
# UNIONs (SQLite allows 500 terms in a compound SELECT by default).
COUNTS_PER_QUERY = 100
SYNTHETIC_PREFIX = "synthetic/"

CLASS_SESSION: Table = ClassSession.__table__  # type: ignore[attr-defined]
SUMMARY: Table = StudentSessionSummary.__table__  # type: ignore[attr-defined]
SESSION_MINUTE: Table = SessionMinute.__table__  # type: ignore[attr-defined]
STUDENT_MINUTE: Table = StudentMinute.__table__  # type: ignore[attr-defined]
COURSE_INSTRUCTOR: Table = CourseInstructor.__table__  # type: ignore[attr-defined]
CLASSROOM: Table = Classroom.__table__  # type: ignore[attr-defined]
COURSE: Table = Course.__table__  # type: ignore[attr-defined]
EVENT: Table = BehaviourEvent.__table__  # type: ignore[attr-defined]


class SessionNotAccessible(LookupError):
    """A session that does not exist, or that the viewer may not see (the message does not say which)."""


class RangeTooWide(ValueError):
    """A request that would read more than the page may read quickly; the message says how to narrow it."""


# ---------------------------------------------------------------------------------------------
# Engagement in SQL


def observed_seconds(table: Table) -> ColumnElement[Any]:
    return sum((table.c[seconds_column(b)] for b in BEHAVIOURS[1:]), table.c[seconds_column(BEHAVIOURS[0])])


def engagement_sql(mapping: EngagementMapping, table: Table) -> ColumnElement[Any]:
    """Σ w_b s_b / Σ s_b for one row of an aggregate table; NULL when nothing was observed."""
    weighted = sum(
        (literal(mapping.weights[b], Float) * table.c[seconds_column(b)] for b in BEHAVIOURS[1:]),
        literal(mapping.weights[BEHAVIOURS[0]], Float) * table.c[seconds_column(BEHAVIOURS[0])],
    )
    return weighted / func.nullif(observed_seconds(table), 0.0)


def engaged_share_sql(mapping: EngagementMapping, table: Table) -> ColumnElement[Any]:
    engaged = [table.c[seconds_column(b)] for b in BEHAVIOURS if mapping.engaged(b)]
    if not engaged:
        return literal(0.0, Float) * observed_seconds(table)
    return sum(engaged[1:], engaged[0]) / func.nullif(observed_seconds(table), 0.0)


class minute_number(FunctionElement[int]):
    """Whole minutes since the epoch of a minute-bucket column, so consecutive minutes differ by 1."""

    type = Integer()
    inherit_cache = True


@compiles(minute_number, "sqlite")
def _minute_number_sqlite(element: minute_number, compiler: Any, **kw: Any) -> str:
    # SQLite stores the buckets as 'YYYY-MM-DD HH:MM:00.000000' UTC text
    return f"(CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER) / 60)"


@compiles(minute_number, "postgresql")
def _minute_number_postgresql(element: minute_number, compiler: Any, **kw: Any) -> str:
    return f"(CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS BIGINT) / 60)"


# ---------------------------------------------------------------------------------------------
# Who may see what


def _courses_of(viewer: Viewer) -> Select[Any]:
    return select(COURSE_INSTRUCTOR.c.course_id).where(COURSE_INSTRUCTOR.c.username == viewer.username)


def scoped(statement: Select[Any], viewer: Viewer, course_column: ColumnElement[Any]) -> Select[Any]:
    """Restrict a statement to the viewer's courses (administrators see everything)."""
    if viewer.is_admin:
        return statement
    return statement.where(course_column.in_(_courses_of(viewer)))


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class SessionFilter:
    """Sessions page filters; days are calendar days in the display time zone, both inclusive."""

    classroom_id: str | None = None
    course_id: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    timezone: str = "UTC"

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        zone = ZoneInfo(self.timezone)
        lower = datetime.combine(self.first_day, time(0), zone).astimezone(UTC) if self.first_day else None
        upper = (
            datetime.combine(self.last_day + timedelta(days=1), time(0), zone).astimezone(UTC)
            if self.last_day
            else None
        )
        return lower, upper


@dataclass(frozen=True)
class FilterOptions:
    classrooms: list[tuple[str, str]]  # (id, label)
    courses: list[tuple[str, str]]  # (id, label)
    first_day: date | None
    last_day: date | None


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    classroom_id: str
    classroom_name: str
    course_id: str
    course_name: str
    camera_id: str
    started_at: datetime
    ended_at: datetime
    model_version: str
    model_trained: bool


@dataclass(frozen=True)
class SessionRow(SessionInfo):
    """A session in the Sessions list: its header plus who was there and how engaged they were."""

    students_present: int = 0
    mean_engagement: float | None = None


@dataclass(frozen=True)
class SessionPage:
    rows: list[SessionRow]
    total: int  # sessions matching the filters, of which ``rows`` is one page


@dataclass(frozen=True)
class ModelUse:
    model_version: str
    model_trained: bool
    events: int


@dataclass(frozen=True)
class MinutePoint:
    minute: datetime
    engagement: float | None
    engaged_share: float | None
    students_seen: float  # observed student-seconds / 60: how many students the minute covers


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return round((self.end - self.start).total_seconds() / 60)


@dataclass(frozen=True)
class SessionTimeline:
    points: list[MinutePoint]
    gaps: list[Gap]  # whole minutes inside the session without any observation


@dataclass(frozen=True)
class StudentRow:
    student_id: str
    seat_id: str
    first_seen: datetime
    last_seen: datetime
    observed_minutes: float
    engagement: float | None
    engaged_share: float | None
    minutes: dict[str, float]  # behaviour -> minutes
    hand_raises: int

    @property
    def phone_minutes(self) -> float:
        return self.minutes["phone_usage"]


@dataclass(frozen=True)
class StudentSessionRow:
    session_id: str
    course_id: str
    course_name: str
    classroom_id: str
    started_at: datetime
    engagement: float | None
    engaged_share: float | None
    minutes: dict[str, float]
    hand_raises: int
    model_version: str
    model_trained: bool


@dataclass(frozen=True)
class Alert:
    kind: str  # "student" or "class"
    session_id: str
    student_id: str | None
    start: datetime
    end: datetime  # exclusive: the end of the last low minute
    minutes: int
    mean_engagement: float
    course_id: str = ""
    classroom_id: str = ""
    model_version: str = ""  # the session's


@dataclass
class AlertReport:
    alerts: list[Alert] = field(default_factory=list)
    sessions_checked: int = 0
    models: set[tuple[str, bool]] = field(default_factory=set)  # (model version, trained) of those sessions


def _aware(value: datetime | str) -> datetime:
    """Datetimes from raw SQL expressions: SQLite hands back text, PostgreSQL aware datetimes."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _minutes_by_behaviour(row: Any) -> dict[str, float]:
    return {b: float(row[seconds_column(b)] or 0.0) / 60.0 for b in BEHAVIOURS}


# ---------------------------------------------------------------------------------------------
# Sessions page


def filter_options(engine: Engine, viewer: Viewer, *, timezone: str = "UTC") -> FilterOptions:
    """Classrooms, courses and the date span the viewer can filter by."""
    zone = ZoneInfo(timezone)
    with engine.connect() as connection:
        span = connection.execute(
            scoped(
                select(func.min(CLASS_SESSION.c.started_at), func.max(CLASS_SESSION.c.started_at)),
                viewer,
                CLASS_SESSION.c.course_id,
            )
        ).one()
        names = dict(connection.execute(select(CLASSROOM.c.id, CLASSROOM.c.name)).all())
        course_names = dict(connection.execute(select(COURSE.c.id, COURSE.c.name)).all())
        if viewer.is_admin:
            # the distinct ids come from the sessions' indexes, so a classroom the campus
            # file never listed still appears
            room_ids = set(connection.execute(select(CLASS_SESSION.c.classroom_id).distinct()).scalars())
            course_ids = set(connection.execute(select(CLASS_SESSION.c.course_id).distinct()).scalars())
        else:
            course_ids = set(connection.execute(_courses_of(viewer)).scalars())
            room_ids = set(
                connection.execute(
                    select(CLASS_SESSION.c.classroom_id)
                    .where(CLASS_SESSION.c.course_id.in_(_courses_of(viewer)))
                    .distinct()
                ).scalars()
            )
    first, last = (None if v is None else _aware(v).astimezone(zone).date() for v in span)
    return FilterOptions(
        classrooms=sorted((r, f"{names[r]} ({r})" if names.get(r) else r) for r in room_ids),
        courses=sorted(
            (c, f"{course_names[c]} ({c})" if course_names.get(c) else (c or "(no course)"))
            for c in course_ids
        ),
        first_day=first,
        last_day=last,
    )


def _session_filters(statement: Select[Any], filters: SessionFilter) -> Select[Any]:
    lower, upper = filters.bounds()
    if filters.classroom_id:
        statement = statement.where(CLASS_SESSION.c.classroom_id == filters.classroom_id)
    if filters.course_id:
        statement = statement.where(CLASS_SESSION.c.course_id == filters.course_id)
    if lower is not None:
        statement = statement.where(CLASS_SESSION.c.started_at >= lower)
    if upper is not None:
        statement = statement.where(CLASS_SESSION.c.started_at < upper)
    return statement


def _sessions_with_names() -> Select[Any]:
    """ClassSession rows with their classroom's and course's names (either may be unknown)."""
    return (
        select(CLASS_SESSION, CLASSROOM.c.name.label("classroom_name"), COURSE.c.name.label("course_name"))
        .outerjoin(CLASSROOM, CLASSROOM.c.id == CLASS_SESSION.c.classroom_id)
        .outerjoin(COURSE, COURSE.c.id == CLASS_SESSION.c.course_id)
    )


def _session_fields(r: Any) -> dict[str, Any]:
    return {
        "session_id": r["id"],
        "classroom_id": r["classroom_id"],
        "classroom_name": r["classroom_name"] or "",
        "course_id": r["course_id"],
        "course_name": r["course_name"] or "",
        "camera_id": r["camera_id"],
        "started_at": r["started_at"],
        "ended_at": r["ended_at"],
        "model_version": r["model_version"],
        "model_trained": bool(r["model_trained"]),
    }


def list_sessions(
    engine: Engine,
    viewer: Viewer,
    mapping: EngagementMapping,
    filters: SessionFilter,
    *,
    limit: int = 200,
    offset: int = 0,
) -> SessionPage:
    """The most recent sessions matching the filters (one page), with students present and mean engagement."""
    matching = _session_filters(
        scoped(select(CLASS_SESSION.c.id), viewer, CLASS_SESSION.c.course_id), filters
    )
    listed = _session_filters(scoped(_sessions_with_names(), viewer, CLASS_SESSION.c.course_id), filters)
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(matching.subquery())).scalar_one()
        page = (
            connection.execute(
                listed.order_by(CLASS_SESSION.c.started_at.desc(), CLASS_SESSION.c.id)
                .limit(limit)
                .offset(offset)
            )
            .mappings()
            .all()
        )
        # students present and mean engagement for this page only: a primary-key range per session
        stats = {
            r.session_id: (int(r.present), None if r.mean is None else float(r.mean))
            for r in connection.execute(
                select(
                    SUMMARY.c.session_id,
                    func.count().label("present"),
                    func.avg(engagement_sql(mapping, SUMMARY)).label("mean"),
                )
                .where(SUMMARY.c.session_id.in_([r["id"] for r in page]))
                .group_by(SUMMARY.c.session_id)
            )
        }
    rows = [
        SessionRow(
            **_session_fields(r),
            students_present=stats.get(r["id"], (0, None))[0],
            mean_engagement=stats.get(r["id"], (0, None))[1],
        )
        for r in page
    ]
    return SessionPage(rows=rows, total=int(total))


# ---------------------------------------------------------------------------------------------
# One session


def _session_or_refuse(connection: Connection, viewer: Viewer, session_id: str) -> Any:
    row = (
        connection.execute(
            scoped(_sessions_with_names(), viewer, CLASS_SESSION.c.course_id).where(
                CLASS_SESSION.c.id == session_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        if viewer.is_admin:
            raise SessionNotAccessible(f"There is no session {session_id!r}.")
        raise SessionNotAccessible(
            f"Session {session_id!r} is not one of your courses' sessions (or does not exist)."
        )
    return row


def get_session(engine: Engine, viewer: Viewer, session_id: str) -> SessionInfo:
    """One session's header; raises SessionNotAccessible when it is missing or not the viewer's."""
    with engine.connect() as connection:
        return SessionInfo(**_session_fields(_session_or_refuse(connection, viewer, session_id)))


def session_models(engine: Engine, viewer: Viewer, session_id: str) -> list[ModelUse]:
    """Which model versions produced this session's events (trained or not), most events first."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        rows = connection.execute(
            select(EVENT.c.model_version, EVENT.c.model_trained, func.count())
            .where(EVENT.c.session_id == session_id)
            .group_by(EVENT.c.model_version, EVENT.c.model_trained)
        ).all()
    return sorted((ModelUse(v, bool(t), int(n)) for v, t, n in rows), key=lambda m: -m.events)


def session_events(engine: Engine, viewer: Viewer, session_id: str) -> pd.DataFrame:
    """Every behaviour event of one session the viewer may see, oldest first: the event-level export
    (times UTC, confidence 0..1, the top five as label:probability, the model that made it)."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        rows = connection.execute(
            select(
                EVENT.c.student_id,
                EVENT.c.seat_id,
                EVENT.c.window_start,
                EVENT.c.window_end,
                EVENT.c.label,
                EVENT.c.confidence,
                EVENT.c.top5,
                EVENT.c.model_version,
                EVENT.c.model_trained,
                EVENT.c.event_id,
            )
            .where(EVENT.c.session_id == session_id)
            .order_by(EVENT.c.window_end, EVENT.c.student_id)
        ).all()
    out = []
    for r in rows:
        top5 = "; ".join(f"{label}:{p:.3f}" for label, p in top_five(r.top5))
        out.append(
            {
                "student": r.student_id,
                "seat": r.seat_id,
                "window start (UTC)": as_utc(r.window_start).isoformat(),
                "window end (UTC)": as_utc(r.window_end).isoformat(),
                "behaviour": r.label,
                "confidence (0-1)": round(float(r.confidence), 4),
                "top 5 (label:probability)": top5,
                "model": r.model_version,
                "model trained": bool(r.model_trained),
                "event id": r.event_id,
            }
        )
    return pd.DataFrame(out)


def session_event_spans(engine: Engine, viewer: Viewer, session_id: str) -> pd.DataFrame:
    """What each event of one session covers: student, start, end (segment, aware UTC), behaviour and
    confidence, oldest first. The student x time view bins these (dashboards/behaviour_grid.py)."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        rows = connection.execute(
            select(
                EVENT.c.student_id,
                EVENT.c.segment_start,
                EVENT.c.segment_end,
                EVENT.c.label,
                EVENT.c.confidence,
            )
            .where(EVENT.c.session_id == session_id)
            .order_by(EVENT.c.student_id, EVENT.c.segment_start)
        ).all()
    return pd.DataFrame(
        {
            "student": [r.student_id for r in rows],
            "start": pd.to_datetime([as_utc(r.segment_start) for r in rows], utc=True),
            "end": pd.to_datetime([as_utc(r.segment_end) for r in rows], utc=True),
            "behaviour": [r.label for r in rows],
            "confidence": [float(r.confidence) for r in rows],
        }
    )


@dataclass(frozen=True)
class EventDetail:
    """One event as the student x time view explains it: what the model saw and where it looked."""

    student_id: str
    window_start: datetime
    window_end: datetime
    segment_start: datetime
    segment_end: datetime
    label: str
    confidence: float
    top5: list[tuple[str, float]]
    keypoint_weights: list[float]  # one per keypoint (services/common/vocabulary.KEYPOINTS), or none stored
    frame_weights: list[float]  # one per frame of the window, oldest first, or none stored
    model_version: str
    model_trained: bool


def _parsed_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def top_five(text: str) -> list[tuple[str, float]]:
    """A stored top-5 (JSON [[label, probability], ...]) as pairs; unreadable JSON reads as none stored."""
    top5 = _parsed_json(text)
    try:
        return [(str(label), float(p)) for label, p in top5] if isinstance(top5, list) else []
    except (TypeError, ValueError):
        return []


def event_detail(row: Any) -> EventDetail:
    """An EventDetail from a behaviour_event row; unreadable top-5 or attention JSON reads as none stored."""
    ranked = top_five(row.top5)
    attention = _parsed_json(row.attention)
    attention = attention if isinstance(attention, dict) else {}
    try:
        keypoints = [float(w) for w in attention.get("keypoints") or []]
        frames = [float(w) for w in attention.get("frames") or []]
    except (TypeError, ValueError):
        ranked, keypoints, frames = [], [], []
    return EventDetail(
        student_id=row.student_id,
        window_start=as_utc(row.window_start),
        window_end=as_utc(row.window_end),
        segment_start=as_utc(row.segment_start),
        segment_end=as_utc(row.segment_end),
        label=row.label,
        confidence=float(row.confidence),
        top5=ranked,
        keypoint_weights=keypoints,
        frame_weights=frames,
        model_version=row.model_version,
        model_trained=bool(row.model_trained),
    )


def event_at(
    engine: Engine, viewer: Viewer, session_id: str, student_id: str, moment: datetime
) -> EventDetail | None:
    """The event whose segment covers ``moment`` for one student of one session (the newest that
    starts at or before it, through the session-student-time index), or None when none covers it."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        row = connection.execute(
            select(EVENT)
            .where(
                EVENT.c.session_id == session_id,
                EVENT.c.student_id == student_id,
                EVENT.c.segment_start <= moment,
            )
            .order_by(EVENT.c.segment_start.desc(), EVENT.c.window_end.desc())
            .limit(1)
        ).first()
    if row is None or as_utc(row.segment_end) < moment:
        return None
    return event_detail(row)


def _minute_points(
    connection: Connection, table: Table, mapping: EngagementMapping, *conditions: ColumnElement[bool]
) -> list[MinutePoint]:
    """Engagement per minute bucket of SessionMinute or StudentMinute rows, in time order."""
    rows = connection.execute(
        select(
            table.c.minute,
            engagement_sql(mapping, table).label("engagement"),
            engaged_share_sql(mapping, table).label("engaged_share"),
            observed_seconds(table).label("observed"),
        )
        .where(*conditions)
        .order_by(table.c.minute)
    ).all()
    return [
        MinutePoint(
            minute=r.minute,
            engagement=None if r.engagement is None else float(r.engagement),
            engaged_share=None if r.engaged_share is None else float(r.engaged_share),
            students_seen=float(r.observed or 0.0) / 60.0,
        )
        for r in rows
    ]


def session_timeline(
    engine: Engine, viewer: Viewer, mapping: EngagementMapping, session_id: str
) -> SessionTimeline:
    """Class engagement per minute (SessionMinute) and the minutes without any observation."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        points = _minute_points(
            connection, SESSION_MINUTE, mapping, SESSION_MINUTE.c.session_id == session_id
        )
    return SessionTimeline(points=points, gaps=find_gaps([p.minute for p in points]))


def find_gaps(minutes: Sequence[datetime]) -> list[Gap]:
    """Runs of whole minutes missing between consecutive observed minute buckets (sorted input)."""
    gaps = []
    for before, after in pairwise(minutes):
        if after - before > timedelta(minutes=1):
            gaps.append(Gap(start=before + timedelta(minutes=1), end=after))
    return gaps


def behaviour_minutes(engine: Engine, viewer: Viewer, session_id: str) -> dict[str, float]:
    """Student-minutes spent in each behaviour over the whole session (all students)."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        row = connection.execute(
            select(
                *(func.coalesce(func.sum(SUMMARY.c[seconds_column(b)]), 0.0).label(b) for b in BEHAVIOURS)
            ).where(SUMMARY.c.session_id == session_id)
        ).one()
    return {b: float(row._mapping[b]) / 60.0 for b in BEHAVIOURS}


def student_table(
    engine: Engine, viewer: Viewer, mapping: EngagementMapping, session_id: str
) -> list[StudentRow]:
    """One row per student present in the session (StudentSessionSummary), by student id."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        rows = (
            connection.execute(
                select(
                    SUMMARY,
                    engagement_sql(mapping, SUMMARY).label("engagement"),
                    engaged_share_sql(mapping, SUMMARY).label("engaged_share"),
                    observed_seconds(SUMMARY).label("observed"),
                )
                .where(SUMMARY.c.session_id == session_id)
                .order_by(SUMMARY.c.student_id)
            )
            .mappings()
            .all()
        )
    return [
        StudentRow(
            student_id=r["student_id"],
            seat_id=r["seat_id"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            observed_minutes=float(r["observed"] or 0.0) / 60.0,
            engagement=None if r["engagement"] is None else float(r["engagement"]),
            engaged_share=None if r["engaged_share"] is None else float(r["engaged_share"]),
            minutes=_minutes_by_behaviour(r),
            hand_raises=int(r["hand_raise_count"]),
        )
        for r in rows
    ]


def student_minutes(
    engine: Engine, viewer: Viewer, mapping: EngagementMapping, session_id: str, student_id: str
) -> list[MinutePoint]:
    """One student's engagement per minute in one session (StudentMinute), for 'when' they were disengaged."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        return _minute_points(
            connection,
            STUDENT_MINUTE,
            mapping,
            STUDENT_MINUTE.c.session_id == session_id,
            STUDENT_MINUTE.c.student_id == student_id,
        )


# ---------------------------------------------------------------------------------------------
# One student


def course_students(engine: Engine, viewer: Viewer, course_id: str) -> list[str]:
    """Students seen in a course's sessions (empty when the course is not the viewer's)."""
    statement = scoped(
        select(SUMMARY.c.student_id).where(SUMMARY.c.course_id == course_id).distinct(),
        viewer,
        SUMMARY.c.course_id,
    )
    with engine.connect() as connection:
        return sorted(connection.execute(statement).scalars())


def student_sessions(
    engine: Engine, viewer: Viewer, mapping: EngagementMapping, student_id: str
) -> list[StudentSessionRow]:
    """Every session of the viewer's courses in which the student was seen, oldest first."""
    statement = scoped(
        select(
            SUMMARY,
            CLASS_SESSION.c.started_at,
            CLASS_SESSION.c.model_version,
            CLASS_SESSION.c.model_trained,
            COURSE.c.name.label("course_name"),
            engagement_sql(mapping, SUMMARY).label("engagement"),
            engaged_share_sql(mapping, SUMMARY).label("engaged_share"),
        )
        .join(CLASS_SESSION, CLASS_SESSION.c.id == SUMMARY.c.session_id)
        .outerjoin(COURSE, COURSE.c.id == SUMMARY.c.course_id)
        .where(SUMMARY.c.student_id == student_id)
        .order_by(CLASS_SESSION.c.started_at),
        viewer,
        SUMMARY.c.course_id,
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).mappings().all()
    return [
        StudentSessionRow(
            session_id=r["session_id"],
            course_id=r["course_id"],
            course_name=r["course_name"] or "",
            classroom_id=r["classroom_id"],
            started_at=r["started_at"],
            engagement=None if r["engagement"] is None else float(r["engagement"]),
            engaged_share=None if r["engaged_share"] is None else float(r["engaged_share"]),
            minutes=_minutes_by_behaviour(r),
            hand_raises=int(r["hand_raise_count"]),
            model_version=r["model_version"],
            model_trained=bool(r["model_trained"]),
        )
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------
# Low confidence: how many of the events behind a number name their behaviour with a confidence
# below the dashboard's threshold (DASHBOARD_LOW_CONFIDENCE_BELOW)


@dataclass(frozen=True)
class ConfidenceCount:
    low: int  # events whose confidence is below the threshold
    events: int  # all events counted

    @property
    def share(self) -> float | None:
        return self.low / self.events if self.events else None


NO_EVENTS = ConfidenceCount(0, 0)


def _count_columns(below: float) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    low = func.coalesce(func.sum(case((EVENT.c.confidence < below, 1), else_=0)), 0)
    return low.label("low"), func.count().label("events")


def low_confidence_by_session(
    engine: Engine, viewer: Viewer, session_ids: Sequence[str], *, below: float
) -> dict[str, ConfidenceCount]:
    """Low-confidence events of each session the viewer may see (absent: none, or not the viewer's)."""
    low, events = _count_columns(below)
    ids = sorted(set(session_ids))
    counts: dict[str, ConfidenceCount] = {}
    with engine.connect() as connection:
        for first in range(0, len(ids), COUNTS_PER_QUERY):
            statement = scoped(
                select(EVENT.c.session_id, low, events)
                .where(EVENT.c.session_id.in_(ids[first : first + COUNTS_PER_QUERY]))
                .group_by(EVENT.c.session_id),
                viewer,
                EVENT.c.course_id,
            )
            counts |= {
                r.session_id: ConfidenceCount(int(r.low), int(r.events))
                for r in connection.execute(statement)
            }
    return counts


def low_confidence_of_student(
    engine: Engine, viewer: Viewer, student_id: str, *, below: float
) -> dict[str, ConfidenceCount]:
    """One student's low-confidence events per session of the viewer's courses."""
    low, events = _count_columns(below)
    statement = scoped(
        select(EVENT.c.session_id, low, events)
        .where(EVENT.c.student_id == student_id)
        .group_by(EVENT.c.session_id),
        viewer,
        EVENT.c.course_id,
    )
    with engine.connect() as connection:
        return {
            r.session_id: ConfidenceCount(int(r.low), int(r.events)) for r in connection.execute(statement)
        }


def low_confidence_of_alerts(
    engine: Engine, viewer: Viewer, alerts: Sequence[Alert], *, below: float
) -> list[ConfidenceCount]:
    """For each alert, the low-confidence events among those that start inside its window: its
    student's, or every student's for a class alert. One query per 100 alerts."""
    low, events = _count_columns(below)
    counts: list[ConfidenceCount] = []
    with engine.connect() as connection:
        for first in range(0, len(alerts), COUNTS_PER_QUERY):
            windows = [
                scoped(
                    select(literal(i).label("alert"), low, events).where(
                        EVENT.c.session_id == a.session_id,
                        EVENT.c.segment_start >= a.start,
                        EVENT.c.segment_start < a.end,
                        *([EVENT.c.student_id == a.student_id] if a.kind == "student" else []),
                    ),
                    viewer,
                    EVENT.c.course_id,
                )
                for i, a in enumerate(alerts[first : first + COUNTS_PER_QUERY])
            ]
            rows = {
                r.alert: ConfidenceCount(int(r.low), int(r.events))
                for r in connection.execute(union_all(*windows))
            }
            counts += [rows.get(i, NO_EVENTS) for i in range(len(windows))]
    return counts


# ---------------------------------------------------------------------------------------------
# Alerts


def _low_runs(
    table: Table,
    keys: Sequence[str],
    mapping: EngagementMapping,
    session_ids: Sequence[str],
) -> Select[Any]:
    """Runs of consecutive low-engagement minutes (gaps and islands: minute number minus row number)."""
    scored = (
        select(
            *(table.c[k] for k in keys),
            table.c.minute,
            minute_number(table.c.minute).label("minute_no"),
            engagement_sql(mapping, table).label("score"),
        )
        .where(table.c.session_id.in_(session_ids))
        .where(observed_seconds(table) >= MIN_OBSERVED_SECONDS)
        .subquery("scored")
    )
    partition = [scored.c[k] for k in keys]
    low = (
        select(
            *partition,
            scored.c.minute,
            scored.c.score,
            (
                scored.c.minute_no - func.row_number().over(partition_by=partition, order_by=scored.c.minute)
            ).label("island"),
        )
        .where(scored.c.score < mapping.alert_below)
        .subquery("low")
    )
    return (
        select(
            *(low.c[k] for k in keys),
            func.min(low.c.minute).label("first_minute"),
            func.max(low.c.minute).label("last_minute"),
            func.count().label("minutes"),
            func.avg(low.c.score).label("mean_score"),
        )
        .group_by(*(low.c[k] for k in keys), low.c.island)
        .having(func.count() >= mapping.alert_minutes)
    )


def _alerts_for(connection: Connection, mapping: EngagementMapping, session_ids: Select[Any]) -> list[Alert]:
    courses = {
        r.id: (r.course_id, r.classroom_id, r.model_version)
        for r in connection.execute(
            select(
                CLASS_SESSION.c.id,
                CLASS_SESSION.c.course_id,
                CLASS_SESSION.c.classroom_id,
                CLASS_SESSION.c.model_version,
            ).where(CLASS_SESSION.c.id.in_(session_ids))
        )
    }
    # The minute tables are read by session id lists, not by the sessions' subquery: joined
    # to a subquery of a few hundred sessions, PostgreSQL's planner takes the rows of one
    # session for scattered and scans the whole of StudentMinute instead of its primary key
    # (two days of the semester data set: 5.9 s for that one query; 0.47 s for all of the
    # alerts in pieces of 100 sessions, docs/benchmarks.md).
    # Alerts never span sessions, so the lists can be cut into pieces.
    ids = sorted(courses)
    chunks = [ids[i : i + ALERT_SESSIONS_PER_QUERY] for i in range(0, len(ids), ALERT_SESSIONS_PER_QUERY)]
    alerts = []
    for kind, table, keys in (
        ("class", SESSION_MINUTE, ("session_id",)),
        ("student", STUDENT_MINUTE, ("session_id", "student_id")),
    ):
        for chunk in chunks:
            for r in connection.execute(_low_runs(table, keys, mapping, chunk)).mappings():
                course_id, classroom_id, model_version = courses.get(r["session_id"], ("", "", ""))
                alerts.append(
                    Alert(
                        kind=kind,
                        session_id=r["session_id"],
                        student_id=r.get("student_id"),
                        start=_aware(r["first_minute"]),
                        end=_aware(r["last_minute"]) + timedelta(minutes=1),
                        minutes=int(r["minutes"]),
                        mean_engagement=float(r["mean_score"]),
                        course_id=course_id,
                        classroom_id=classroom_id,
                        model_version=model_version,
                    )
                )
    alerts.sort(key=lambda a: (a.start, a.kind != "class", a.session_id, a.student_id or ""))
    return alerts


def session_alerts(
    engine: Engine, viewer: Viewer, mapping: EngagementMapping, session_id: str
) -> list[Alert]:
    """Sustained low engagement of the class or of a student in one session."""
    with engine.connect() as connection:
        _session_or_refuse(connection, viewer, session_id)
        return _alerts_for(connection, mapping, select(literal(session_id)))


def alerts_in_range(
    engine: Engine,
    viewer: Viewer,
    mapping: EngagementMapping,
    filters: SessionFilter,
    *,
    max_sessions: int = MAX_ALERT_SESSIONS,
) -> AlertReport:
    """Alerts of every session the filters select; RangeTooWide past ``max_sessions`` sessions."""
    sessions = _session_filters(
        scoped(select(CLASS_SESSION.c.id), viewer, CLASS_SESSION.c.course_id), filters
    )
    with engine.connect() as connection:
        n_sessions = connection.execute(select(func.count()).select_from(sessions.subquery())).scalar_one()
        if n_sessions > max_sessions:
            raise RangeTooWide(
                f"These filters select {n_sessions} sessions; alerts are computed for at most {max_sessions} "
                "at a time. Narrow the dates, or choose a classroom or course."
            )
        if n_sessions == 0:
            return AlertReport([], 0)
        models = connection.execute(
            select(CLASS_SESSION.c.model_version, CLASS_SESSION.c.model_trained)
            .where(CLASS_SESSION.c.id.in_(sessions))
            .distinct()
        ).all()
        return AlertReport(
            _alerts_for(connection, mapping, sessions), int(n_sessions), {(v, bool(t)) for v, t in models}
        )


def latest_day(engine: Engine, viewer: Viewer, *, timezone: str = "UTC") -> date | None:
    """The calendar day of the viewer's most recent session (alerts default to it)."""
    with engine.connect() as connection:
        value = connection.execute(
            scoped(select(func.max(CLASS_SESSION.c.started_at)), viewer, CLASS_SESSION.c.course_id)
        ).scalar()
    return None if value is None else _aware(value).astimezone(ZoneInfo(timezone)).date()
