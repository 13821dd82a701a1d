"""Retention: class sessions older than the campus keeps them are deleted whole.

A session that ended before the cut-off goes with its behaviour events and every aggregate
made of them (per student, per minute), so the dashboard never shows a session with half its
numbers; events whose session row is missing go by their own window end. ``classroom db
purge --older-than-days N`` runs it (scheduled in infra/compose.yaml and infra/k8s); the
dashboard's login attempts are purged beside it (``dashboards.auth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, func
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from services.common.db.models import (
    BehaviourEvent,
    ClassSession,
    SessionMinute,
    StudentMinute,
    StudentSessionSummary,
)

BATCH_SESSIONS = 200  # sessions deleted per transaction: a long purge never holds one huge lock


@dataclass(frozen=True)
class Purged:
    sessions: int
    events: int
    student_summaries: int
    session_minutes: int
    student_minutes: int


def purge_before(engine: Engine, cutoff: datetime, *, dry_run: bool = False) -> Purged:
    """Delete every class session that ended before ``cutoff`` (aware UTC) with its events and
    aggregates, and events older than ``cutoff`` whose session row is gone; counts per table."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware (UTC)")
    counts = dict.fromkeys(
        ("sessions", "events", "student_summaries", "session_minutes", "student_minutes"), 0
    )
    tables = (
        ("events", BehaviourEvent, BehaviourEvent.session_id),
        ("student_summaries", StudentSessionSummary, StudentSessionSummary.session_id),
        ("session_minutes", SessionMinute, SessionMinute.session_id),
        ("student_minutes", StudentMinute, StudentMinute.session_id),
    )
    with Session(engine) as session:
        old = list(session.exec(select(ClassSession.id).where(col(ClassSession.ended_at) < cutoff)).all())
    for start in range(0, len(old), BATCH_SESSIONS):
        ids = old[start : start + BATCH_SESSIONS]
        with Session(engine) as session, session.begin():
            for name, table, column in tables:
                counts[name] += _delete(session, table, column, ids, dry_run)
            counts["sessions"] += _delete(session, ClassSession, ClassSession.id, ids, dry_run)
    # events of sessions the store never recorded (or already removed), by their own time
    with Session(engine) as session, session.begin():
        known = select(ClassSession.id)
        orphan = (col(BehaviourEvent.window_end) < cutoff) & col(BehaviourEvent.session_id).not_in(known)
        if dry_run:
            counts["events"] += int(
                session.exec(select(func.count()).select_from(BehaviourEvent).where(orphan)).one()
            )
        else:
            counts["events"] += deleted_rows(session.execute(delete(BehaviourEvent).where(orphan)))
    return Purged(**counts)


def _delete(session: Session, table: Any, column: Any, ids: list[str], dry_run: bool) -> int:
    """Rows of ``table`` whose ``column`` is one of ``ids``: deleted (or only counted)."""
    where = col(column).in_(ids)
    if dry_run:
        return int(session.exec(select(func.count()).select_from(table).where(where)).one())
    return deleted_rows(session.execute(delete(table).where(where)))


def deleted_rows(result: Any) -> int:
    """Rows a DELETE removed (its result is a CursorResult, typed as a plain Result)."""
    return int(cast(CursorResult, result).rowcount or 0)
