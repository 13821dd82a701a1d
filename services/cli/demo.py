"""`classroom demo`: the whole suite on this machine with a simulated classroom.

Starts the embedded broker (memory only), or uses the Kafka broker given with ``--broker``,
creates the topics, starts the model server and every service as child processes, streams a
simulated class session, shows progress, and says where the dashboard is. Ctrl-C (or
--seconds) stops everything in pipeline order and prints a summary (``--json``: with the
broker's address, so another client can read the topics of the run); no process it started is
left behind, and a given broker is left running.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.cli.pipeline import PipelineRun, RunOptions

DEFAULT_DASHBOARD_PORT = 8501

STAGE_LABELS = {
    "capture": "captured",
    "enhancement": "enhanced",
    "fusion": "fused",
    "recognition": "events",
    "store": "stored",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--headless", action="store_true", help="no dashboard; exit after --seconds with a summary"
    )
    parser.add_argument(
        "--seconds", type=float, default=0, help="run this long, then stop (0 = until Ctrl-C)"
    )
    parser.add_argument("--students", type=int, default=20, help="students in the simulated classroom")
    parser.add_argument("--fps", type=float, default=15.0, help="camera frame rate")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--database-url", default=None, help="SQL store URL (default: SQLite in the work dir)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="model checkpoint ('untrained' for random weights)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("var/demo"), help="logs, campus file, SQLite database"
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help=f"dashboard port (default {DEFAULT_DASHBOARD_PORT}, or any free one if that is taken; 0: any free one)",
    )
    parser.add_argument(
        "--broker",
        type=bootstrap_servers,
        default=None,
        metavar="HOST:PORT[,HOST:PORT]",
        help="a running Kafka broker (plaintext) to use instead of starting the embedded one; the demo "
        "creates the suite's topics there if they are missing and leaves the broker running",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the final summary as JSON (with the broker's address)"
    )


def bootstrap_servers(value: str) -> str:
    """``--broker``: one or more host:port, comma-separated."""
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"{server!r} is not host:port")
    return value


def start_dashboard(
    database_url: str, port: int | None, admin: tuple[str, str]
) -> tuple[subprocess.Popen, int]:
    """The demo's dashboard on ``port``; without one on 8501, or on any free port if that is taken."""
    from dashboards.cli import serve_ready
    from services.common.ports import PortInUse

    if port is not None:
        return serve_ready(database_url, port, demo_admin=admin)
    try:
        return serve_ready(database_url, DEFAULT_DASHBOARD_PORT, demo_admin=admin)
    except PortInUse:
        print(
            f"  (port {DEFAULT_DASHBOARD_PORT} is taken by another program: the dashboard takes a free one)"
        )
        return serve_ready(database_url, 0, demo_admin=admin)


def run(args: argparse.Namespace) -> int:
    """Start the suite, watch it until stopped, stop it, print the summary: 0, 1 (failed) or 2 (refused)."""
    from services.cli.pipeline import PipelineRun, RunOptions

    refusal = _refusal(args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    options = RunOptions(
        workdir=args.workdir,
        students=args.students,
        fps=args.fps,
        seed=args.seed,
        database_url=args.database_url,
        checkpoint=args.checkpoint,
        broker=args.broker,
    )
    stop = _stop_on_signals()
    pipeline = PipelineRun(options)
    dashboard = None
    print(f"classroom demo: work dir {options.workdir.resolve()}")
    try:
        pipeline.start()
        _print_where(pipeline, options, given_broker=bool(args.broker))
        if not args.headless:
            dashboard = _open_dashboard(pipeline, args.dashboard_port)
        print("  Ctrl-C stops everything.\n", flush=True)
        summary = _watch(pipeline, stop, args.seconds)
        summary["broker"] = {"bootstrap": pipeline.bootstrap, "embedded": not args.broker}
    # PortInUse is a RuntimeError; ConnectionError: a broker that does not answer
    except (RuntimeError, TimeoutError, ConnectionError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(10)
        pipeline.stop()
    print_summary(summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _refusal(args: argparse.Namespace) -> str | None:
    """Why the demo will not start with these arguments, checked before anything starts; None: it will."""
    if args.headless and not args.seconds:
        return "--headless needs --seconds N"
    if not args.headless and args.dashboard_port:  # a port the user chose: refuse now, not after start-up
        from services.common.ports import listening, port_in_use_message

        if listening("127.0.0.1", args.dashboard_port):
            return "classroom demo: " + port_in_use_message(
                "dashboard", "127.0.0.1", args.dashboard_port, "--dashboard-port"
            )
    return None


def _stop_on_signals() -> dict[str, bool]:
    """A stop flag that SIGINT and SIGTERM set (the run loop polls it); the second signal is ignored."""
    stop = {"flag": False}

    def request_stop(signum, _frame) -> None:  # type: ignore[no-untyped-def]
        if stop["flag"]:
            return
        stop["flag"] = True
        print(f"\n{signal.Signals(signum).name}: stopping every service ...", flush=True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def _print_where(pipeline: PipelineRun, options: RunOptions, *, given_broker: bool) -> None:
    """Where the run's broker, database, campus file and logs are."""
    if given_broker:
        print(f"  broker      {pipeline.bootstrap} (given with --broker; left running)")
    else:
        print(f"  broker      embedded Tansu at {pipeline.bootstrap} (memory only: nothing survives it)")
    print(f"  database    {pipeline.database_url}")
    print(f"  campus      {pipeline.campus_file}")
    print(f"  logs        {options.workdir / 'logs'}")


def _open_dashboard(pipeline: PipelineRun, port: int | None) -> subprocess.Popen:
    """The dashboard on the run's database, with a fresh admin password that it prints."""
    password = "demo-" + str(abs(hash(time.time())) % 10_000_000)
    dashboard, port = start_dashboard(pipeline.database_url, port, ("admin", password))
    print(f"  dashboard   http://127.0.0.1:{port}  (user admin, password {password})")
    return dashboard


def _watch(pipeline: PipelineRun, stop: dict[str, bool], limit_s: float) -> dict:
    """Print the stages' counts every 2 s until a signal or ``limit_s`` (0: no limit); the run's summary."""
    counts_start = pipeline.counters()
    measure_from = time.monotonic()
    last_print = 0.0
    while not stop["flag"]:
        time.sleep(0.5)
        pipeline.check_children()
        elapsed = time.monotonic() - measure_from
        if time.monotonic() - last_print >= 2.0:
            last_print = time.monotonic()
            counts = pipeline.counters()
            line = "  ".join(f"{STAGE_LABELS[s]} {int(counts.get(s, 0))}" for s in STAGE_LABELS)
            print(f"[{elapsed:6.1f}s] {line}", flush=True)
        if limit_s and elapsed >= limit_s:
            break
    counts_end = pipeline.counters()
    seconds = time.monotonic() - measure_from
    # Give in-flight windows a moment to reach the store before the summary.
    time.sleep(2.0)
    return pipeline.summary(counts_start, pipeline.counters() or counts_end, seconds)


def print_summary(summary: dict) -> None:
    print(f"\nsummary over {summary['measured_seconds']} s, {summary['classrooms']} classroom(s):")
    if "broker" in summary:
        kind = "embedded, stopped" if summary["broker"]["embedded"] else "given, left running"
        print(f"  broker       {summary['broker']['bootstrap']} ({kind})")
    for stage, figures in summary["stages"].items():
        print(
            f"  {stage:<12} {figures['total']:>7} total  {figures['per_s']:>7.2f}/s  "
            f"dead letters {figures['dead_letters']}"
        )
    latency = summary["latency_capture_to_event_s"]
    print(
        f"  behaviour events written: {summary['events_written']} for {summary['students_with_events']} students"
    )
    print(
        f"  capture -> event latency: p50 {latency['p50']} s, p95 {latency['p95']} s (window {latency['window_s']} s)"
    )
    versions = ", ".join(summary["model_versions"]) or "none yet"
    print(f"  model: {versions}")
    if summary.get("agreement"):
        from services.cli.agreement import print_agreement

        print_agreement(summary["agreement"])
    if summary["untrained_events"]:
        print("  NOTE: events came from UNTRAINED weights; their labels are not recognition.")
