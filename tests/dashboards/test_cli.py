"""``classroom dashboard``: configuration check, user management, generation and the benchmark's output."""

from __future__ import annotations

import io
import sys

import pytest

from dashboards.auth import LoginLimits, Role, Viewer, authenticate
from dashboards.database import open_engine
from services.cli.main import main


def run(*argv: str) -> int:
    return main(["dashboard", *argv])


def test_validate_config_accepts_good_settings(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert run("--validate-config") == 0
    assert "configuration is valid" in capsys.readouterr().out
    assert not (tmp_path / "x.db").exists()  # validating connects to nothing


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("DASHBOARD_DATABASE_URL", "mysql://db/x", "DASHBOARD_DATABASE_URL"),
        ("DASHBOARD_DATABASE_URL", "not a url", "DASHBOARD_DATABASE_URL"),
        ("DASHBOARD_DISPLAY_TIMEZONE", "Mars/Olympus", "DASHBOARD_DISPLAY_TIMEZONE"),
        ("DASHBOARD_MAX_FAILURES_PER_USER", "0", "DASHBOARD_MAX_FAILURES_PER_USER"),
    ],
)
def test_validate_config_names_the_bad_setting(monkeypatch, capsys, name, value, field):
    monkeypatch.setenv(name, value)
    assert run("--validate-config") == 1
    err = capsys.readouterr().err
    assert field in err and value not in err.replace(field, "")  # the value itself is never printed


def test_users_add_list_remove(monkeypatch, capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert (
        run(
            "--database-url",
            url,
            "users",
            "add",
            "ines",
            "--role",
            "instructor",
            "--course",
            "MATH",
            "--password-stdin",
        )
        == 0
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert run("--database-url", url, "users", "add", "olga", "--role", "admin", "--password-stdin") == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert run("--database-url", url, "users", "list") == 0
    assert capsys.readouterr().out.splitlines() == ["ines\tinstructor\tMATH"]
    engine = open_engine(url)
    result = authenticate(engine, "ines", "a-long-password", client="cli-test", limits=LoginLimits())
    assert result.viewer == Viewer("ines", Role.INSTRUCTOR)
    assert run("--database-url", url, "users", "remove", "ines") == 0
    assert run("--database-url", url, "users", "remove", "ines") == 1
    engine.dispose()


def test_an_unreachable_database_is_one_line(capsys):
    assert run("--database-url", "postgresql+psycopg2://nobody@127.0.0.1:9/none", "users", "list") == 1
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "Traceback" not in err


@pytest.mark.slow
def test_generate_then_bench_prints_every_page(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    assert (
        run(
            "--database-url",
            url,
            "generate-semester",
            "--rooms",
            "2",
            "--weeks",
            "1",
            "--days-per-week",
            "1",
            "--students-min",
            "5",
            "--students-max",
            "6",
            "--population",
            "30",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 classrooms x 4 sessions/day x 1 days x 1 weeks = 8 sessions" in out
    assert "wrote 8 sessions" in out
    assert run("--database-url", url, "bench", "--repeats", "1") == 0
    out = capsys.readouterr().out
    for page in (
        "sessions (all, page 1)",
        "sessions (one course)",
        "one session",
        "one student",
        "alerts (latest day)",
        "alerts (widest, 8 sessions)",  # the whole tiny semester is within the page's limit
    ):
        assert "admin bench-admin" in out and page in out
    assert "instructor instr-" in out
    assert "class_session 8," in out
    assert "PAGE SHOWED AN ERROR" not in out
    # the benchmark's temporary users are gone
    assert run("--database-url", url, "users", "list") == 0
    assert capsys.readouterr().out == ""


def test_generate_refuses_an_impossible_plan(capsys, tmp_path):
    assert (
        run("--database-url", f"sqlite:///{tmp_path / 'x.db'}", "generate-semester", "--students-max", "99")
        == 2
    )
    assert "students_max" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--workers", "0"], ["--limit-sessions", "-1"]])
def test_generate_refuses_bad_options(capsys, tmp_path, option):
    assert run("--database-url", f"sqlite:///{tmp_path / 'x.db'}", "generate-semester", *option) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()  # refused before anything was written


@pytest.mark.postgres
@pytest.mark.integration
def test_copy_db_moves_the_store_into_postgresql(hand_db, postgres_schema_url, capsys):
    from dashboards import queries
    from services.common.engagement import EngagementMapping

    sqlite_url, sqlite_engine = hand_db
    assert run("--database-url", sqlite_url, "copy-db", "--to", postgres_schema_url) == 0
    assert "behaviour_event: 44 rows" in capsys.readouterr().out  # 10 + 10 + 6 + 9 + 9 one-minute events
    mapping, ines = EngagementMapping(), Viewer("ines", Role.INSTRUCTOR)
    pg_engine = open_engine(postgres_schema_url)
    try:
        same = [
            (
                queries.list_sessions(e, ines, mapping, queries.SessionFilter()),
                queries.student_table(e, ines, mapping, "s-math-1"),
                queries.session_timeline(e, ines, mapping, "s-math-2"),
                queries.alerts_in_range(e, ines, mapping, queries.SessionFilter()).alerts,
            )
            for e in (sqlite_engine, pg_engine)
        ]
        assert same[0] == same[1]
    finally:
        pg_engine.dispose()
    # a second copy into the same, now full, database is refused
    assert run("--database-url", sqlite_url, "copy-db", "--to", postgres_schema_url) == 1
    assert "already holds rows" in capsys.readouterr().err
