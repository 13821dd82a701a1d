"""`classroom demo --headless`: the whole suite as child processes (embedded broker, model server,
capture, enhancement, fusion, recognition, store) on a simulated classroom, end to end, into
SQLite and into PostgreSQL; nothing is left running afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUDENTS = 4


def suite_processes() -> dict[int, str]:
    """pid -> command line of every running process of the suite's services (Linux /proc)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "services." in cmdline or "tansu" in cmdline:
            found[int(entry)] = cmdline
    return found


def run_demo(tmp_path, *extra: str) -> dict:
    before = suite_processes()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "demo",
            "--headless",
            "--seconds",
            "35",
            "--students",
            str(STUDENTS),
            "--fps",
            "8",
            "--workdir",
            str(tmp_path / "demo"),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    leftovers = {pid: cmd for pid, cmd in suite_processes().items() if pid not in before}
    assert not leftovers, f"processes left behind: {leftovers}"
    summary = json.loads(completed.stdout[completed.stdout.index("\n{") :])
    assert re.search(r"behaviour events written: \d+ for \d+ students", completed.stdout)
    return summary


def students_with_events(database_url: str) -> set[str]:
    from sqlmodel import Session, select

    from services.common.db.engine import make_engine
    from services.common.db.models import BehaviourEvent

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return set(session.exec(select(BehaviourEvent.student_id).distinct()).all())
    finally:
        engine.dispose()


def check_summary(summary: dict) -> None:
    stages = summary["stages"]
    for stage in ("capture", "enhancement", "fusion", "recognition", "store"):
        assert stages[stage]["total"] > 0, stage
        assert stages[stage]["dead_letters"] == 0, stage
    assert summary["events_written"] >= STUDENTS
    # every simulated student has events, and the summary counts this run's students
    roster = {f"S{i:02d}" for i in range(1, STUDENTS + 1)}
    assert roster <= students_with_events(summary["database_url"])
    assert summary["students_with_events"] >= STUDENTS
    assert summary["model_versions"], "events name the checkpoint that produced them"
    # events of roster students are scored against the simulator's truth; events of empty seats
    # the occupancy model thinks taken have none: the seat model keeps them a small minority
    # (the keypoint network's head, before it, made 184 of 287 such events)
    agreement = summary["agreement"]
    assert agreement is not None and agreement["scored"] >= STUDENTS
    assert agreement["scored"] >= 0.8 * agreement["events"]
    # the floor, near what the committed model measures on this session (4 students, 35 s, seed 7):
    # 78.3 % of events, 84.2 % of windows with one true behaviour (docs/benchmarks.md, "Live
    # agreement"; 82.1 % top-1 on the data set's test split); chance is 10 %. With 129 events one
    # standard error is about 3.6 points: the floor sits three below what was measured
    assert agreement["agreement"] >= 0.67


def test_demo_headless_writes_events_for_every_student_to_sqlite(tmp_path):
    summary = run_demo(tmp_path)
    check_summary(summary)
    assert summary["database_url"].startswith("sqlite:///")


def test_demo_headless_into_postgresql(tmp_path, postgres_schema_url):
    summary = run_demo(tmp_path, "--database-url", postgres_schema_url)
    check_summary(summary)
    assert summary["database_url"] == postgres_schema_url
