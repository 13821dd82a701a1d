"""The query layer against hand-computed numbers (tests/dashboards/conftest.py explains each one)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from dashboards import queries
from dashboards.auth import Role, Viewer
from services.common.engagement import EngagementMapping
from tests.dashboards.conftest import T0

ADMIN = Viewer("root", Role.ADMIN)
INES = Viewer("ines", Role.INSTRUCTOR)  # MATH
PAUL = Viewer("paul", Role.INSTRUCTOR)  # PHYS
NOBODY = Viewer("nobody", Role.INSTRUCTOR)  # teaches nothing
MAPPING = EngagementMapping()


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def test_sessions_list_counts_students_and_means_engagement(hand_db):
    _, engine = hand_db
    page = queries.list_sessions(engine, ADMIN, MAPPING, queries.SessionFilter())
    assert page.total == 3
    assert [r.session_id for r in page.rows] == ["s-math-2", "s-phys-1", "s-math-1"]  # most recent first
    math1 = page.rows[2]
    assert math1.students_present == 2
    assert math1.mean_engagement == pytest.approx((0.66 + 0.27) / 2)
    assert (math1.classroom_name, math1.course_name) == ("Room A", "Calculus")
    assert page.rows[1].mean_engagement == pytest.approx(1.0)
    # s-math-2: alice (6 phone, 3 listening) 3/9, dave (6 chin, 3 listening) (1.8+3)/9
    assert page.rows[0].mean_engagement == pytest.approx((3 / 9 + 4.8 / 9) / 2)
    assert page.rows[0].model_trained is False


def test_session_filters_and_paging(hand_db):
    _, engine = hand_db
    by_course = queries.list_sessions(engine, ADMIN, MAPPING, queries.SessionFilter(course_id="PHYS"))
    assert [r.session_id for r in by_course.rows] == ["s-phys-1"]
    one_day = queries.SessionFilter(first_day=date(2025, 3, 4), last_day=date(2025, 3, 4))
    assert [r.session_id for r in queries.list_sessions(engine, ADMIN, MAPPING, one_day).rows] == ["s-phys-1"]
    # days are calendar days of the display time zone: 09:00 UTC on 4 March is still 4 March in Tokyo (18:00)
    tokyo = queries.SessionFilter(
        first_day=date(2025, 3, 4), last_day=date(2025, 3, 4), timezone="Asia/Tokyo"
    )
    assert [r.session_id for r in queries.list_sessions(engine, ADMIN, MAPPING, tokyo).rows] == ["s-phys-1"]
    second_page = queries.list_sessions(engine, ADMIN, MAPPING, queries.SessionFilter(), limit=2, offset=2)
    assert (second_page.total, [r.session_id for r in second_page.rows]) == (3, ["s-math-1"])
    empty = queries.list_sessions(engine, ADMIN, MAPPING, queries.SessionFilter(classroom_id="room-z"))
    assert (empty.total, empty.rows) == (0, [])


def test_instructors_see_only_their_courses(hand_db):
    _, engine = hand_db
    assert [
        r.session_id for r in queries.list_sessions(engine, INES, MAPPING, queries.SessionFilter()).rows
    ] == [
        "s-math-2",
        "s-math-1",
    ]
    # a filter naming another course does not widen the scope
    assert queries.list_sessions(engine, INES, MAPPING, queries.SessionFilter(course_id="PHYS")).total == 0
    assert queries.list_sessions(engine, NOBODY, MAPPING, queries.SessionFilter()).total == 0
    options = queries.filter_options(engine, PAUL)
    assert [c for c, _ in options.courses] == ["PHYS"]
    assert (options.first_day, options.last_day) == (date(2025, 3, 4), date(2025, 3, 4))
    assert queries.filter_options(engine, NOBODY).first_day is None


@pytest.mark.parametrize(
    "call",
    [
        lambda e, v: queries.get_session(e, v, "s-phys-1"),
        lambda e, v: queries.session_timeline(e, v, MAPPING, "s-phys-1"),
        lambda e, v: queries.student_table(e, v, MAPPING, "s-phys-1"),
        lambda e, v: queries.behaviour_minutes(e, v, "s-phys-1"),
        lambda e, v: queries.session_alerts(e, v, MAPPING, "s-phys-1"),
        lambda e, v: queries.session_models(e, v, "s-phys-1"),
        lambda e, v: queries.student_minutes(e, v, MAPPING, "s-phys-1", "carol"),
        lambda e, v: queries.session_event_spans(e, v, "s-phys-1"),
        lambda e, v: queries.event_at(e, v, "s-phys-1", "carol", T0 + timedelta(days=1)),
    ],
)
def test_another_courses_session_is_refused_by_every_session_query(hand_db, call):
    _, engine = hand_db
    with pytest.raises(queries.SessionNotAccessible, match="not one of your courses"):
        call(engine, INES)
    call(engine, PAUL)  # its own instructor may
    call(engine, ADMIN)


def test_refusal_does_not_reveal_whether_a_session_exists(hand_db):
    _, engine = hand_db
    with pytest.raises(queries.SessionNotAccessible) as missing:
        queries.get_session(engine, INES, "no-such-session")
    with pytest.raises(queries.SessionNotAccessible) as foreign:
        queries.get_session(engine, INES, "s-phys-1")
    assert str(missing.value).replace("no-such-session", "X") == str(foreign.value).replace("s-phys-1", "X")


def test_student_table_numbers(hand_db):
    _, engine = hand_db
    rows = {r.student_id: r for r in queries.student_table(engine, ADMIN, MAPPING, "s-math-1")}
    alice, bob = rows["alice"], rows["bob"]
    assert (alice.engagement, alice.engaged_share) == (pytest.approx(0.66), pytest.approx(0.6))
    assert (bob.engagement, bob.engaged_share) == (pytest.approx(0.27), pytest.approx(0.3))
    assert (alice.hand_raises, bob.hand_raises) == (1, 2)
    assert (alice.phone_minutes, bob.phone_minutes) == (pytest.approx(2.0), pytest.approx(6.0))
    assert alice.minutes["attentive_listening"] == pytest.approx(4.0)
    assert alice.observed_minutes == pytest.approx(10.0)
    assert (alice.seat_id, alice.first_seen, alice.last_seen) == ("A1", T0, T0 + timedelta(minutes=10))


def test_behaviour_minutes_sum_over_students(hand_db):
    _, engine = hand_db
    minutes = queries.behaviour_minutes(engine, ADMIN, "s-math-1")
    expected = {
        "attentive_listening": 4,
        "hand_raising": 3,
        "note_taking": 1,
        "phone_usage": 8,
        "chin_resting": 2,
    }
    expected |= {"side_conversation": 1, "upright_sitting": 1}
    assert {b: m for b, m in minutes.items() if m} == pytest.approx(expected)


def test_class_timeline_per_minute(hand_db):
    _, engine = hand_db
    timeline = queries.session_timeline(engine, ADMIN, MAPPING, "s-math-1")
    assert [p.engagement for p in timeline.points] == pytest.approx([0.5] * 6 + [0.05, 0.5, 0.45, 0.65])
    assert [p.students_seen for p in timeline.points] == pytest.approx([2.0] * 10)
    # engaged share at 09:08: alice chin resting (0.3, not engaged), bob upright (0.6, engaged)
    assert timeline.points[8].engaged_share == pytest.approx(0.5)
    assert timeline.gaps == []


def test_a_camera_gap_is_reported_with_its_window(hand_db):
    _, engine = hand_db
    timeline = queries.session_timeline(engine, ADMIN, MAPPING, "s-math-2")
    assert [(g.start, g.end, g.minutes) for g in timeline.gaps] == [(at(5, 9, 6), at(5, 9, 9), 3)]
    assert len(timeline.points) == 9


def test_find_gaps_on_hand_made_minutes():
    minutes = [at(3, 9, m) for m in (0, 1, 2, 5, 6, 9)]
    gaps = queries.find_gaps(minutes)
    assert [(g.start.minute, g.end.minute, g.minutes) for g in gaps] == [(3, 5, 2), (7, 9, 2)]
    assert queries.find_gaps([]) == []


def test_alerts_of_one_session(hand_db):
    _, engine = hand_db
    alerts = queries.session_alerts(engine, ADMIN, MAPPING, "s-math-1")
    assert len(alerts) == 1
    bob = alerts[0]
    assert (bob.kind, bob.student_id, bob.start, bob.end, bob.minutes) == (
        "student",
        "bob",
        at(3, 9, 0),
        at(3, 9, 7),
        7,
    )
    assert bob.mean_engagement == pytest.approx(0.1 / 7)

    alerts = queries.session_alerts(engine, ADMIN, MAPPING, "s-math-2")
    summary = [(a.kind, a.student_id, a.start, a.end, a.minutes, round(a.mean_engagement, 6)) for a in alerts]
    assert summary == [
        ("class", None, at(5, 9, 0), at(5, 9, 6), 6, 0.15),
        ("student", "alice", at(5, 9, 0), at(5, 9, 6), 6, 0.0),
        ("student", "dave", at(5, 9, 0), at(5, 9, 6), 6, 0.3),
    ]


def test_alert_settings_come_from_the_mapping(hand_db):
    _, engine = hand_db
    # with 8-minute alerts bob's 7 low minutes are no longer an alert
    assert (
        queries.session_alerts(engine, ADMIN, MAPPING.model_copy(update={"alert_minutes": 8}), "s-math-1")
        == []
    )
    # below 0.25 instead of 0.4: dave's chin resting (0.3) no longer alerts, alice's phone (0.0) still does
    stricter = MAPPING.model_copy(update={"alert_below": 0.25})
    assert [(a.kind, a.student_id) for a in queries.session_alerts(engine, ADMIN, stricter, "s-math-2")] == [
        ("class", None),
        ("student", "alice"),
    ]


def test_alerts_in_a_date_range_are_scoped_and_bounded(hand_db):
    _, engine = hand_db
    everything = queries.alerts_in_range(engine, ADMIN, MAPPING, queries.SessionFilter())
    assert everything.sessions_checked == 3
    assert [(a.session_id, a.student_id) for a in everything.alerts] == [
        ("s-math-1", "bob"),
        ("s-math-2", None),
        ("s-math-2", "alice"),
        ("s-math-2", "dave"),
    ]
    assert everything.alerts[1].course_id == "MATH"
    assert queries.alerts_in_range(engine, PAUL, MAPPING, queries.SessionFilter()).alerts == []
    with pytest.raises(queries.RangeTooWide, match="3 sessions"):
        queries.alerts_in_range(engine, ADMIN, MAPPING, queries.SessionFilter(), max_sessions=2)


def test_alerts_are_the_same_when_read_one_session_at_a_time(hand_db, monkeypatch):
    _, engine = hand_db
    together = queries.alerts_in_range(engine, ADMIN, MAPPING, queries.SessionFilter())
    monkeypatch.setattr(queries, "ALERT_SESSIONS_PER_QUERY", 1)
    apart = queries.alerts_in_range(engine, ADMIN, MAPPING, queries.SessionFilter())
    assert apart.alerts == together.alerts and len({a.session_id for a in apart.alerts}) == 2


def test_student_across_sessions_respects_scope(hand_db):
    _, engine = hand_db
    rows = queries.student_sessions(engine, ADMIN, MAPPING, "alice")
    assert [r.session_id for r in rows] == ["s-math-1", "s-math-2"]
    assert [r.engagement for r in rows] == pytest.approx([0.66, 3 / 9])
    assert rows[1].model_trained is False
    assert queries.student_sessions(engine, PAUL, MAPPING, "alice") == []
    assert queries.course_students(engine, INES, "MATH") == ["alice", "bob", "dave"]
    assert queries.course_students(engine, INES, "PHYS") == []


def test_student_minutes_in_a_session(hand_db):
    _, engine = hand_db
    points = queries.student_minutes(engine, INES, MAPPING, "s-math-1", "bob")
    assert [p.engagement for p in points] == pytest.approx([0, 0, 0, 0, 0, 0, 0.1, 1.0, 0.6, 1.0])


def test_session_models_count_events_per_model(hand_db):
    _, engine = hand_db
    assert queries.session_models(engine, ADMIN, "s-math-2") == [queries.ModelUse("v0-untrained", False, 18)]


def test_a_different_mapping_changes_the_numbers_without_recomputation(hand_db):
    _, engine = hand_db
    weights = dict(MAPPING.weights) | {"phone_usage": 0.5}
    lenient = EngagementMapping(name="lenient", weights=weights)
    bob = {r.student_id: r for r in queries.student_table(engine, ADMIN, lenient, "s-math-1")}["bob"]
    assert bob.engagement == pytest.approx((6 * 0.5 + 0.1 + 1 + 0.6 + 1) / 10)
    assert bob.engaged_share == pytest.approx(9 / 10)  # phone now weighs 0.5 >= the 0.5 threshold


def test_minute_number_compiles_for_both_dialects():
    from dashboards.queries import SESSION_MINUTE

    statement = select(queries.minute_number(SESSION_MINUTE.c.minute))
    assert "strftime('%s', session_minute.minute)" in str(statement.compile(dialect=sqlite.dialect()))
    assert "EXTRACT(EPOCH FROM session_minute.minute)" in str(statement.compile(dialect=postgresql.dialect()))


@pytest.mark.postgres
@pytest.mark.integration
def test_the_same_numbers_on_postgresql(postgres_schema_url):
    from tests.dashboards.conftest import build_database

    engine = build_database(postgres_schema_url)
    try:
        page = queries.list_sessions(engine, ADMIN, MAPPING, queries.SessionFilter())
        assert [r.session_id for r in page.rows] == ["s-math-2", "s-phys-1", "s-math-1"]
        assert page.rows[2].mean_engagement == pytest.approx((0.66 + 0.27) / 2)
        alerts = queries.alerts_in_range(engine, INES, MAPPING, queries.SessionFilter()).alerts
        assert [(a.session_id, a.student_id, a.start, a.minutes) for a in alerts] == [
            ("s-math-1", "bob", at(3, 9, 0), 7),
            ("s-math-2", None, at(5, 9, 0), 6),
            ("s-math-2", "alice", at(5, 9, 0), 6),
            ("s-math-2", "dave", at(5, 9, 0), 6),
        ]
        timeline = queries.session_timeline(engine, ADMIN, MAPPING, "s-math-2")
        assert [(g.start, g.minutes) for g in timeline.gaps] == [(at(5, 9, 6), 3)]
        with pytest.raises(queries.SessionNotAccessible):
            queries.get_session(engine, INES, "s-phys-1")
        assert len(queries.session_event_spans(engine, ADMIN, "s-math-1")) == 20
        detail = queries.event_at(engine, ADMIN, "s-math-1", "alice", T0 + timedelta(minutes=4, seconds=30))
        assert detail is not None and (detail.label, detail.segment_start) == ("hand_raising", at(3, 9, 4))
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.integration
def test_dashboard_connections_to_postgresql_run_without_jit(postgres_schema_url):
    from sqlalchemy import text

    from dashboards.database import open_engine, postgres_schema

    engine = open_engine(postgres_schema_url)
    try:
        for _ in range(2):  # the pool's rollback between checkouts must not undo it
            with engine.connect() as connection:
                assert connection.execute(text("SHOW jit")).scalar_one() == "off"
                assert connection.execute(text("SELECT current_schema()")).scalar_one() == postgres_schema(
                    postgres_schema_url
                )
    finally:
        engine.dispose()


def test_the_event_export_of_one_session(hand_db):
    from dashboards.views.common import csv_bytes

    _, engine = hand_db
    frame = queries.session_events(engine, ADMIN, "s-math-1")
    assert len(frame) > 0 and list(frame.columns)[:6] == [
        "student",
        "seat",
        "window start (UTC)",
        "window end (UTC)",
        "behaviour",
        "confidence (0-1)",
    ]
    assert frame["confidence (0-1)"].between(0, 1).all()
    assert frame["top 5 (label:probability)"].str.contains(":").all()
    text = csv_bytes(frame).decode()
    assert text.splitlines()[0].startswith("student,seat,window start (UTC)")
    with pytest.raises(queries.SessionNotAccessible):
        queries.session_events(engine, PAUL, "s-math-1")  # another course's instructor


def test_event_spans_of_one_session(hand_db):
    _, engine = hand_db
    spans = queries.session_event_spans(engine, ADMIN, "s-math-1")
    assert len(spans) == 20  # alice 10 and bob 10 one-minute events
    alice = spans[spans["student"] == "alice"]
    assert alice["start"].iloc[0] == pd.Timestamp(T0) and alice["end"].iloc[-1] == pd.Timestamp(
        T0 + timedelta(minutes=10)
    )
    assert alice["behaviour"].tolist()[4] == "hand_raising" and set(alice["confidence"]) == {0.9}
    bob = spans[spans["student"] == "bob"]
    assert bob["confidence"].tolist() == [0.3] * 6 + [0.9] * 4  # his phone minutes are low-confidence


def test_the_event_at_a_second_explains_itself(hand_db):
    _, engine = hand_db
    detail = queries.event_at(engine, ADMIN, "s-math-1", "alice", T0 + timedelta(minutes=4, seconds=30))
    assert detail is not None
    assert (detail.label, detail.confidence, detail.top5) == ("hand_raising", 0.9, [("hand_raising", 0.9)])
    assert detail.segment_start == T0 + timedelta(minutes=4)
    assert detail.keypoint_weights == [] and detail.frame_weights == []  # the hand database stores "{}"
    assert (detail.model_version, detail.model_trained) == ("v1", True)
    assert queries.event_at(engine, ADMIN, "s-math-1", "alice", T0 + timedelta(minutes=11)) is None  # after
    assert queries.event_at(engine, ADMIN, "s-math-1", "alice", T0 - timedelta(seconds=1)) is None  # before
    # s-math-2 has a camera gap 09:06-09:09: nobody was observed then
    assert queries.event_at(engine, ADMIN, "s-math-2", "alice", T0 + timedelta(days=2, minutes=7)) is None


def test_an_event_reads_its_stored_attention():
    row = SimpleNamespace(
        student_id="alice",
        window_start=T0,
        window_end=T0 + timedelta(seconds=4),
        segment_start=T0,
        segment_end=T0 + timedelta(seconds=4),
        label="phone_usage",
        confidence=0.4,
        top5='[["phone_usage", 0.4], ["note_taking", 0.3]]',
        attention='{"keypoints": [0.5, 0.5], "frames": [0.25, 0.75], "top_keypoints": ["nose"]}',
        model_version="m@1",
        model_trained=True,
    )
    detail = queries.event_detail(row)
    assert detail.top5 == [("phone_usage", 0.4), ("note_taking", 0.3)]
    assert (detail.keypoint_weights, detail.frame_weights) == ([0.5, 0.5], [0.25, 0.75])
    broken = queries.event_detail(SimpleNamespace(**{**vars(row), "top5": "[[", "attention": "[1, 2]"}))
    assert (broken.top5, broken.keypoint_weights, broken.frame_weights) == ([], [], [])


def test_csv_neutralises_formula_cells_of_every_text_dtype():
    from dashboards.views.common import csv_bytes

    frame = pd.DataFrame({"student": pd.Series(["=1+1", "+a", "-b", "@c", "plain"], dtype="str")})
    frame["object"] = pd.Series(["=x", None, 1, "ok", "@y"], dtype=object)
    frame["number"] = [-1.5, 2.0, 3.0, 4.0, 5.0]
    lines = csv_bytes(frame).decode().splitlines()
    assert lines[1:] == [
        "'=1+1,'=x,-1.5000",
        "'+a,,2.0000",
        "'-b,1,3.0000",
        "'@c,ok,4.0000",
        "plain,'@y,5.0000",
    ]


def counts(found: dict[str, queries.ConfidenceCount]) -> dict[str, tuple[int, int]]:
    return {k: (c.low, c.events) for k, c in found.items()}


def test_low_confidence_events_per_session(hand_db):
    _, engine = hand_db
    ids = ["s-math-1", "s-phys-1", "s-math-2", "s-none"]
    found = queries.low_confidence_by_session(engine, ADMIN, ids, below=0.5)
    assert counts(found) == {"s-math-1": (6, 20), "s-phys-1": (6, 6), "s-math-2": (0, 18)}
    assert found["s-math-1"].share == pytest.approx(0.3) and queries.NO_EVENTS.share is None
    assert counts(queries.low_confidence_by_session(engine, INES, ids, below=0.5)) == {
        "s-math-1": (6, 20),
        "s-math-2": (0, 18),
    }  # s-phys-1 is not hers
    assert counts(queries.low_confidence_by_session(engine, ADMIN, ids, below=0.95))["s-math-2"] == (18, 18)
    assert queries.low_confidence_by_session(engine, ADMIN, [], below=0.5) == {}


def test_low_confidence_counts_read_id_lists_in_pieces(hand_db, monkeypatch):
    _, engine = hand_db
    ids = ["s-math-1", "s-phys-1", "s-math-2"]
    whole = queries.low_confidence_by_session(engine, ADMIN, ids, below=0.5)
    alerts = queries.alerts_in_range(engine, ADMIN, MAPPING, queries.SessionFilter()).alerts
    windows = queries.low_confidence_of_alerts(engine, ADMIN, alerts, below=0.5)
    monkeypatch.setattr(queries, "COUNTS_PER_QUERY", 1)
    assert queries.low_confidence_by_session(engine, ADMIN, ids, below=0.5) == whole
    assert queries.low_confidence_of_alerts(engine, ADMIN, alerts, below=0.5) == windows


def test_low_confidence_events_of_one_student(hand_db):
    _, engine = hand_db
    assert counts(queries.low_confidence_of_student(engine, ADMIN, "bob", below=0.5)) == {"s-math-1": (6, 10)}
    assert counts(queries.low_confidence_of_student(engine, INES, "alice", below=0.5)) == {
        "s-math-1": (0, 10),
        "s-math-2": (0, 9),
    }
    assert queries.low_confidence_of_student(engine, INES, "carol", below=0.5) == {}  # a PHYS student
    assert counts(queries.low_confidence_of_student(engine, PAUL, "carol", below=0.5)) == {"s-phys-1": (6, 6)}


def test_low_confidence_events_in_each_alerts_window(hand_db):
    _, engine = hand_db
    (bob,) = queries.session_alerts(engine, ADMIN, MAPPING, "s-math-1")
    assert bob.model_version == "v1"
    # bob 09:00-09:07: his 6 phone minutes (0.3) and one side conversation (0.9) start in it
    assert queries.low_confidence_of_alerts(engine, ADMIN, [bob], below=0.5) == [
        queries.ConfidenceCount(6, 7)
    ]
    assert queries.low_confidence_of_alerts(engine, PAUL, [bob], below=0.5) == [queries.NO_EVENTS]  # not his
    math2 = queries.session_alerts(engine, ADMIN, MAPPING, "s-math-2")
    assert [(a.kind, a.student_id, a.model_version) for a in math2] == [
        ("class", None, "v0-untrained"),
        ("student", "alice", "v0-untrained"),
        ("student", "dave", "v0-untrained"),
    ]
    # the class's window 09:00-09:06 holds both students' events; each student's only their own
    assert queries.low_confidence_of_alerts(engine, ADMIN, math2, below=0.95) == [
        queries.ConfidenceCount(12, 12),
        queries.ConfidenceCount(6, 6),
        queries.ConfidenceCount(6, 6),
    ]
    assert queries.low_confidence_of_alerts(engine, ADMIN, [], below=0.5) == []
