"""Every page of dashboards/app.py through Streamlit's AppTest, on the hand-computed database."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session

from dashboards.auth import LoginSession, Role, add_user, remove_user
from dashboards.database import open_engine
from services.common.db.crud import record_events
from services.common.db.models import BehaviourEvent
from services.common.engagement import DEFAULT_WEIGHTS, EngagementMapping
from tests.dashboards.conftest import PASSWORD, open_app

MAPPING = EngagementMapping()
PAGES = ["sessions", "session", "student", "alerts"]


def shown(markdown: object) -> str:
    """Markdown as a reader sees it: the page escapes ids and names, the reader sees them plain."""
    return re.sub(r"\\(.)", r"\1", str(markdown))


def texts(app) -> str:  # type: ignore[no-untyped-def]
    """Everything a reader sees as text: titles, markdown, captions and messages, main area and sidebar."""
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    parts = [shown(e.value) for kind in kinds for e in getattr(app, kind)]
    parts += [shown(e.value) for kind in ("markdown", "caption") for e in getattr(app.sidebar, kind)]
    return shown("\n".join(parts))


def metrics(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.label: m.value for m in app.metric}


TABLE_COLUMNS = {  # a column only that table has (AppTest finds data frames by position, not key)
    "sessions_table": "students present",
    "session_students_table": "seat",
    "session_alerts_table": "who",
    "student_sessions_table": "observed minutes",
    "alerts_table": "who",
}


def table(app, name: str):  # type: ignore[no-untyped-def]
    """The data frame of one of the page's tables."""
    column = TABLE_COLUMNS[name]
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def failures(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Error messages and exceptions, not counting the untrained-model banner (an error box on purpose)."""
    errors = [shown(e.value) for e in app.error if not shown(e.value).startswith("Untrained model")]
    return errors + [shown(e.value) for e in app.exception]


def test_login_form_then_the_sessions_page(hand_db):
    url, _ = hand_db
    app = open_app(url).run()
    assert app.title[0].value == "Classroom engagement"
    assert not app.dataframe and not app.metric  # nothing but the form before a login
    app.text_input(key="login_username").input("root")
    app.text_input(key="login_password").input(PASSWORD)
    app.button[0].click().run()
    assert failures(app) == []
    assert app.title[0].value == "Sessions"
    assert metrics(app)["Sessions matching"] == "3"
    assert app.dataframe[0].value["session"].tolist() == ["s-math-2", "s-phys-1", "s-math-1"]


def test_a_link_survives_the_login(hand_db):
    url, _ = hand_db
    app = open_app(url, query={"page": "session", "session": "s-math-1"}).run()
    app.text_input(key="login_username").input("ines")
    app.text_input(key="login_password").input(PASSWORD)
    app.button[0].click().run()
    assert failures(app) == []
    assert app.title[0].value == "One session"
    assert metrics(app)["Students present"] == "2"


def test_wrong_password_says_so_and_stays_on_the_form(fresh_db):
    url, _ = fresh_db
    app = open_app(url).run()
    app.text_input(key="login_username").input("root")
    app.text_input(key="login_password").input("wrong-password")
    app.button[0].click().run()
    assert [shown(e.value) for e in app.error] == ["Wrong username or password."]
    assert app.title[0].value == "Classroom engagement"


def test_repeated_failures_lock_the_login_form(fresh_db):
    url, _ = fresh_db
    app = open_app(url).run()
    for _ in range(5):  # the default: 5 failures per username within 15 minutes
        app.text_input(key="login_username").input("ines")
        app.text_input(key="login_password").input("guess-guess")
        app.button[0].click().run()
    app.text_input(key="login_username").input("ines")
    app.text_input(key="login_password").input(PASSWORD)
    app.button[0].click().run()
    assert "Too many failed logins" in shown(app.error[0].value)
    assert app.title[0].value == "Classroom engagement"


def test_an_old_login_expires(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root")
    issued = datetime.now(UTC) - timedelta(hours=9)
    app.session_state["login"] = LoginSession("root", issued, datetime.now(UTC))
    app.run()
    assert app.title[0].value == "Classroom engagement"
    assert "expired after 480 minutes" in shown(app.info[0].value)


def test_a_removed_user_is_logged_out(fresh_db):
    url, engine = fresh_db
    app = open_app(url, user="paul").run()
    assert app.title[0].value == "Sessions"
    remove_user(engine, "paul")
    app.run()
    assert app.title[0].value == "Classroom engagement"
    assert "no longer exists" in shown(app.info[0].value)


def test_log_out(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root").run()
    app.button(key="logout").click().run()
    assert app.title[0].value == "Classroom engagement"
    assert shown(app.info[0].value) == "You are logged out."


@pytest.mark.parametrize("page", PAGES)
def test_every_page_names_the_mapping_and_shows_no_image(hand_db, page):
    url, _ = hand_db
    route = {"page": page, "session": "s-math-1", "student": "alice"}
    app = open_app(url, user="root", route=route).run()
    assert failures(app) == []
    assert f"**{MAPPING.name}** (digest `{MAPPING.digest}`)" in texts(app)
    assert len(app.get("imgs")) == 0 and len(app.get("image")) == 0


def test_sessions_page_numbers(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root").run()
    table = app.dataframe[0].value.set_index("session")
    assert table.loc["s-math-1", "students present"] == 2
    assert table.loc["s-math-1", "mean engagement"] == pytest.approx(100 * (0.66 + 0.27) / 2)
    assert (table.loc["s-math-1", "classroom"], table.loc["s-math-1", "course"]) == ("Room A", "Calculus")
    assert table.loc["s-math-1", "minutes"] == 10
    # one untrained session is listed: the banner says so
    assert any(shown(e.value).startswith("Untrained model (v0-untrained)") for e in app.error)


def test_sessions_filter_by_course_draws_the_trend(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root").run()
    app.selectbox(key="sessions_course").select("MATH").run()
    assert app.dataframe[0].value["session"].tolist() == ["s-math-2", "s-math-1"]
    assert metrics(app)["Sessions matching"] == "2"
    assert "Engagement over the semester" in texts(app)


def test_instructor_cannot_open_another_courses_session_from_the_page(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines").run()
    assert set(app.selectbox(key="sessions_open_choice").options) == {
        app.selectbox(key="sessions_open_choice").format_func(s) for s in ("s-math-1", "s-math-2")
    }
    assert "PHYS" not in [o for o in app.selectbox(key="sessions_course").options]
    app.sidebar.radio[0].set_value("session").run()
    app.text_input(key="session_id_input").input("s-phys-1").run()
    assert "not one of your courses" in shown(app.error[0].value)
    assert not app.metric and not app.dataframe


def test_instructor_cannot_open_another_courses_session_by_url(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines", query={"page": "session", "session": "s-phys-1"}).run()
    assert [shown(e.value) for e in app.error] == [
        "Session 's-phys-1' is not one of your courses' sessions (or does not exist)."
    ]
    assert not app.metric and not app.dataframe and not app.get("arrow_vega_lite_chart")
    # its own instructor opens the same URL
    app = open_app(url, user="paul", query={"page": "session", "session": "s-phys-1"}).run()
    assert failures(app) == [] and metrics(app)["Students present"] == "1"


def test_open_a_session_from_the_list(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines").run()
    app.selectbox(key="sessions_open_choice").select("s-math-1")
    app.button(key="sessions_open").click().run()
    assert failures(app) == []
    assert app.title[0].value == "One session"
    assert app.sidebar.radio[0].value == "session"  # the page radio follows, under a new key
    app.sidebar.radio[0].set_value("alerts").run()
    assert app.title[0].value == "Alerts"
    assert dict(app.query_params)["session"] in ("s-math-1", ["s-math-1"])


def test_session_page_numbers(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1"}).run()
    assert failures(app) == []
    top = {m.label: m.value for m in app.metric[:5]}  # the class's; the student detail's follow
    assert top["Students present"] == "2"
    assert top["Mean engagement"] == "46 %"  # (0.66 + 0.27) / 2 = 0.465, shown rounded
    assert top["Class engaged share"] == "45 %"  # (6 + 3) engaged of 20 student-minutes
    assert top["Hand raises"] == "3"
    assert top["Phone minutes"] == "8"
    students = table(app, "session_students_table").set_index("student")
    assert students.loc["bob", "engagement (%)"] == pytest.approx(27.0)
    assert students.loc["bob", "engaged share (%)"] == pytest.approx(30.0)
    assert students.loc["bob", "hand raises"] == 2
    assert students.loc["bob", "phone minutes"] == pytest.approx(6.0)
    assert students.loc["alice", "attentive listening (min)"] == pytest.approx(4.0)
    assert students.loc["bob", "low-confidence events (%)"] == 60.0  # his 6 phone minutes of 10
    assert students["mostly low-confidence"].to_dict() == {"bob": True, "alice": False}
    assert "Low confidence: 6 of 20 events (30 %) in this session" in texts(app)
    assert table(app, "session_alerts_table").to_dict("records") == [
        {
            "from (UTC)": "09:00",
            "to (UTC)": "09:07",
            "minutes": 7,
            "who": "bob",
            "mean engagement (%)": 1,
            "low-confidence events (%)": 85.7,  # 6 of the 7 events that start in it
            "mostly low-confidence": True,
        }
    ]
    assert not [e for e in app.error if "Untrained" in shown(e.value)]  # a trained model: no banner


def test_session_page_student_detail_follows_the_url(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1", "student": "bob"}).run()
    detail = {m.label: m.value for m in app.metric[5:]}
    assert detail == {
        "Engagement": "27 %",
        "Engaged share": "30 %",
        "Hand raises": "2",
        "Phone minutes": "6.0",
        "Observed minutes": "10.0",
    }
    assert "Low engagement 09:00–09:07 (7 min)" in texts(app)
    app.selectbox(key="session_student_s-math-1").select("alice").run()
    assert app.metric[5].value == "66 %"
    assert dict(app.query_params)["student"] in ("alice", ["alice"])


def test_session_table_sorts(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1"}).run()
    assert table(app, "session_students_table")["student"].tolist() == ["bob", "alice"]
    app.toggle(key="session_sort_desc").set_value(True).run()
    assert table(app, "session_students_table")["student"].tolist() == ["alice", "bob"]
    app.selectbox(key="session_sort").select("hand raises").run()
    assert table(app, "session_students_table")["student"].tolist() == ["bob", "alice"]
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Download CSV (alerts)", "Download CSV (students)", "Download CSV (every event)"]


EVERY_TABLE = [  # (route, widget state): each page once with a table, and the session page with alerts
    ({"page": "sessions"}, {}),
    ({"page": "session", "session": "s-math-1"}, {}),
    ({"page": "student", "student": "alice"}, {}),
    ({"page": "alerts"}, {"alerts_dates": (date(2025, 3, 3), date(2025, 3, 5))}),
]


@pytest.mark.parametrize(("route", "state"), EVERY_TABLE)
def test_every_table_downloads(hand_db, route, state):
    url, _ = hand_db
    app = open_app(url, user="root", route=route, state=state).run()
    assert failures(app) == []
    tables = len(app.dataframe) + (route["page"] == "session")  # and the session's event export
    assert len(app.get("download_button")) == tables


def test_untrained_session_gets_the_banner_and_the_gap_is_named(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines", route={"page": "session", "session": "s-math-2"}).run()
    assert failures(app) == []
    assert any("Untrained model (v0-untrained)" in shown(e.value) for e in app.error)
    assert any("No observations from 09:06 to 09:09 (3 min)" in shown(w.value) for w in app.warning)
    alerts = table(app, "session_alerts_table")
    assert alerts["who"].tolist() == ["whole class", "alice", "dave"]


def test_student_page(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines", route={"page": "student", "student": "alice"}).run()
    assert failures(app) == []
    assert metrics(app) == {
        "Sessions": "2",
        "Mean engagement": "50 %",  # (0.66 + 3/9) / 2
        "Hand raises": "1",
        "Phone minutes": "8",
    }
    sessions = table(app, "student_sessions_table")
    assert sessions["session"].tolist() == ["s-math-1", "s-math-2"]
    assert sessions["engagement (%)"].tolist() == pytest.approx([66.0, 33.3])


def test_student_page_picks_a_student_from_a_course(hand_db):
    url, _ = hand_db
    app = open_app(url, user="ines", route={"page": "student"}).run()
    assert "Choose a course and a student" in texts(app)
    app.selectbox(key="student_course").select("MATH").run()
    assert app.selectbox(key="student_pick").options[1:] == ["alice", "bob", "dave"]
    app.selectbox(key="student_pick").select("bob").run()
    assert metrics(app)["Sessions"] == "1"


def test_student_page_of_another_course_shows_nothing(hand_db):
    url, _ = hand_db
    app = open_app(url, user="paul", route={"page": "student", "student": "alice"}).run()
    assert "was not observed in any session of your courses" in texts(app)
    assert not app.metric


def test_alerts_page_defaults_to_the_latest_day(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "alerts"}).run()
    assert failures(app) == []
    assert any(shown(e.value).startswith("Untrained model (v0-untrained)") for e in app.error)
    assert metrics(app) == {"Sessions checked": "1", "Class alerts": "1", "Student alerts": "2"}
    listed = table(app, "alerts_table")
    assert listed[["date", "from (UTC)", "to (UTC)", "minutes", "who"]].values.tolist() == [
        ["2025-03-05", "09:00", "09:06", 6, "whole class"],
        ["2025-03-05", "09:00", "09:06", 6, "alice"],
        ["2025-03-05", "09:00", "09:06", 6, "dave"],
    ]


def test_alerts_page_over_a_range_and_only_classes(hand_db):
    url, _ = hand_db
    app = open_app(
        url,
        user="root",
        route={"page": "alerts"},
        state={"alerts_dates": (date(2025, 3, 3), date(2025, 3, 5))},
    )
    app.run()
    assert metrics(app) == {"Sessions checked": "3", "Class alerts": "1", "Student alerts": "3"}
    app.radio(key="alerts_who").set_value("classes only").run()
    assert table(app, "alerts_table")["who"].tolist() == ["whole class"]
    app.button(key="alerts_open").click().run()
    assert app.title[0].value == "One session"


def test_alerts_page_for_an_instructor_without_alerts(hand_db):
    url, _ = hand_db
    app = open_app(url, user="paul", route={"page": "alerts"}).run()
    assert "No sustained low engagement" in shown(app.success[0].value)


def test_no_sessions_yet(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = open_engine(url)
    add_user(engine, "root", PASSWORD, Role.ADMIN)
    engine.dispose()
    for page in PAGES:
        app = open_app(url, user="root", route={"page": page}).run()
        assert failures(app) == [], page
    app = open_app(url, user="root").run()
    assert "No sessions yet" in shown(app.info[0].value)
    app = open_app(url, user="root", route={"page": "session", "session": "s-1"}).run()
    assert shown(app.error[0].value) == "There is no session 's-1'."


def test_database_unreachable_is_a_message_not_a_stack_trace(tmp_path):
    app = open_app("postgresql+psycopg2://nobody@127.0.0.1:9/none").run()
    assert not app.exception
    assert "cannot be reached" in shown(app.error[0].value)
    assert "nobody@127.0.0.1:9" in shown(app.error[0].value)


def test_a_database_failing_mid_flight_is_a_message(fresh_db):
    url, _ = fresh_db
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1"}).run()
    assert metrics(app)["Students present"] == "2"
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE student_session_summary")
    app.run()
    assert not app.exception
    assert "cannot be reached or read" in shown(app.error[0].value)
    assert "no such table" in shown(app.error[0].value)


def test_invalid_settings_are_a_message(hand_db):
    url, _ = hand_db
    os.environ["DASHBOARD_SESSION_TTL_MINUTES"] = "0"
    app = open_app(url).run()
    assert not app.exception
    assert "DASHBOARD_SESSION_TTL_MINUTES" in shown(app.error[0].value)


def test_a_campus_mapping_file_changes_numbers_and_name(hand_db, tmp_path: Path):
    url, _ = hand_db
    lenient = {"name": "lenient-v1", "weights": DEFAULT_WEIGHTS | {"phone_usage": 0.5}}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(lenient))
    os.environ["DASHBOARD_ENGAGEMENT_MAPPING_FILE"] = str(path)
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1", "student": "bob"}).run()
    mapping = EngagementMapping.model_validate(lenient)
    assert f"**lenient-v1** (digest `{mapping.digest}`)" in texts(app)
    assert app.metric[5].value == "57 %"  # (6*0.5 + 0.1 + 1 + 0.6 + 1) / 10


@pytest.mark.parametrize("page", ["sessions", "session", "student"])
def test_every_page_says_how_far_to_trust_its_model(hand_db, page):
    """The hand database's trained model has no evaluation: every page that shows its numbers says
    its accuracy is unknown (the alerts page does too, for a date range with sessions)."""
    url, _ = hand_db
    route = {"page": page, "session": "s-math-1", "student": "alice"}
    app = open_app(url, user="root", route=route).run()
    assert failures(app) == []
    warnings = [shown(w.value) for w in app.warning]
    assert any(w.startswith("Model ") and "how often its events are right is unknown" in w for w in warnings)


def add_live_session(  # type: ignore[no-untyped-def]
    engine, *, ago: timedelta = timedelta(0), students: tuple[str, ...] = ("erin", "frank")
) -> None:
    """Session s-live of MATH whose newest event ended ``ago``: erin (confidence 0.3) and frank (0.9),
    three 10 s events each, with top five and attention (any other student: like erin)."""
    now = datetime.now(UTC).replace(microsecond=0) - ago
    events = []
    for student in students:
        for k in range(3):
            begin = now - timedelta(seconds=30 - 10 * k)
            events.append(
                BehaviourEvent(
                    event_id=f"s-live:{student}:{k}",
                    created_at=begin + timedelta(seconds=10),
                    session_id="s-live",
                    classroom_id="room-a",
                    course_id="MATH",
                    camera_id="front",
                    student_id=student,
                    seat_id="A1",
                    window_start=begin,
                    window_end=begin + timedelta(seconds=10),
                    segment_start=begin,
                    segment_end=begin + timedelta(seconds=10),
                    label="phone_usage",
                    confidence=0.9 if student == "frank" else 0.3,
                    top5='[["phone_usage", 0.3], ["note_taking", 0.25]]',
                    attention=json.dumps(
                        {"keypoints": [0.05] * 17, "frames": [0.5, 0.5], "top_keypoints": []}
                    ),
                    model_version="v1",
                    model_trained=True,
                )
            )
    with Session(engine) as session:
        record_events(session=session, events=events)
        session.commit()


def test_a_live_session_is_marked_live_and_refreshes_by_itself(fresh_db):
    url, engine = fresh_db
    add_live_session(engine)
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    assert failures(app) == []
    assert "Live" in texts(app) and "redraws itself every 15 s" in texts(app)
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1"}).run()
    assert "Finished" in texts(app) and "redraws itself" not in texts(app)
    app = open_app(url, user="root", route={"page": "sessions"}).run()
    listed = app.dataframe[0].value.set_index("session")
    assert listed.loc["s-live", "status"] == "live" and listed.loc["s-math-1", "status"] == "finished"
    assert "1 live" in texts(app)


def test_a_session_is_live_only_within_the_configured_window(fresh_db):
    url, engine = fresh_db
    add_live_session(engine, ago=timedelta(seconds=60))
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    assert "Live" in texts(app)  # within the default 120 s
    os.environ["DASHBOARD_LIVE_WITHIN_SECONDS"] = "30"
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    assert "Finished" in texts(app)


def test_low_confidence_events_are_marked(fresh_db):
    url, engine = fresh_db
    add_live_session(engine)
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    assert "Low confidence: 3 of 6 events (50 %)" in texts(app)
    students = table(app, "session_students_table").set_index("student")
    assert students["low-confidence events (%)"].to_dict() == {"erin": 100.0, "frank": 0.0}
    os.environ["DASHBOARD_LOW_CONFIDENCE_BELOW"] = "0.95"
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    assert "Low confidence: 6 of 6 events (100 %)" in texts(app)


def test_the_student_time_view_explains_a_chosen_second(hand_db):
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "session", "session": "s-math-1"}).run()
    app.selectbox(key="grid_student_s-math-1").select("bob")
    app.slider(key="grid_second_s-math-1").set_value(datetime(2025, 3, 3, 9, 6, 30)).run()
    assert failures(app) == []
    explained = (
        "**09:06:30** · student **bob** · **side conversation**, confidence 90 % · window 09:06:00–09:07:00"
    )
    assert explained in texts(app)
    assert "No attention weights were stored with this event" in texts(app)
    assert not [w for w in app.warning if "Low confidence: the model" in shown(w.value)]


def test_the_student_time_view_shows_attention_and_low_confidence(fresh_db):
    url, engine = fresh_db
    add_live_session(engine)
    app = open_app(url, user="root", route={"page": "session", "session": "s-live"}).run()
    app.selectbox(key="grid_student_s-live").select("erin").run()
    assert failures(app) == []
    assert "Attention over keypoints" in texts(app) and "Attention over the window's frames" in texts(app)
    assert any("Low confidence: the model gave this label 30 %" in shown(w.value) for w in app.warning)


def test_a_login_survives_a_reload_through_its_signed_cookie(fresh_db, monkeypatch):
    from dashboards.views import login

    url, _ = fresh_db
    os.environ["DASHBOARD_LOGIN_SECRET"] = "test-signing-key"
    app = open_app(url).run()
    app.text_input(key="login_username").input("ines")
    app.text_input(key="login_password").input(PASSWORD)
    app.button[0].click().run()
    written = [h.proto.body for h in app.get("html") if "classroom_login=" in h.proto.body]
    assert written and PASSWORD not in written[0]
    token = written[0].split("classroom_login=", 1)[1].split(";", 1)[0]

    monkeypatch.setattr(login, "_browser_cookie", lambda: token)
    reloaded = open_app(url, query={"page": "session", "session": "s-math-1"}).run()  # a new browser session
    assert failures(reloaded) == []
    assert reloaded.title[0].value == "One session"
    other = open_app(url, query={"page": "session", "session": "s-phys-1"}).run()
    assert "not one of your courses" in shown(other.error[0].value)  # still ines, still scoped

    reloaded.button(key="logout").click().run()
    assert reloaded.title[0].value == "Classroom engagement"
    assert any("classroom_login=; Max-Age=0" in h.proto.body for h in reloaded.get("html"))


def test_a_cookie_from_another_key_or_an_old_login_is_refused(fresh_db, monkeypatch):
    from dashboards.auth import login_token, password_hash_of
    from dashboards.views import login

    url, engine = fresh_db
    os.environ["DASHBOARD_LOGIN_SECRET"] = "test-signing-key"
    now = datetime.now(UTC)
    hashed = password_hash_of(engine, "ines") or ""
    forged = login_token(LoginSession("ines", now, now), key=b"another key", password_hash=hashed)
    monkeypatch.setattr(login, "_browser_cookie", lambda: forged)
    assert open_app(url).run().title[0].value == "Classroom engagement"
    old = login_token(
        LoginSession("ines", now - timedelta(hours=9), now), key=b"test-signing-key", password_hash=hashed
    )
    monkeypatch.setattr(login, "_browser_cookie", lambda: old)
    app = open_app(url).run()
    assert app.title[0].value == "Classroom engagement" and "expired after 480 minutes" in shown(
        app.info[0].value
    )


@pytest.mark.parametrize("page", PAGES)
def test_every_page_names_the_campus_time_zone(hand_db, page):
    url, _ = hand_db
    os.environ["DASHBOARD_DISPLAY_TIMEZONE"] = "Europe/Berlin"
    route = {"page": page, "session": "s-math-1", "student": "alice"}
    app = open_app(url, user="root", route=route).run()
    assert failures(app) == []
    assert "Times are in **Europe/Berlin**, the campus's time zone" in texts(app)
    if page == "session":
        assert "Mon 03 Mar 2025 10:00 – 10:10 (Europe/Berlin)" in texts(app)  # 09:00 UTC is 10:00 CET


def test_one_session_gets_a_readable_time_axis(hand_db):
    """A student seen in one session once drew a single tick '.750': the axis is now days wide."""
    url, _ = hand_db
    app = open_app(url, user="root", route={"page": "student", "student": "carol"}).run()
    assert failures(app) == []
    x = json.loads(app.get("vega_lite_chart")[0].proto.spec)["encoding"]["x"]
    low, high = x["scale"]["domain"]
    assert high - low == 4 * 24 * 3600 * 1000 and x["axis"]["format"] == "%d %b"


def test_low_confidence_columns_mark_rows_built_mostly_from_them():
    from dashboards.views.common import low_confidence_columns

    assert low_confidence_columns([None, 0.0, 0.4949, 0.5, 1.0]) == {
        "low-confidence events (%)": [None, 0.0, 49.5, 50.0, 100.0],
        "mostly low-confidence": [False, False, False, True, True],
    }


@pytest.mark.parametrize(
    ("route", "state", "name", "flags", "legend"),
    [
        (
            {"page": "sessions"},
            {},
            "sessions_table",
            {"s-math-2": False, "s-phys-1": True, "s-math-1": False},
            "Low confidence: 12 of 44 events (27 %) of the sessions on this page",
        ),
        (
            {"page": "student", "student": "bob"},
            {},
            "student_sessions_table",
            {"s-math-1": True},
            "Low confidence: 6 of 10 events (60 %) of student bob",
        ),
        (
            {"page": "alerts"},
            {"alerts_dates": (date(2025, 3, 3), date(2025, 3, 5))},
            "alerts_table",
            {"bob": True, "whole class": False, "alice": False, "dave": False},
            "Low confidence: 6 of 31 events (19 %) in these alerts' windows",
        ),
        (
            {"page": "session", "session": "s-math-1"},
            {},
            "session_students_table",
            {"bob": True, "alice": False},
            "Low confidence: 6 of 20 events (30 %) in this session",
        ),
    ],
)
def test_every_page_marks_low_confidence_the_same_way(hand_db, route, state, name, flags, legend):
    """The hand database's low-confidence events (conftest.py): each table has their share and ticks
    the rows built mostly from them, under the same legend and threshold."""
    url, _ = hand_db
    app = open_app(url, user="root", route=route, state=state).run()
    assert failures(app) == []
    assert legend in texts(app) and "(`DASHBOARD_LOW_CONFIDENCE_BELOW`)" in texts(app)
    rows = table(app, name)
    key = "who" if "who" in rows.columns else ("student" if "student" in rows.columns else "session")
    assert dict(zip(rows[key], rows["mostly low-confidence"], strict=True)) == flags
    assert rows["low-confidence events (%)"].between(0, 100).all()


def test_the_low_confidence_threshold_is_one_setting_for_every_page(hand_db):
    url, _ = hand_db
    os.environ["DASHBOARD_LOW_CONFIDENCE_BELOW"] = "0.95"
    app = open_app(url, user="root").run()
    assert "Low confidence: 44 of 44 events (100 %)" in texts(app) and "below 0.95" in texts(app)
    assert table(app, "sessions_table")["mostly low-confidence"].all()
    app = open_app(url, user="root", route={"page": "student", "student": "alice"}).run()
    assert table(app, "student_sessions_table")["low-confidence events (%)"].tolist() == [100.0, 100.0]


@pytest.fixture()
def csvs(monkeypatch):  # type: ignore[no-untyped-def]
    """Every CSV that a page run offers for download, as rows of cells (the header first)."""
    from dashboards.views import common

    made: list[list[list[str]]] = []
    real = common.csv_bytes

    def recording(frame):  # type: ignore[no-untyped-def]
        data = real(frame)
        made.append(list(csv.reader(data.decode().splitlines())))
        return data

    monkeypatch.setattr(common, "csv_bytes", recording)
    return made


def number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


COUNTS = {
    "minutes",
    "students present",
    "hand raises",
    "phone minutes",
    "observed minutes",
}  # unit in the name


@pytest.mark.parametrize(("route", "state"), EVERY_TABLE)
def test_every_csv_names_session_course_date_and_model_with_plain_numbers_and_units(
    hand_db, csvs, route, state
):
    url, _ = hand_db
    app = open_app(url, user="root", route=route, state=state).run()
    assert failures(app) == [] and len(csvs) == len(app.get("download_button"))
    for header, *rows in csvs:
        assert header[:4] == ["session", "course", "date", "model"], header
        assert rows and all(r[0] and r[1] and re.fullmatch(r"2025-03-0[3-5]", r[2]) and r[3] for r in rows)
        for column, name in enumerate(header):
            cells = [r[column] for r in rows if r[column]]
            assert not any(c.rstrip().endswith("%") for c in cells), f"{name}: numbers with their unit"
            if cells and all(number(c) for c in cells):
                assert "(" in name or name in COUNTS, f"{name}: a number without its unit"


def test_the_sessions_csv_names_each_rows_session_course_date_and_model(hand_db, csvs):
    url, _ = hand_db
    open_app(url, user="root").run()
    ((header, *rows),) = csvs
    by_session = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert {k: by_session["s-math-2"][k] for k in ("course", "date", "model", "course name", "minutes")} == {
        "course": "MATH",
        "date": "2025-03-05",
        "model": "v0-untrained",
        "course name": "Calculus",
        "minutes": "12",
    }
    assert float(by_session["s-math-1"]["mean engagement (%)"]) == pytest.approx(46.5)
    assert (
        by_session["s-phys-1"]["low-confidence events (%)"],
        by_session["s-phys-1"]["mostly low-confidence"],
    ) == (
        "100.0000",
        "True",
    )
    assert "start (UTC)" in header


def test_a_sessions_list_with_a_live_session_redraws_itself(fresh_db):
    url, engine = fresh_db
    add_live_session(engine)
    app = open_app(url, user="root").run()
    assert failures(app) == []
    assert "1 live" in texts(app) and "this list redraws itself every 15 s" in texts(app)
    listed = table(app, "sessions_table").set_index("session")
    assert listed.loc["s-live", ["low-confidence events (%)", "mostly low-confidence"]].tolist() == [
        50.0,
        True,
    ]
    add_live_session(engine, students=("gina",))  # a live session's counts are read again, not kept
    app.run()
    listed = table(app, "sessions_table").set_index("session")
    assert listed.loc["s-live", "low-confidence events (%)"] == pytest.approx(66.7)
    assert "Low confidence: 18 of 53 events" in texts(app)  # 12 of 44 before, and erin's and gina's
    app.selectbox(key="sessions_course").select("PHYS").run()  # a list without a live session
    assert (
        "redraws itself" not in texts(app) and "live" not in table(app, "sessions_table")["status"].tolist()
    )
