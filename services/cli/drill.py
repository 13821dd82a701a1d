"""``classroom bench drill``: the fault drill a campus operator runs, with its figures.

The whole suite on the embedded broker with one simulated classroom, the store writing to
PostgreSQL through a proxy that can refuse connections (``services.cli.faults.FaultProxy``).
After a warm-up, one fault at a time, each followed by a quiet phase:

1. one service (``--pause``, enhancement by default) is stopped with SIGSTOP, its worker
   processes too, for ``--fault-seconds``, then continued;
2. the model server is killed (SIGKILL) and started again on the same gRPC port;
3. the database refuses connections (and drops the open ones) for ``--fault-seconds``.

Then the camera stops and the suite drains. Compared afterwards:

- **lost / duplicated**: every event id published on the behaviours topic against the rows
  in SQL for this run's sessions (lost: published, not stored; duplicated: stored twice, or
  published twice);
- **coverage**: per student, the windows stored between the first and the last one, against
  one per hop; a missing window must show in a metric (recognition's
  ``classroom_observations_skipped_total`` or a dead letter);
- **recovery**: seconds from a dependency being back (the paused service continued, the model
  server ready again, the database accepting connections) to the first work done after it
  (the paused service's output, fusion's output, a new row in SQL); target 2 s;
- capture -> event latency p50 / p95 before, during and after the faults.

PostgreSQL: ``--database-url`` (default the test database at 127.0.0.1:5432); the run's
events are told apart by their session ids, so the database may hold other data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
RECOVERY_TARGET_S = 2.0
HOP_S = 1.0  # vocabulary.HOP_FRAMES / WINDOW_FPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL the store writes to")
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--fps", type=float, default=10.0, help="camera frame rate")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds before the first fault")
    parser.add_argument(
        "--fault-seconds", type=float, default=10.0, help="length of the pause and the outage"
    )
    parser.add_argument("--quiet", type=float, default=12.0, help="seconds between faults and after the last")
    parser.add_argument("--pause", default="enhancement", help="the service stopped with SIGSTOP")
    parser.add_argument("--workdir", type=Path, default=Path("var/drill"))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


@dataclass
class Sampler:
    """Polls progress every 0.1 s: each service's output counter and the run's rows in SQL."""

    run: Any
    count_rows: Any
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="drill-sampler").start()

    def _loop(self) -> None:
        from services.cli.pipeline import scrape

        while not self._stop.is_set():
            values: dict[str, float] = {}
            for name, port in self.run.ports.items():
                try:
                    values[name] = scrape(port).get("classroom_messages_out_total", 0.0)
                except OSError:  # stopped, killed or restarting
                    continue
            with contextlib.suppress(Exception):
                values["rows"] = float(self.count_rows())
            self.samples.append((time.monotonic(), values))
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()

    def resumed_after(self, key: str, since: float) -> float | None:
        """Seconds from ``since`` to the first sample whose ``key`` is above its last value at or before ``since``."""
        before = [v[key] for t, v in self.samples if t <= since and key in v]
        if not before:
            return None
        base = before[-1]
        for t, v in self.samples:
            if t > since and v.get(key, base) > base:
                return round(t - since, 2)
        return None


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from services.cli.faults import FaultProxy
    from services.cli.pipeline import PipelineRun, RunOptions, scrape

    real = make_url(args.database_url)
    if not real.drivername.startswith("postgresql"):
        print(
            "classroom bench drill: --database-url must be PostgreSQL (the outage is a TCP proxy)",
            file=sys.stderr,
        )
        return 2
    try:
        _check_database(args.database_url)
    except Exception as exc:
        print(
            f"classroom bench drill: cannot reach {real.render_as_string(hide_password=True)}: {exc}",
            file=sys.stderr,
        )
        return 2
    proxy = FaultProxy(real.host or "127.0.0.1", real.port or 5432)
    proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    pipeline = PipelineRun(
        RunOptions(
            workdir=args.workdir, students=args.students, fps=args.fps, seed=args.seed, database_url=proxied
        )
    )
    sampler: Sampler | None = None
    try:
        pipeline.start()
        tap = pipeline.tap
        assert tap is not None  # started by pipeline.start()
        sampler = Sampler(pipeline, lambda: _event_ids(args.database_url, tap.session_ids, count=True))
        sampler.start()
        timeline = _inject_faults(pipeline, proxy, args)
        timeline["capture_stop"] = time.monotonic()  # the camera stops; everything in flight drains
        pipeline.supervisor.stop(
            [c.name for c in pipeline.supervisor.children if c.name.startswith("capture")]
        )
        drained = _drain(pipeline, args.database_url)
        timeline["drained"] = time.monotonic()
        counters = {}
        for name, port in pipeline.ports.items():
            with contextlib.suppress(OSError):  # the stopped camera
                counters[name] = scrape(port)
    except RuntimeError as exc:
        print(f"classroom bench drill: {exc}", file=sys.stderr)
        return 1
    finally:
        if sampler is not None:
            sampler.stop()
        pipeline.stop()
        proxy.close()
    result = _figures(args, tap, sampler, timeline, counters, drained)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


def _inject_faults(pipeline: Any, proxy: Any, args: argparse.Namespace) -> dict[str, float]:
    """Warm-up, then each fault and a quiet phase after it; when each began and was over."""
    timeline = {"start": time.monotonic()}
    _wait(pipeline, args.warmup)
    # 1. a service stops (SIGSTOP, its workers too) and continues
    timeline["pause_start"] = time.monotonic()
    pipeline.supervisor.signal(args.pause, signal.SIGSTOP)
    time.sleep(args.fault_seconds)
    pipeline.supervisor.signal(args.pause, signal.SIGCONT)
    timeline["pause_back"] = time.monotonic()
    _wait(pipeline, args.quiet)
    # 2. the model server crashes and is started again
    timeline["model_start"] = time.monotonic()
    pipeline.kill("modelserver")
    pipeline.restart_modelserver()
    pipeline.wait_ready(["modelserver"])
    timeline["model_back"] = time.monotonic()
    _wait(pipeline, args.quiet)
    # 3. the database refuses connections
    timeline["database_start"] = time.monotonic()
    proxy.cut()
    _wait(pipeline, args.fault_seconds)
    proxy.restore()
    timeline["database_back"] = time.monotonic()
    _wait(pipeline, args.quiet)
    return timeline


def _figures(
    args: argparse.Namespace,
    tap: Any,
    sampler: Sampler,
    timeline: dict[str, float],
    counters: dict,
    drained: bool,
) -> dict[str, Any]:
    """What the drill measured: events published against stored, coverage, metrics, recovery, latency."""
    stored = _event_ids(args.database_url, tap.session_ids)
    published = set(tap.event_ids)
    windows = _windows(args.database_url, tap.session_ids)
    coverage = {student: _coverage(ends) for student, ends in windows.items()}

    def total(name: str) -> float:  # over services (scrape already summed each one's labels)
        return sum(c.get(name, 0.0) for c in counters.values())

    return {
        "students": args.students,
        "fps": args.fps,
        "fault_seconds": args.fault_seconds,
        "paused_service": args.pause,
        "drained": drained,
        "events_published": int(sum(tap.event_ids.values())),
        "event_ids_published": len(published),
        "published_more_than_once": sum(1 for c in tap.event_ids.values() if c > 1),
        "rows_stored": len(stored),
        "lost": len(published - set(stored)),
        "stored_not_published": len(set(stored) - published),
        "stored_twice": len(stored) - len(set(stored)),
        "coverage_min": round(min(coverage.values()), 4) if coverage else 0.0,
        "coverage_mean": round(sum(coverage.values()) / len(coverage), 4) if coverage else 0.0,
        "missing_windows": sum(_missing(ends) for ends in windows.values()),
        "skipped_observations_metric": total("classroom_observations_skipped_total"),
        "dead_letters_metric": total("classroom_dead_letters_total"),
        "windows_not_emitted_metric": total("classroom_windows_not_emitted_total"),
        "frames_shed_metric": total("classroom_frames_shed_total"),
        "recovery_s": {
            f"{args.pause} continued -> its output": sampler.resumed_after(
                args.pause, timeline["pause_back"]
            ),
            "model server ready -> fusion output": sampler.resumed_after("fusion", timeline["model_back"]),
            "database back -> a new row": sampler.resumed_after("rows", timeline["database_back"]),
        },
        "recovery_target_s": RECOVERY_TARGET_S,
        "latency_capture_to_event": _latency_by_phase(tap, timeline, args.quiet),
        "timeline_s": {k: round(v - timeline["start"], 1) for k, v in timeline.items() if k != "start"},
    }


def _latency_by_phase(tap: Any, timeline: dict[str, float], quiet: float) -> dict[str, dict[str, float]]:
    """Capture -> event p50 / p95 of the events published before, during and after the faults."""
    from services.cli.pipeline import percentile

    phases = {
        "before faults": (timeline["start"], timeline["pause_start"]),
        "during faults": (timeline["pause_start"], timeline["database_back"] + quiet / 2),
        "after faults": (timeline["database_back"] + quiet / 2, timeline["capture_stop"] + 30),
    }
    latency = {}
    for phase, (lo, hi) in phases.items():
        values = [lat for at, lat in zip(tap.received_at, tap.latencies_s, strict=False) if lo <= at < hi]
        latency[phase] = {
            "p50_s": round(percentile(values, 50), 2),
            "p95_s": round(percentile(values, 95), 2),
            "n": len(values),
        }
    return latency


def _wait(pipeline: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        pipeline.check_children()


def _drain(pipeline: Any, database_url: str, timeout_s: float = 90.0, settle_s: float = 5.0) -> bool:
    """Until every event published is stored and nothing new arrives for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        pipeline.check_children()
        tap = pipeline.tap
        stored = _event_ids(database_url, tap.session_ids, count=True)
        seen = tap.events + stored
        if seen != last:
            last, since = seen, time.monotonic()
        elif time.monotonic() - since >= settle_s and stored >= len(tap.event_ids):
            return True
    return False


def _check_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    finally:
        engine.dispose()


_ENGINES: dict[str, Any] = {}


def _engine(url: str) -> Any:
    from services.common.db.engine import make_engine

    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def _event_ids(url: str, sessions: set[str], *, count: bool = False) -> Any:
    """The run's stored event ids (a list: a duplicate would show), or their number."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from services.common.db.models import BehaviourEvent

    chosen = sorted(sessions)
    if not chosen:
        return 0 if count else []
    with Session(_engine(url)) as session:
        where = col(BehaviourEvent.session_id).in_(chosen)
        if count:
            return int(session.exec(select(func.count()).where(where)).one())
        return list(session.exec(select(BehaviourEvent.event_id).where(where)).all())


def _windows(url: str, sessions: set[str]) -> dict[str, list[float]]:
    """(session/student) -> the end times (s) of the windows stored for them."""
    from sqlmodel import Session, col, select

    from services.common.db import as_utc
    from services.common.db.models import BehaviourEvent

    out: dict[str, list[float]] = defaultdict(list)
    if not sessions:
        return out
    with Session(_engine(url)) as session:
        rows = session.exec(
            select(BehaviourEvent.session_id, BehaviourEvent.student_id, BehaviourEvent.window_end).where(
                col(BehaviourEvent.session_id).in_(sorted(sessions))
            )
        ).all()
    for session_id, student, end in rows:
        out[f"{session_id}/{student}"].append(as_utc(end).timestamp())
    return out


def _missing(ends: list[float]) -> int:
    """Hops without a window between a student's first and last stored window."""
    if not ends:
        return 0
    steps = Counter(round((e - min(ends)) / HOP_S) for e in ends)
    return round((max(ends) - min(ends)) / HOP_S) + 1 - len(steps)


def _coverage(ends: list[float]) -> float:
    if not ends:
        return 0.0
    expected = round((max(ends) - min(ends)) / HOP_S) + 1
    return (expected - _missing(ends)) / expected


def _print(result: dict) -> None:
    print(
        f"fault drill: {result['students']} students at {result['fps']:g} fps, faults of {result['fault_seconds']:g} s"
    )
    print(f"  timeline (s from start): {result['timeline_s']}")
    print(
        f"  events published {result['events_published']} ({result['event_ids_published']} ids, "
        f"{result['published_more_than_once']} published more than once); rows stored {result['rows_stored']}; "
        f"lost {result['lost']}; stored twice {result['stored_twice']}; drained {result['drained']}"
    )
    print(
        f"  windows per student covered: min {100 * result['coverage_min']:.1f} %, mean {100 * result['coverage_mean']:.1f} %; "
        f"missing {result['missing_windows']}; skipped observations (metric) {result['skipped_observations_metric']:g}; "
        f"dead letters {result['dead_letters_metric']:g}; windows not emitted (metric) "
        f"{result['windows_not_emitted_metric']:g}; frames shed (metric) {result['frames_shed_metric']:g}"
    )
    for what, seconds in result["recovery_s"].items():
        verdict = "no work seen after it" if seconds is None else f"{seconds:.2f} s"
        print(f"  recovery: {what}: {verdict} (target {result['recovery_target_s']:g} s)")
    for phase, figures in result["latency_capture_to_event"].items():
        print(
            f"  capture -> event, {phase}: p50 {figures['p50_s']} s, p95 {figures['p95_s']} s ({figures['n']} events)"
        )
