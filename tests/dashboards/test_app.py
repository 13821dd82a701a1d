"""Every page of dashboards/app.py through Streamlit's AppTest, on the hand-computed database."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dashboards.auth import LoginSession, Role, add_user, remove_user
from dashboards.database import open_engine
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
    assert table(app, "session_alerts_table").to_dict("records") == [
        {"from (UTC)": "09:00", "to (UTC)": "09:07", "minutes": 7, "who": "bob", "mean engagement (%)": 1}
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
    assert labels == ["Download CSV (students)", "Download CSV (every event)"]


@pytest.mark.parametrize(
    ("route", "buttons"),
    [
        ({"page": "sessions"}, 1),
        ({"page": "session", "session": "s-math-1"}, 2),
        ({"page": "student", "student": "alice"}, 1),
    ],
)
def test_every_table_downloads(hand_db, route, buttons):
    url, _ = hand_db
    app = open_app(url, user="root", route=route).run()
    assert failures(app) == []
    assert len(app.get("download_button")) == buttons


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
    assert listed[["day", "from (UTC)", "to (UTC)", "minutes", "who"]].values.tolist() == [
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
