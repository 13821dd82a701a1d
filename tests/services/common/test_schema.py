"""The schema belongs to its migrations: an empty database and one made before migrations
existed (its rows kept) both end at the newest revision, which is exactly what the models
declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, func, select

import dashboards.auth  # noqa: F401 - registers the dashboard's tables in SQLModel.metadata
from services.common.db.crud import record_events
from services.common.db.engine import make_engine
from services.common.db.models import BehaviourEvent
from services.common.db.schema import _config, current_revision, head_revision, upgrade_schema
from services.store.service import event_row
from tests.services.store.test_store_service import make_event


def _schema_matches_the_models(engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], diff


def _check_empty(url: str) -> None:
    engine = make_engine(url)
    try:
        first = upgrade_schema(engine)
        assert first.before is None and not first.stamped_legacy and first.after == head_revision()
        again = upgrade_schema(engine)
        assert again.before == head_revision()
        _schema_matches_the_models(engine)
    finally:
        engine.dispose()


def _check_legacy(url: str) -> None:
    """Today's main made its tables with create_all: revision 0001's tables, no alembic_version."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(_config(connection), "0001")
            connection.execute(text("DROP TABLE alembic_version"))
        assert "ix_class_session_ended_at" not in {
            i["name"] for i in inspect(engine).get_indexes("class_session")
        }
        with Session(engine) as session:
            record_events(session=session, events=[event_row(make_event(i)) for i in range(3)])
            session.commit()
        done = upgrade_schema(engine)
        assert done.stamped_legacy and done.after == head_revision() == current_revision(engine)
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(BehaviourEvent)).one() == 3
        _schema_matches_the_models(engine)
    finally:
        engine.dispose()


def test_an_empty_sqlite_database_is_migrated_to_the_models(tmp_path):
    _check_empty(f"sqlite:///{tmp_path / 'a.db'}")


def test_a_sqlite_database_of_todays_main_is_upgraded_with_its_rows(tmp_path):
    _check_legacy(f"sqlite:///{tmp_path / 'b.db'}")


@pytest.mark.postgres
@pytest.mark.integration
def test_an_empty_postgres_database_is_migrated_to_the_models(postgres_schema_url):
    _check_empty(postgres_schema_url)


@pytest.mark.postgres
@pytest.mark.integration
def test_a_postgres_database_of_todays_main_is_upgraded_with_its_rows(postgres_schema_url):
    _check_legacy(postgres_schema_url)


def test_the_upgrade_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    command_line = [sys.executable, "-m", "services.cli.main", "db", "upgrade", "--database-url", url]
    done = subprocess.run(command_line, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"schema at revision {head_revision()} (found an empty database)"
