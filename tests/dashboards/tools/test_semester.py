"""The semester generator: its plan, determinism, and aggregates that add up to its events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from dashboards import queries
from dashboards.auth import Role, Viewer
from dashboards.database import open_engine
from dashboards.tools.semester import (
    SYNTHETIC_MODEL_VERSION,
    SemesterPlan,
    build_campus,
    generate_semester,
    planned_sessions,
    session_events,
)
from services.common.db.models import SECONDS_COLUMNS, BehaviourEvent, StudentSessionSummary
from services.common.engagement import EngagementMapping
from tests.dashboards.conftest import open_app
from tests.dashboards.test_app import shown

TINY = SemesterPlan(
    rooms=2, weeks=1, days_per_week=2, slots_per_day=2, students_min=5, students_max=8, population=40
)


def test_the_default_plan_is_the_benchmarks_semester():
    plan = SemesterPlan()
    assert plan.n_sessions == 50 * 4 * 5 * 15 == 15_000
    campus = build_campus(plan)
    assert len(campus.classrooms) == 50
    assert len(campus.courses) == 50 * 12  # per room: 4 slots x (Mon/Wed, Tue/Thu, Fri)
    assert all(20 <= len(c.roster) <= 40 for c in campus.courses)


def test_each_slot_of_the_week_belongs_to_exactly_one_course():
    plan = SemesterPlan(rooms=3, weeks=2)
    sessions = planned_sessions(plan, build_campus(plan))
    assert len(sessions) == plan.n_sessions == len({s.session_id for s in sessions})
    by_course = Counter(s.course_id for s in sessions)
    assert sorted(set(by_course.values())) == [2, 4]  # Friday courses meet once a week, the others twice
    first = sessions[0]
    assert (first.started_at, first.classroom_id) == (datetime(2025, 9, 1, 8, 0, tzinfo=UTC), "room-01")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"students_max": 41}, "students_max"),
        ({"students_min": 30, "students_max": 20}, "students_min"),
        ({"slots_per_day": 7}, "slots_per_day"),
        ({"segment_seconds": 1}, "segment_seconds"),
        ({"population": 10}, "population"),
    ],
)
def test_impossible_plans_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        SemesterPlan(**change)


def test_events_are_deterministic_and_well_formed():
    campus = build_campus(TINY)
    planned = planned_sessions(TINY, campus)[0]
    first, again = session_events(TINY, campus, planned), session_events(TINY, campus, planned)
    assert [e.model_dump() for e in first] == [e.model_dump() for e in again]
    assert len({e.event_id for e in first}) == len(first)
    roster = {r.student for r in campus.course(planned.course_id).roster}  # type: ignore[union-attr]
    assert {e.student_id for e in first} <= roster
    for event in first:
        assert (event.segment_end - event.segment_start).total_seconds() == pytest.approx(
            TINY.segment_seconds, abs=0.002
        )
        assert planned.started_at <= event.segment_start and event.model_trained is False
        assert event.model_version == SYNTHETIC_MODEL_VERSION


def test_a_camera_gap_removes_every_students_events_for_its_minutes():
    plan = SemesterPlan(
        rooms=1,
        weeks=1,
        days_per_week=1,
        slots_per_day=1,
        camera_gap_rate=1.0,
        students_min=10,
        students_max=10,
        population=20,
    )
    campus = build_campus(plan)
    events = session_events(plan, campus, planned_sessions(plan, campus)[0])
    minutes = sorted({e.segment_start.replace(second=0, microsecond=0) for e in events})
    gaps = queries.find_gaps(minutes)
    assert len(gaps) == 1 and 2 <= gaps[0].minutes <= 9


def test_generated_aggregates_add_up_to_the_generated_events(tmp_path):
    url = f"sqlite:///{tmp_path / 'semester.db'}"
    report = generate_semester(url, TINY)
    assert report.sessions_written == TINY.n_sessions == 8
    engine = open_engine(url)
    with engine.connect() as connection:
        n_events = connection.execute(select(func.count()).select_from(BehaviourEvent)).scalar_one()
        assert n_events == report.events
        seconds = defaultdict(float)
        for row in connection.execute(
            select(BehaviourEvent.label, BehaviourEvent.segment_start, BehaviourEvent.segment_end)
        ):
            seconds[f"s_{row.label}"] += (row.segment_end - row.segment_start).total_seconds()
        summed = connection.execute(
            select(*(func.sum(getattr(StudentSessionSummary, c)) for c in SECONDS_COLUMNS))
        ).one()
    assert dict(zip(SECONDS_COLUMNS, summed, strict=True)) == pytest.approx(
        {c: seconds[c] for c in SECONDS_COLUMNS}
    )
    # a second run finds every session present and writes nothing
    again = generate_semester(url, TINY)
    assert (again.sessions_written, again.sessions_skipped, again.events) == (0, 8, 0)
    engine.dispose()


@pytest.mark.slow
def test_two_workers_write_the_same_database_as_one(tmp_path):
    one, two = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
    generate_semester(one, TINY, workers=1)
    generate_semester(two, TINY, workers=2)
    mapping, admin = EngagementMapping(), Viewer("x", Role.ADMIN)
    pages = []
    for url in (one, two):
        engine = open_engine(url)
        pages.append(queries.list_sessions(engine, admin, mapping, queries.SessionFilter()).rows)
        engine.dispose()
    assert pages[0] == pages[1] and len(pages[0]) == 8


def test_the_dashboard_says_generated_data_is_synthetic(tmp_path):
    from dashboards.auth import add_user

    url = f"sqlite:///{tmp_path / 'semester.db'}"
    generate_semester(url, TINY, limit_sessions=2)
    engine = open_engine(url)
    add_user(engine, "root", "correct-horse-1", Role.ADMIN)
    engine.dispose()
    app = open_app(url, user="root").run()
    assert any("Synthetic data (synthetic/semester-v1)" in shown(w.value) for w in app.warning)
    assert not [
        e for e in app.error if "Untrained" in shown(e.value)
    ]  # synthetic is said as such, not as untrained
    assert app.dataframe[0].value["start"].min().date() == date(2025, 9, 1)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.integration
def test_postgresql_gets_the_same_aggregates_as_sqlite(tmp_path, postgres_schema_url):
    sqlite_url = f"sqlite:///{tmp_path / 'semester.db'}"
    generate_semester(sqlite_url, TINY, limit_sessions=3)
    generate_semester(postgres_schema_url, TINY, limit_sessions=3, workers=2)
    mapping, admin = EngagementMapping(), Viewer("x", Role.ADMIN)
    results = []
    for url in (sqlite_url, postgres_schema_url):
        engine = open_engine(url)
        rows = queries.list_sessions(engine, admin, mapping, queries.SessionFilter()).rows
        detail = [queries.student_table(engine, admin, mapping, r.session_id) for r in rows]
        alerts = queries.alerts_in_range(engine, admin, mapping, queries.SessionFilter()).alerts
        results.append((rows, detail, alerts))
        engine.dispose()
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]
    assert results[0][2] == results[1][2]


def _dump_store_tables(url: str) -> dict[str, list[tuple]]:
    """Every row of the tables a semester writes, in primary-key order."""
    engine = open_engine(url)
    with engine.connect() as connection:
        dump = {
            table.name: [
                tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in (
                queries.CLASS_SESSION,
                queries.SUMMARY,
                queries.SESSION_MINUTE,
                queries.STUDENT_MINUTE,
                queries.EVENT,
            )
        }
    engine.dispose()
    return dump


def test_the_bulk_writer_writes_exactly_what_record_events_writes(tmp_path):
    store_url, bulk_url = f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 'bulk.db'}"
    by_store = generate_semester(store_url, TINY, writer="store")
    # half the sessions through the store first, then the bulk writer resumes with the rest
    generate_semester(bulk_url, TINY, writer="store", limit_sessions=3)
    by_bulk = generate_semester(bulk_url, TINY, writer="bulk")
    assert (by_bulk.sessions_written, by_bulk.sessions_skipped) == (5, 3)
    expected, written = _dump_store_tables(store_url), _dump_store_tables(bulk_url)
    assert by_store.events == len(expected["behaviour_event"]) > 100
    assert {name: len(rows) for name, rows in written.items()} == {
        name: len(rows) for name, rows in expected.items()
    }
    for name in expected:
        assert written[name] == expected[name], name  # exactly equal, floats included


def test_the_bulk_writer_refuses_events_that_are_already_stored(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from dashboards.tools.semester import session_records, write_bulk

    url = f"sqlite:///{tmp_path / 'semester.db'}"
    campus = build_campus(TINY)
    first, second = planned_sessions(TINY, campus)[:2]
    engine = open_engine(url)
    write_bulk(engine, session_records(TINY, campus, first))
    before = _dump_store_tables(url)
    with pytest.raises(IntegrityError):
        # the second session is new, the first one's events are not: nothing of the batch is kept
        write_bulk(engine, session_records(TINY, campus, second) + session_records(TINY, campus, first))
    engine.dispose()
    assert _dump_store_tables(url) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"writer": "fast"}, "writer must be one of bulk, store"),
        ({"workers": 0}, "workers"),
        ({"limit_sessions": -1}, "limit_sessions"),
    ],
)
def test_bad_generation_options_are_refused(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        generate_semester(f"sqlite:///{tmp_path / 'semester.db'}", TINY, **options)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.integration
def test_the_bulk_writer_matches_record_events_on_postgresql(postgres_schema_url):
    from sqlalchemy import text

    generate_semester(postgres_schema_url, TINY, writer="store", limit_sessions=4)
    expected = _dump_store_tables(postgres_schema_url)
    engine = open_engine(postgres_schema_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE " + ", ".join(expected)))
    engine.dispose()
    report = generate_semester(postgres_schema_url, TINY, writer="bulk", limit_sessions=4, workers=2)
    assert report.sessions_written == 4
    written = _dump_store_tables(postgres_schema_url)
    assert len(written["behaviour_event"]) == report.events > 100
    for name in expected:
        assert written[name] == expected[name], name


@pytest.mark.postgres
@pytest.mark.integration
def test_copy_keeps_tabs_newlines_and_backslashes(postgres_schema_url):
    from dashboards.tools.semester import session_records, write_bulk

    campus = build_campus(TINY)
    record = session_records(TINY, campus, planned_sessions(TINY, campus)[0])[0]
    awkward = record._replace(attention='{"note": "a\tb\\\\n\nc\r"}', seat_id="back\\slash")
    engine = open_engine(postgres_schema_url)
    assert write_bulk(engine, [awkward]) == 1
    with engine.connect() as connection:
        stored = connection.execute(select(BehaviourEvent.attention, BehaviourEvent.seat_id)).one()
        seats = connection.execute(select(StudentSessionSummary.seat_id)).scalars().all()
    engine.dispose()
    assert tuple(stored) == (awkward.attention, "back\\slash") and seats == ["back\\slash"]


def _proc(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive_children(pid: int) -> set[int]:
    """Children of ``pid`` that are running (not zombies), from /proc (Linux)."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _proc(int(entry), "stat").rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry))
    return found


@pytest.mark.slow
def test_sigterm_stops_the_generator_and_its_workers(tmp_path):
    database = f"sqlite:///{tmp_path / 'sem.db'}"
    command = [sys.executable, "-m", "services.cli.main", "dashboard", "--database-url", database]
    process = subprocess.Popen(
        [*command, "generate-semester", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        workers = {p for p in _alive_children(process.pid) if "spawn_main" in _proc(p, "cmdline")}
        time.sleep(0.2)
    assert len(workers) == 2, "the generator did not start its two workers"
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) != 0
    time.sleep(1.0)
    left = [p for p in workers if _proc(p, "stat") and _proc(p, "stat").rsplit(")", 1)[-1].split()[0] != "Z"]
    assert not left, f"workers left running after SIGTERM: {left}"
