"""The SQL store's schema and data functions, shared by the store service and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the store, zone-aware: SQLite hands back naive UTC,
    PostgreSQL aware datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
