"""The store's schema belongs to its Alembic migrations (``services/common/db/migrations``).

``upgrade_schema(engine)`` brings a database to the newest revision: ``classroom db upgrade``
runs it, and so do the store at start and the dashboard when it opens a database. A database
made before migrations existed (every table of revision 0001, no ``alembic_version``) is
stamped 0001 and upgraded from there, its rows kept. On PostgreSQL an advisory lock makes two
processes that start together upgrade one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema create_all made before migrations: every table below
BASELINE_TABLES = ("behaviour_event", "class_session", "student_session_summary")
_LOCK_KEY = 7_204_311_001  # pg_advisory_xact_lock key of this upgrade


@dataclass(frozen=True)
class SchemaUpgrade:
    before: str | None  # revision found (None: empty database)
    after: str
    stamped_legacy: bool  # tables made before migrations existed, stamped BASELINE first


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """Apply every migration not applied yet; idempotent."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = MigrationContext.configure(connection).get_current_revision()
        tables = set(inspect(connection).get_table_names())
        legacy = before is None and set(BASELINE_TABLES) <= tables
        config = _config(connection)
        if legacy:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return SchemaUpgrade(before=before, after=head_revision(), stamped_legacy=legacy)
