"""The dashboard's connection to the store's database, and its failure messages.

The dashboard reads the store's tables and owns two small tables of its own (users and
login attempts, dashboards/auth.py), created in the same database. A PostgreSQL URL may
name a schema through ``options=-csearch_path=<schema>``; the schema is created when it
does not exist, so tests and the semester data set never collide with other tables.
PostgreSQL connections run without JIT compilation (see ``_without_jit``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dashboards import auth  # noqa: F401  (registers the dashboard's own tables on the shared metadata)
from services.common.db.engine import make_engine
from services.common.db.schema import upgrade_schema

_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or read; the message says so without a stack trace."""


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL URL selects with ``options=-csearch_path=...``, if any."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    match = _SEARCH_PATH.search(str(parsed.query.get("options", "")))
    return match.group(1) if match else None


def open_engine(url: str, *, create: bool = True) -> Engine:
    """An engine on ``url``; with ``create`` the schema and every table are made when missing.

    Raises DatabaseUnavailable with a readable reason when the database cannot be reached.
    """
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _without_jit)
    try:
        schema = postgres_schema(url)
        if schema is not None and create:
            # the schema must exist before the search path can select it for create_all
            bare = make_engine(
                make_url(url).difference_update_query(["options"]).render_as_string(hide_password=False)
            )
            with bare.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            bare.dispose()
        if create:
            upgrade_schema(engine)
        else:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseUnavailable(describe_failure(url, exc)) from exc
    return engine


def _without_jit(dbapi_connection: Any, _record: Any) -> None:
    """Turn PostgreSQL's JIT compilation off for the dashboard's connections.

    The pages' queries read a few thousand aggregate rows through indexes, yet the
    planner's estimates for the alert queries cross ``jit_above_cost``; on the semester
    data set compiling the student-alert query took about 360 ms of its 520-560 ms
    (measured when the semester data set was added; git log of dashboards/database.py).
    """
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a SET inside the pool's first transaction would be rolled back
    cursor = dbapi_connection.cursor()
    cursor.execute("SET jit = off")
    cursor.close()
    dbapi_connection.autocommit = autocommit


def describe_failure(url: str, exc: BaseException) -> str:
    """One readable sentence about a database failure; the password never appears."""
    where = make_url(url).render_as_string(hide_password=True)
    reason = (
        str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if str(exc).strip()
        else type(exc).__name__
    )
    if isinstance(exc, OperationalError):
        return f"The database at {where} cannot be reached or read ({reason})."
    return f"The database at {where} answered with an error ({reason})."
