"""``classroom db``: the SQL store's upkeep.

    classroom db upgrade [--database-url URL]
    classroom db purge --older-than-days 180 [--database-url URL] [--dry-run]

``upgrade`` applies the schema's Alembic migrations (``services/common/db/schema.py``);
``purge`` deletes the class sessions that ended more than N days ago, with their behaviour events and
aggregates (``services/common/db/retention.py``), and failed-login records as old. Schedule it
(infra/compose.yaml's ``purge`` service, infra/k8s's ``classroom-purge`` CronJob): how long a
campus keeps what its classrooms did is its decision, and this is how it is carried out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta


def _database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("STORE_DATABASE_URL"),
        help="the store's database (default $STORE_DATABASE_URL, else the embedded SQLite file)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    upgrade = sub.add_parser(
        "upgrade", help="apply the schema's migrations not applied yet (the store does at start)"
    )
    _database_url(upgrade)
    purge = sub.add_parser(
        "purge", help="delete sessions (events, aggregates) and login records older than N days"
    )
    purge.add_argument(
        "--older-than-days",
        type=float,
        default=float(os.environ["CLASSROOM_RETENTION_DAYS"])
        if os.environ.get("CLASSROOM_RETENTION_DAYS")
        else None,
        help="keep this many days (default $CLASSROOM_RETENTION_DAYS)",
    )
    _database_url(purge)
    purge.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    purge.add_argument(
        "--every-hours",
        type=float,
        default=0.0,
        help="purge again every N hours until stopped (for a scheduler-less host: infra/compose.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    if args.db_action == "upgrade":
        return upgrade(args)
    if args.older_than_days is None or args.older_than_days <= 0:
        print(
            "classroom db purge: --older-than-days N (N > 0), or set CLASSROOM_RETENTION_DAYS",
            file=sys.stderr,
        )
        return 2
    while True:
        code = purge_once(args)
        if args.every_hours <= 0:
            return code
        try:
            time.sleep(args.every_hours * 3600)
        except KeyboardInterrupt:
            return code


def upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from services.common.db.engine import DEFAULT_DATABASE_URL, make_engine
    from services.common.db.schema import upgrade_schema

    engine = make_engine(args.database_url or DEFAULT_DATABASE_URL)
    try:
        done = upgrade_schema(engine)
    except SQLAlchemyError as exc:
        print(f"classroom db upgrade: the database refused: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    found = (
        "an empty database" if done.before is None and not done.stamped_legacy else f"revision {done.before}"
    )
    if done.stamped_legacy:
        found = "tables made before migrations (stamped 0001)"
    print(f"schema at revision {done.after} (found {found})")
    return 0


def purge_once(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from dashboards.auth import purge_login_failures
    from services.common.db.engine import DEFAULT_DATABASE_URL, make_engine
    from services.common.db.retention import purge_before
    from services.common.db.schema import upgrade_schema

    if args.older_than_days is None or args.older_than_days <= 0:
        print(
            "classroom db purge: --older-than-days N (N > 0), or set CLASSROOM_RETENTION_DAYS",
            file=sys.stderr,
        )
        return 2
    cutoff = datetime.now(UTC) - timedelta(days=args.older_than_days)
    engine = make_engine(args.database_url or DEFAULT_DATABASE_URL)
    try:
        upgrade_schema(engine)
        purged = purge_before(engine, cutoff, dry_run=args.dry_run)
        logins = 0 if args.dry_run else purge_login_failures(engine, cutoff)
    except SQLAlchemyError as exc:
        print(f"classroom db purge: the database refused: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} everything before {cutoff:%Y-%m-%d %H:%M} UTC: {purged.sessions} sessions, {purged.events} events, "
        f"{purged.student_summaries} student summaries, {purged.session_minutes + purged.student_minutes} "
        f"minute aggregates, {logins} failed-login records",
        flush=True,
    )
    return 0
