"""Copy the store's tables from a SQLite file into an empty PostgreSQL database (``dashboard copy-db``).

For moving a campus from the one-machine default (SQLite) to PostgreSQL, and for loading
the semester data set into PostgreSQL without generating it a second time: the rows,
aggregates included, are copied as they are (the aggregates were built by the store's
record_events when the events were written; tests/dashboards/tools/test_semester.py checks that
record_events builds the same aggregates on both databases). Rows travel through
PostgreSQL's COPY in chunks; SQLite's UTC timestamps are read as UTC by setting the
session's time zone. The dashboard's own tables (users, login failures) are not copied.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Callable

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from dashboards.database import open_engine
from dashboards.queries import (
    CLASS_SESSION,
    CLASSROOM,
    COURSE,
    COURSE_INSTRUCTOR,
    EVENT,
    SESSION_MINUTE,
    STUDENT_MINUTE,
    SUMMARY,
)

# reference data first, then sessions, their aggregates, and the events
STORE_TABLES = (
    CLASSROOM,
    COURSE,
    COURSE_INSTRUCTOR,
    CLASS_SESSION,
    SUMMARY,
    SESSION_MINUTE,
    STUDENT_MINUTE,
    EVENT,
)
NULL = r"\N"


class CopyError(RuntimeError):
    """The copy cannot start (wrong kinds of database, or a target that already holds data)."""


def copy_store(
    source_url: str,
    target_url: str,
    *,
    chunk_rows: int = 50_000,
    progress: Callable[[str], None] = print,
) -> dict[str, int]:
    """Copy every store table from SQLite ``source_url`` into PostgreSQL ``target_url``; rows per table."""
    source, target = make_url(source_url), make_url(target_url)
    if source.get_backend_name() != "sqlite" or not source.database:
        raise CopyError("the source must be a SQLite file (sqlite:///path)")
    if target.get_backend_name() != "postgresql":
        raise CopyError("the target must be PostgreSQL")
    engine = open_engine(target_url)  # creates the schema and the tables
    with engine.connect() as connection:
        for table in STORE_TABLES:
            if connection.execute(select(func.count()).select_from(table)).scalar_one():
                raise CopyError(f"the target already holds rows in {table.name}; copy into an empty database")
    counts: dict[str, int] = {}
    reader = sqlite3.connect(f"file:{source.database}?mode=ro", uri=True)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")  # SQLite holds UTC without an offset
        for table in STORE_TABLES:
            started = time.monotonic()
            columns = [c.name for c in table.columns]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = reader.execute(f'SELECT {quoted} FROM "{table.name}"')
            copy_sql = f"COPY \"{table.name}\" ({quoted}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')"
            n = 0
            while chunk := rows.fetchmany(chunk_rows):
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                writer.writerows([NULL if v is None else v for v in row] for row in chunk)
                buffer.seek(0)
                cursor.copy_expert(copy_sql, buffer)
                n += len(chunk)
            raw.commit()
            counts[table.name] = n
            progress(f"  {table.name}: {n:,} rows in {time.monotonic() - started:.0f} s")
        cursor.close()
    finally:
        raw.close()
        reader.close()
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return counts
