"""`classroom bench pipeline --camera replay`: each classroom rendered once, then replayed by its
capture agent; the suite downstream runs as with a live camera."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_suite_runs_on_replayed_classrooms(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "bench",
            "pipeline",
            "--classrooms",
            "1",
            "--students",
            "2",
            "--fps",
            "8",
            "--seconds",
            "8",
            "--warmup",
            "10",
            "--modes",
            "paced",
            "--camera",
            "replay",
            "--skip-kafka",
            "--workdir",
            str(tmp_path),
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["pipeline"]
    assert run["stages"]["capture"]["total"] > 0 and run["events_written"] > 0
    assert run["students_with_events"] == 2
    assert run["agreement"]["scored"] == 0  # a replayed classroom has no ground truth
    assert list((tmp_path / "recordings").glob("room-101-*.rec"))  # rendered once, kept for the next run
