"""``classroom dashboard``: serve the dashboard, manage its users, generate a semester, benchmark pages.

Subcommands: ``serve`` (streamlit run, headless, prints the URL), ``users add|list|remove``,
``generate-semester`` (synthetic events with the store's aggregates, bulk or through record_events), ``copy-db``
(SQLite store into an empty PostgreSQL), ``bench`` (page render times).
``--validate-config`` checks the DASHBOARD_* settings and exits.
The demo orchestrator calls ``serve(database_url, port, demo_admin=(user, password))``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from services.common.ports import PortInUse, listening, port_in_use_message, retry_on_port_conflict

APP_PATH = Path(__file__).with_name("app.py")
Subparsers = argparse._SubParsersAction  # what add_subparsers returns: each action adds its parser to it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validate-config", action="store_true", help="check DASHBOARD_* settings and exit 0/1"
    )
    parser.add_argument("--database-url", help="overrides DASHBOARD_DATABASE_URL")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    # in this order: `classroom dashboard --help` lists the actions as they are added
    _add_serve(sub)
    _add_users(sub)
    _add_generate_semester(sub)
    _add_copy_db(sub)
    _add_bench(sub)


def _add_serve(sub: Subparsers) -> None:
    serve_p = sub.add_parser("serve", help="run the dashboard (streamlit, headless) and print its URL")
    serve_p.add_argument("--port", type=int, default=8501, help="0 takes any free port")
    serve_p.add_argument("--address", default="127.0.0.1", help="listen address (0.0.0.0 behind a proxy)")


def _add_users(sub: Subparsers) -> None:
    users = sub.add_parser("users", help="add, list or remove dashboard users")
    users_sub = users.add_subparsers(dest="users_action", metavar="USERS_ACTION", required=True)
    add = users_sub.add_parser(
        "add", help="add a user (the password is asked for, or read from --password-stdin)"
    )
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "instructor"], required=True)
    add.add_argument(
        "--course", action="append", default=[], help="a course this instructor teaches (repeatable)"
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    add.add_argument("--replace", action="store_true", help="overwrite an existing user's role and password")
    users_sub.add_parser("list", help="list users, roles and courses")
    remove = users_sub.add_parser("remove", help="remove a user")
    remove.add_argument("username")


def _add_generate_semester(sub: Subparsers) -> None:
    gen = sub.add_parser(
        "generate-semester", help="write one semester of synthetic events and the store's aggregates"
    )
    gen.add_argument("--rooms", type=int, default=50)
    gen.add_argument("--weeks", type=int, default=15)
    gen.add_argument("--days-per-week", type=int, default=5)
    gen.add_argument("--slots-per-day", type=int, default=4)
    gen.add_argument("--session-minutes", type=int, default=50)
    gen.add_argument("--students-min", type=int, default=20)
    gen.add_argument("--students-max", type=int, default=40)
    gen.add_argument("--population", type=int, default=8000)
    gen.add_argument("--segment-seconds", type=int, default=60, help="seconds one synthetic event covers")
    gen.add_argument("--first-day", type=date.fromisoformat, default=date(2025, 9, 1))
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes generating and writing sessions in parallel (SQLite's writes take turns)",
    )
    gen.add_argument(
        "--writer",
        choices=["bulk", "store"],
        default="bulk",
        help="bulk: events and aggregates folded by the store's arithmetic, written with COPY (PostgreSQL) "
        "or executemany (SQLite), 25 sessions a transaction; store: through record_events, "
        "one session a transaction (the store's write path, slow)",
    )
    gen.add_argument("--limit-sessions", type=int, help="write only the first N sessions of the plan")


def _add_copy_db(sub: Subparsers) -> None:
    copy = sub.add_parser(
        "copy-db", help="copy the store's tables from this SQLite file into an empty PostgreSQL"
    )
    copy.add_argument("--to", required=True, dest="target_url", help="PostgreSQL URL (may select a schema)")


def _add_bench(sub: Subparsers) -> None:
    bench = sub.add_parser("bench", help="print each page's render time on the database (median of runs)")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--username", help="time the pages as this instructor as well as an admin")


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dashboards.config import DashboardSettings
    from services.common.settings import load_settings

    if args.database_url:
        os.environ["DASHBOARD_DATABASE_URL"] = args.database_url
    return load_settings(DashboardSettings, validate_only=args.validate_config)


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.action is None:
        print(
            "classroom dashboard: choose an action (serve, users, generate-semester, copy-db, bench)",
            file=sys.stderr,
        )
        return 2
    from dashboards.database import DatabaseUnavailable

    try:
        if args.action == "serve":
            return _serve_forever(settings.database_url, args.port, args.address)
        if args.action == "users":
            return _users(args, settings.database_url)
        if args.action == "generate-semester":
            return _generate(args, settings.database_url)
        if args.action == "copy-db":
            return _copy(settings.database_url, args.target_url)
        if args.action == "bench":
            from dashboards.tools.bench import print_benchmark

            return print_benchmark(settings.database_url, repeats=args.repeats, instructor=args.username)
    except DatabaseUnavailable as exc:
        print(f"classroom dashboard: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.action)


def _users(args: argparse.Namespace, database_url: str) -> int:
    from dashboards.auth import UserError, add_user, list_users, remove_user
    from dashboards.database import open_engine

    engine = open_engine(database_url)
    if args.users_action == "add":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.username}: ")
            if getpass.getpass("again: ") != password:
                print("the passwords differ", file=sys.stderr)
                return 1
        try:
            add_user(
                engine, args.username, password, args.role, courses=tuple(args.course), replace=args.replace
            )
        except UserError as exc:
            print(f"cannot add {args.username!r}: {exc}", file=sys.stderr)
            return 1
        print(
            f"added {args.role} {args.username}"
            + (f" (courses {', '.join(args.course)})" if args.course else "")
        )
        return 0
    if args.users_action == "list":
        for username, role, courses in list_users(engine):
            print(f"{username}\t{role}\t{','.join(courses)}")
        return 0
    if remove_user(engine, args.username):
        print(f"removed {args.username}")
        return 0
    print(f"no user {args.username!r}", file=sys.stderr)
    return 1


def _generate(args: argparse.Namespace, database_url: str) -> int:
    from dashboards.tools.semester import SemesterPlan, generate_semester, iter_plan_summary

    try:
        plan = SemesterPlan(
            rooms=args.rooms,
            weeks=args.weeks,
            days_per_week=args.days_per_week,
            slots_per_day=args.slots_per_day,
            session_minutes=args.session_minutes,
            students_min=args.students_min,
            students_max=args.students_max,
            population=args.population,
            segment_seconds=args.segment_seconds,
            first_day=args.first_day,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"classroom dashboard generate-semester: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1 or (args.limit_sessions is not None and args.limit_sessions < 0):
        print(
            "classroom dashboard generate-semester: --workers must be at least 1 "
            "and --limit-sessions not negative",
            file=sys.stderr,
        )
        return 2
    for line in iter_plan_summary(plan):
        print(line, flush=True)
    report = generate_semester(
        database_url, plan, workers=args.workers, limit_sessions=args.limit_sessions, writer=args.writer
    )
    rate = report.events / report.write_seconds if report.write_seconds else 0.0
    print(
        f"wrote {report.sessions_written} sessions ({report.sessions_skipped} already present), "
        f"{report.events:,} events in {report.write_seconds:.0f} s ({rate:,.0f} events/s, {report.writer} writer, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''}); "
        f"ANALYZE {report.seconds - report.write_seconds:.0f} s"
    )
    return 0


def _copy(source_url: str, target_url: str) -> int:
    from dashboards.tools.copy_db import CopyError, copy_store

    print(f"copying {_safe_url(source_url)} -> {_safe_url(target_url)}")
    try:
        counts = copy_store(source_url, target_url)
    except CopyError as exc:
        print(f"classroom dashboard copy-db: {exc}", file=sys.stderr)
        return 1
    print(f"copied {sum(counts.values()):,} rows")
    return 0


def serve(
    database_url: str,
    port: int,
    *,
    demo_admin: tuple[str, str] | None = None,
    address: str = "127.0.0.1",
) -> subprocess.Popen:
    """Start ``streamlit run dashboards/app.py`` headless on ``port``; the caller owns the process.

    With ``demo_admin=(username, password)`` that admin is created (or its password reset)
    first, so the demo can print the login. Returns once the process is started; call
    ``wait_until_ready(port)`` to wait for the first page.
    """
    from dashboards.database import open_engine

    engine = open_engine(database_url)
    if demo_admin is not None:
        from dashboards.auth import add_user

        add_user(engine, demo_admin[0], demo_admin[1], "admin", replace=True)
    engine.dispose()
    env = {**os.environ, "DASHBOARD_DATABASE_URL": database_url}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={address}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--client.toolbarMode=viewer",
    ]
    return subprocess.Popen(command, env=env, cwd=APP_PATH.parent.parent)


def wait_until_ready(port: int, *, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Block until Streamlit answers its health check on ``port`` (raises TimeoutError otherwise)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer on port {port} within {timeout_s:.0f} s")


def serve_ready(
    database_url: str,
    port: int,
    *,
    demo_admin: tuple[str, str] | None = None,
    address: str = "127.0.0.1",
    timeout_s: float = 60.0,
) -> tuple[subprocess.Popen, int]:
    """Serve the dashboard and wait for its first page: (process, port).

    ``port`` 0 takes a free one (Streamlit cannot bind 0 and report it, so it is started again
    on another port if something takes the one it was given first). A given port that another
    program holds is PortInUse, one line; never a URL that shows someone else's page."""
    if port == 0:
        return retry_on_port_conflict(
            lambda free: serve_ready(
                database_url, free, demo_admin=demo_admin, address=address, timeout_s=timeout_s
            ),
            host=address,
        )
    probe_host = "127.0.0.1" if address in {"0.0.0.0", "::"} else address
    if listening(probe_host, port):
        raise PortInUse(port_in_use_message("dashboard", address, port, "--port"))
    process = serve(database_url, port, demo_admin=demo_admin, address=address)
    try:
        wait_until_ready(port, process=process, timeout_s=timeout_s)
    except RuntimeError:
        if listening(probe_host, port):  # it exited because another program bound the port first
            raise PortInUse(port_in_use_message("dashboard", address, port, "--port")) from None
        raise
    except BaseException:
        _stop(process)
        raise
    if process.poll() is not None:
        raise PortInUse(port_in_use_message("dashboard", address, port, "--port"))
    return process, port


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _serve_forever(database_url: str, port: int, address: str) -> int:
    try:
        process, port = serve_ready(database_url, port, address=address)
    except (TimeoutError, RuntimeError) as exc:  # PortInUse included: one line
        print(f"classroom dashboard serve: {exc}", file=sys.stderr)
        return 1
    try:
        shown = "127.0.0.1" if address in {"0.0.0.0", "::"} else address
        print(
            f"dashboard: http://{shown}:{port}  (database {_safe_url(database_url)}; Ctrl-C stops it)",
            flush=True,
        )
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(process)


def _safe_url(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)
