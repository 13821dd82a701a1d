"""Retention: sessions older than the campus keeps them go whole (events and aggregates), on
SQLite and PostgreSQL; `classroom db purge` carries it out and says what it deleted."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from dashboards.auth import LoginFailure
from services.common.db.crud import record_events
from services.common.db.engine import make_engine
from services.common.db.models import (
    BehaviourEvent,
    ClassSession,
    SessionMinute,
    StudentMinute,
    StudentSessionSummary,
)
from services.common.db.retention import purge_before
from services.common.db.schema import upgrade_schema
from services.store.service import event_row
from tests.services.store.test_store_service import make_event

NOW = datetime.now(UTC)
OLD_US = int((NOW - timedelta(days=400)).timestamp() * 1e6)
NEW_US = int((NOW - timedelta(days=3)).timestamp() * 1e6)


def _events(session_id: str, t0_us: int, n: int = 3) -> list[BehaviourEvent]:
    rows = []
    for i in range(n):
        message = make_event(i)
        message.event_id = f"{session_id}-{i}"
        message.session_id = session_id
        end = t0_us + (i + 2) * 1_000_000
        message.window_start_us, message.window_end_us = end - 2_000_000, end
        message.segment_start_us, message.segment_end_us = end - 1_000_000, end
        rows.append(event_row(message))
    return rows


def _count(engine, table, session_id: str | None = None) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(table)
        if session_id is not None:
            query = query.where(table.session_id == session_id)
        return int(session.exec(query).one())


def _check(url: str) -> None:
    engine = make_engine(url)
    upgrade_schema(engine)
    try:
        with Session(engine) as session:
            record_events(session=session, events=_events("old", OLD_US) + _events("new", NEW_US))
            record_events(session=session, events=_events("gone", OLD_US, 2))
            session.add(LoginFailure(username="x", client="1.2.3.4", at=NOW - timedelta(days=400)))
            session.commit()
        with Session(engine) as session:  # a session row removed by hand: its events go by their own time
            session.delete(session.get(ClassSession, "gone"))
            session.commit()
        cutoff = NOW - timedelta(days=180)
        counted = purge_before(engine, cutoff, dry_run=True)
        assert _count(engine, BehaviourEvent) == 8  # a dry run deletes nothing
        purged = purge_before(engine, cutoff)
        assert purged == counted
        assert purged.sessions == 1 and purged.events == 3 + 2 and purged.student_summaries == 1
        assert purged.session_minutes >= 1 and purged.student_minutes >= 1
        for table in (BehaviourEvent, StudentSessionSummary, SessionMinute, StudentMinute):
            assert _count(engine, table, "old") == 0
            assert _count(engine, table, "new") > 0
        assert _count(engine, BehaviourEvent, "gone") == 0
        with Session(engine) as session:
            assert session.get(ClassSession, "old") is None and session.get(ClassSession, "new") is not None
        with pytest.raises(ValueError, match="timezone-aware"):
            purge_before(engine, cutoff.replace(tzinfo=None))
    finally:
        engine.dispose()


def test_old_sessions_go_whole_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.mark.postgres
@pytest.mark.integration
def test_old_sessions_go_whole_on_postgres(postgres_schema_url):
    _check(postgres_schema_url)


def test_the_purge_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    with Session(engine) as session:
        record_events(session=session, events=_events("old", OLD_US) + _events("new", NEW_US))
        session.add(LoginFailure(username="x", client="1.2.3.4", at=NOW - timedelta(days=400)))
        session.commit()
    engine.dispose()
    command = [sys.executable, "-m", "services.cli.main", "db", "purge", "--database-url", url]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin"})
    assert refused.returncode == 2 and "--older-than-days" in refused.stderr
    done = subprocess.run([*command, "--older-than-days", "180"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deleted everything before" in done.stdout
    assert (
        "1 sessions, 3 events, 1 student summaries" in done.stdout and "1 failed-login records" in done.stdout
    )
