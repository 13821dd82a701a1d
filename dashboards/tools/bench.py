"""Page render times of the dashboard on a database (``classroom dashboard bench``).

How it measures: Streamlit's AppTest runs dashboards/app.py in this process exactly as the
server would for one browser session (settings, login check, queries, charts and tables
serialised into Streamlit's messages); the time of ``AppTest.run()`` is the page's render
time on the server. The browser's own drawing is not included. Each page is run once to
warm the caches the server keeps between requests (the engine, the mapping), then
``repeats`` more times; the median is printed, with the minimum and maximum.

Besides one page of each kind, the alerts page is timed on the widest date range it still
answers (MAX_ALERT_SESSIONS sessions): its heaviest request.

The pages are timed as an administrator (every classroom) and, when an instructor is
named or found in ``courseinstructor``, as that instructor (their courses only). The
benchmark creates a temporary user for each role it logs in as and removes it after.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, true
from sqlalchemy.engine import Engine

from dashboards.auth import LoginSession, Role, add_user, remove_user
from dashboards.config import DashboardSettings
from dashboards.database import open_engine
from dashboards.queries import (
    CLASS_SESSION,
    COURSE_INSTRUCTOR,
    MAX_ALERT_SESSIONS,
    SUMMARY,
    latest_day,
)
from services.common.db import as_utc

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"  # dashboards/app.py


@dataclass(frozen=True)
class PageCase:
    name: str
    route: dict[str, str]
    state: dict[str, object]  # widget values set before the run (filters)


@dataclass(frozen=True)
class PageTiming:
    case: str
    role: str
    median_s: float
    min_s: float
    max_s: float
    runs: int
    problems: tuple[str, ...]  # error messages the page showed (a benchmark of an error page is no benchmark)


def _typical_session(engine: Engine, course_ids: list[str] | None) -> str | None:
    """A session with the median number of students, among the latest 200 (of the courses given)."""
    statement = (
        select(SUMMARY.c.session_id, func.count().label("n"))
        .where(
            SUMMARY.c.session_id.in_(
                select(CLASS_SESSION.c.id)
                .where(CLASS_SESSION.c.course_id.in_(course_ids) if course_ids is not None else true())
                .order_by(CLASS_SESSION.c.started_at.desc())
                .limit(200)
            )
        )
        .group_by(SUMMARY.c.session_id)
        .order_by("n", SUMMARY.c.session_id)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return rows[len(rows) // 2].session_id if rows else None


def _busy_student(engine: Engine, session_id: str) -> str | None:
    """The student of ``session_id`` seen in the most sessions (the heaviest student page)."""
    with engine.connect() as connection:
        students = select(SUMMARY.c.student_id).where(SUMMARY.c.session_id == session_id)
        row = connection.execute(
            select(SUMMARY.c.student_id, func.count().label("n"))
            .where(SUMMARY.c.student_id.in_(students))
            .group_by(SUMMARY.c.student_id)
            .order_by(func.count().desc(), SUMMARY.c.student_id)
            .limit(1)
        ).first()
    return None if row is None else row.student_id


def _busiest_instructor(engine: Engine) -> str | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(COURSE_INSTRUCTOR.c.username, func.count().label("n"))
            .group_by(COURSE_INSTRUCTOR.c.username)
            .order_by(func.count().desc(), COURSE_INSTRUCTOR.c.username)
            .limit(1)
        ).first()
    return None if row is None else row.username


def _courses_of(engine: Engine, username: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(COURSE_INSTRUCTOR.c.course_id).where(COURSE_INSTRUCTOR.c.username == username)
            ).scalars()
        )


def _widest_alert_days(
    engine: Engine, course_ids: list[str] | None, timezone: str
) -> tuple[date, date, int] | None:
    """The most days, ending on the latest, whose sessions the alerts page still accepts; (first, last, sessions).

    The alerts page refuses ranges of more than MAX_ALERT_SESSIONS sessions, so this is the
    heaviest request it answers. Days are calendar days in the display time zone, as the page counts them.
    """
    zone = ZoneInfo(timezone)
    with engine.connect() as connection:
        starts = connection.execute(
            select(CLASS_SESSION.c.started_at).where(
                CLASS_SESSION.c.course_id.in_(course_ids) if course_ids is not None else true()
            )
        ).scalars()
        per_day = Counter(as_utc(s).astimezone(zone).date() for s in starts)
    days = sorted(per_day, reverse=True)
    first, sessions = None, 0
    for day in days:
        if sessions + per_day[day] > MAX_ALERT_SESSIONS:
            break
        first, sessions = day, sessions + per_day[day]
    return None if first is None else (first, days[0], sessions)


def page_cases(engine: Engine, *, course_ids: list[str] | None) -> list[PageCase]:
    """The pages to time, on data picked from the database (a typical session, a busy student)."""
    session_id = _typical_session(engine, course_ids)
    student_id = _busy_student(engine, session_id) if session_id else None
    with engine.connect() as connection:
        some_course = connection.execute(
            select(CLASS_SESSION.c.course_id)
            .where(CLASS_SESSION.c.course_id.in_(course_ids) if course_ids is not None else true())
            .limit(1)
        ).scalar()
    cases = [
        PageCase("sessions (all, page 1)", {"page": "sessions"}, {}),
        PageCase("sessions (one course)", {"page": "sessions"}, {"sessions_course": some_course}),
        PageCase("alerts (latest day)", {"page": "alerts"}, {}),
    ]
    widest = _widest_alert_days(engine, course_ids, DashboardSettings().display_timezone)
    if widest is not None:
        first, last, sessions = widest
        cases.append(
            PageCase(
                f"alerts (widest, {sessions} sessions)", {"page": "alerts"}, {"alerts_dates": (first, last)}
            )
        )
    if session_id:
        cases.insert(2, PageCase("one session", {"page": "session", "session": session_id}, {}))
    if student_id:
        cases.insert(3, PageCase("one student", {"page": "student", "student": student_id}, {}))
    return cases


@contextmanager
def _temporary_user(engine: Engine, username: str, role: Role) -> Iterator[str]:
    """Log in as ``username``: create it for the run unless it exists (then leave it as it is)."""
    from dashboards.auth import current_viewer

    existed = current_viewer(engine, username) is not None
    if not existed:
        add_user(engine, username, secrets.token_urlsafe(16), role)
    try:
        yield username
    finally:
        if not existed:
            remove_user(engine, username)


def _time_case(
    database_url: str, username: str, case: PageCase, repeats: int
) -> tuple[list[float], tuple[str, ...]]:
    from streamlit.testing.v1 import AppTest

    os.environ["DASHBOARD_DATABASE_URL"] = database_url
    times: list[float] = []
    problems: tuple[str, ...] = ()
    for attempt in range(repeats + 1):
        app = AppTest.from_file(str(APP_PATH), default_timeout=120)
        now = datetime.now(UTC)
        app.session_state["login"] = LoginSession(username, now, now)
        app.session_state["route"] = dict(case.route)
        app.session_state["nav_page"] = case.route["page"]
        for key, value in case.state.items():
            app.session_state[key] = value
        started = time.perf_counter()
        app.run()
        elapsed = time.perf_counter() - started
        problems = (
            tuple(e.value for e in app.error)
            + tuple(str(e.value) for e in app.exception)
            # a range the alerts page refused (queries.RangeTooWide) was not rendered, so not timed
            + tuple(w.value for w in app.warning if "alerts are computed for at most" in w.value)
        )
        if attempt:  # the first run warms the process-wide caches (engine, mapping), like a running server
            times.append(elapsed)
    return times, problems


def measure_pages(database_url: str, *, repeats: int = 5, instructor: str | None = None) -> list[PageTiming]:
    engine = open_engine(database_url)
    timings = []
    roles: list[tuple[str, Role, list[str] | None]] = [("bench-admin", Role.ADMIN, None)]
    instructor = instructor or _busiest_instructor(engine)
    if instructor:
        roles.append((instructor, Role.INSTRUCTOR, _courses_of(engine, instructor)))
    for username, role, course_ids in roles:
        with _temporary_user(engine, username, role):
            for case in page_cases(engine, course_ids=course_ids):
                times, problems = _time_case(database_url, username, case, repeats)
                timings.append(
                    PageTiming(
                        case=case.name,
                        role=f"{role.value} {username}",
                        median_s=statistics.median(times),
                        min_s=min(times),
                        max_s=max(times),
                        runs=len(times),
                        problems=problems,
                    )
                )
    engine.dispose()
    return timings


def database_size(engine: Engine) -> dict[str, int]:
    """Row counts of the tables the pages read (printed next to the timings)."""
    from dashboards.queries import SESSION_MINUTE, STUDENT_MINUTE

    with engine.connect() as connection:
        return {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (CLASS_SESSION, SUMMARY, SESSION_MINUTE, STUDENT_MINUTE)
        }


def print_benchmark(database_url: str, *, repeats: int = 5, instructor: str | None = None) -> int:
    from sqlalchemy.engine import make_url

    engine = open_engine(database_url)
    sizes = database_size(engine)
    day = latest_day(engine, _admin())
    engine.dispose()
    print(
        "dashboard page render times (AppTest.run of dashboards/app.py, server side; "
        f"median of {repeats} runs after 1 warm-up)"
    )
    print(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
    print("rows: " + ", ".join(f"{name} {count:,}" for name, count in sizes.items()) + f"; latest day {day}")
    timings = measure_pages(database_url, repeats=repeats, instructor=instructor)
    width = max(len(t.case) for t in timings)
    worst = 0.0
    for t in timings:
        worst = max(worst, t.median_s)
        note = f"  PAGE SHOWED AN ERROR: {t.problems[0]}" if t.problems else ""
        spread = f"(min {t.min_s:.3f}, max {t.max_s:.3f})"
        print(f"  {t.role:<28} {t.case:<{width}}  median {t.median_s:6.3f} s  {spread}{note}")
    print(f"slowest page median: {worst:.3f} s (target <= 2 s)")
    return 1 if any(t.problems for t in timings) else 0


def _admin():  # type: ignore[no-untyped-def]
    from dashboards.auth import Viewer

    return Viewer("bench-admin", Role.ADMIN)
