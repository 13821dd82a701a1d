"""A small database whose every number is computed by hand, and helpers to open the app on it.

Classroom room-a; course MATH (instructor ines) and PHYS (instructor paul); users root
(admin), ines and paul. Events are 60 s segments aligned on minutes, written through the
store's record_events so the aggregates are the store's own.

s-math-1 (MATH, Mon 3 Mar 2025 09:00 UTC, model v1 trained), 10 minutes:
  alice: listening 4, hand raising 1, note taking 1, phone 2, chin resting 2
         engagement (4+1+1+0+2*0.3)/10 = 0.66; engaged share 6/10 = 0.6; 1 hand raise; phone 2 min
  bob:   phone 6, side conversation 1, hand raising 1, upright 1, hand raising 1
         engagement (0+0.1+1+0.6+1)/10 = 0.27; engaged share 3/10 = 0.3; 2 hand raises; phone 6 min
         alert: 09:00-09:07 (7 low minutes, mean (6*0 + 0.1)/7)
  class per minute: 0.5 x6, 0.05, 0.5, 0.45, 0.65 (no class alert); mean engagement (0.66+0.27)/2
s-phys-1 (PHYS, Tue 4 Mar 09:00, trained): carol listening 6 -> engagement 1.0
s-math-2 (MATH, Wed 5 Mar 09:00, model v0-untrained, untrained): alice phone 6, dave chin 6,
  nothing 09:06-09:09 (a camera gap), then both listening 3.
  class alert 09:00-09:06 at 0.15; student alerts alice (0.0) and dave (0.3), 6 min each.

Every event has confidence 0.9 except LOW_CONFIDENCE's, 0.3 (below the default threshold 0.5):
  s-math-1: bob's 6 phone minutes -> bob 6 of 10 (60 %, mostly low), the session 6 of 20 (30 %),
            bob's alert 09:00-09:07 6 of its 7 events (86 %)
  s-phys-1: all 6 of carol's -> the session 100 %
  s-math-2: none
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dashboards.auth import LoginSession, Role, add_user
from dashboards.database import open_engine
from services.common.campus import Camera, Campus, Classroom, Course, RosterEntry, Seat
from services.common.db.crud import record_events, sync_campus
from services.common.db.models import BehaviourEvent
from tests.fixtures import postgres_schema_url  # noqa: F401  (fixture)

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PASSWORD = "correct-horse-1"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

SCRIPTS: dict[tuple[str, str], list[tuple[str | None, int]]] = {  # None: a minute without events
    ("s-math-1", "alice"): [
        ("attentive_listening", 4),
        ("hand_raising", 1),
        ("note_taking", 1),
        ("phone_usage", 2),
        ("chin_resting", 2),
    ],
    ("s-math-1", "bob"): [
        ("phone_usage", 6),
        ("side_conversation", 1),
        ("hand_raising", 1),
        ("upright_sitting", 1),
        ("hand_raising", 1),
    ],
    ("s-phys-1", "carol"): [("attentive_listening", 6)],
    ("s-math-2", "alice"): [("phone_usage", 6), (None, 3), ("attentive_listening", 3)],
    ("s-math-2", "dave"): [("chin_resting", 6), (None, 3), ("attentive_listening", 3)],
}
LOW_CONFIDENCE = {("s-math-1", "bob", "phone_usage"), ("s-phys-1", "carol", "attentive_listening")}
SESSIONS = {
    "s-math-1": ("MATH", T0, "v1", True),
    "s-phys-1": ("PHYS", T0 + timedelta(days=1), "v1", True),
    "s-math-2": ("MATH", T0 + timedelta(days=2), "v0-untrained", False),
}


def campus() -> Campus:
    seats = tuple(Seat(id=f"A{i}", box=(i * 10.0, 0.0, i * 10.0 + 9, 9.0)) for i in range(1, 5))
    return Campus(
        classrooms=(
            Classroom(
                id="room-a", name="Room A", building="North", cameras=(Camera(id="front", seats=seats),)
            ),
        ),
        courses=(
            Course(
                id="MATH",
                name="Calculus",
                classroom="room-a",
                instructors=("ines",),
                roster=(
                    RosterEntry(student="alice", seat="A1"),
                    RosterEntry(student="bob", seat="A2"),
                    RosterEntry(student="dave", seat="A4"),
                ),
            ),
            Course(
                id="PHYS",
                name="Mechanics",
                classroom="room-a",
                instructors=("paul",),
                roster=(RosterEntry(student="carol", seat="A3"),),
            ),
        ),
    )


def scripted_events() -> list[BehaviourEvent]:
    events = []
    seat = {"alice": "A1", "bob": "A2", "carol": "A3", "dave": "A4"}
    for (session_id, student), script in SCRIPTS.items():
        course, start, version, trained = SESSIONS[session_id]
        minute = 0
        for label, minutes in script:
            confidence = 0.3 if (session_id, student, label) in LOW_CONFIDENCE else 0.9
            for _ in range(minutes):
                if label is not None:
                    begin = start + timedelta(minutes=minute)
                    end = begin + timedelta(minutes=1)
                    events.append(
                        BehaviourEvent(
                            event_id=f"{session_id}:{student}:{minute}",
                            created_at=end,
                            session_id=session_id,
                            classroom_id="room-a",
                            course_id=course,
                            camera_id="front",
                            student_id=student,
                            seat_id=seat[student],
                            window_start=begin,
                            window_end=end,
                            segment_start=begin,
                            segment_end=end,
                            label=label,
                            confidence=confidence,
                            top5=f'[["{label}", {confidence}]]',
                            attention="{}",
                            model_version=version,
                            model_trained=trained,
                        )
                    )
                minute += 1
    return events


def build_database(url: str) -> Engine:
    engine = open_engine(url)
    with Session(engine) as session:
        sync_campus(session=session, campus=campus())
        record_events(session=session, events=scripted_events())
        session.commit()
    add_user(engine, "root", PASSWORD, Role.ADMIN)
    add_user(engine, "ines", PASSWORD, Role.INSTRUCTOR)
    add_user(engine, "paul", PASSWORD, Role.INSTRUCTOR)
    return engine


@pytest.fixture(scope="session")
def hand_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    """The hand-computed database (shared by every test that only reads it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'hand.db'}"
    engine = build_database(url)
    yield url, engine
    engine.dispose()


@pytest.fixture()
def fresh_db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """The same data in a database of this test's own (for tests that write: users, failed logins)."""
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    engine = build_database(url)
    yield url, engine
    engine.dispose()


def open_app(
    url: str,
    *,
    user: str | None = None,
    route: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    state: dict[str, object] | None = None,
):  # type: ignore[no-untyped-def]
    """An AppTest of dashboards/app.py on ``url``, logged in as ``user`` (not yet run)."""
    from streamlit.testing.v1 import AppTest

    os.environ["DASHBOARD_DATABASE_URL"] = url
    app = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        now = datetime.now(UTC)
        app.session_state["login"] = LoginSession(user, now, now)
    if route is not None:
        app.session_state["route"] = route
        app.session_state["nav_page"] = route["page"]
    for key, value in (query or {}).items():
        app.query_params[key] = value
    for key, value in (state or {}).items():
        app.session_state[key] = value
    return app


@pytest.fixture(autouse=True)
def _restore_dashboard_env() -> Iterator[None]:
    before = {k: v for k, v in os.environ.items() if k.startswith("DASHBOARD_")}
    yield
    for key in [k for k in os.environ if k.startswith("DASHBOARD_")]:
        del os.environ[key]
    os.environ.update(before)
