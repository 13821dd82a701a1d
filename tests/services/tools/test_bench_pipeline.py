"""`classroom bench pipeline --camera replay`: each classroom rendered once, then replayed by its
capture agent; the suite downstream runs as with a live camera."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_cpu_is_counted_over_a_process_and_its_children():
    import os
    import time

    from services.tools.bench_pipeline import cpu_ms_per_classroom_second, tree_cpu_seconds

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(30)",
        ]
    )
    try:
        time.sleep(1.5)
        used = tree_cpu_seconds({"me": os.getpid(), "child": child.pid})
        assert used["child"] >= 0.3  # the child burnt 0.4 s
        assert used["me"] >= used["child"]  # a process's figure includes its live children
    finally:
        child.kill()
        child.wait()
    per_second = cpu_ms_per_classroom_second(
        {"capture-101": 1.0, "capture-102": 2.0, "fusion": 0.0},
        {"capture-101": 2.0, "capture-102": 4.0, "fusion": 0.5},
        seconds=10.0,
        classrooms=2,
    )
    # capture agents summed: 3 s over 10 s and 2 classrooms = 150 ms per classroom-second
    assert per_second == {"capture": 150.0, "fusion": 25.0, "total": 175.0}


@pytest.mark.slow
@pytest.mark.integration
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
    # what one classroom costs: every process's CPU, shed frame sets per stage, events per student
    cpu = run["cpu_ms_per_classroom_second"]
    assert {"capture", "enhancement", "fusion", "recognition", "store", "modelserver", "broker"} <= set(cpu)
    assert cpu["total"] == pytest.approx(sum(v for k, v in cpu.items() if k != "total"), abs=0.5)
    assert cpu["modelserver"] > 0 and cpu["enhancement"] > 0
    assert all("shed" in stage for stage in run["stages"].values())
    coverage = run["events_per_student_per_s"]
    assert coverage["students"] == 2 and 0 < coverage["min"] <= coverage["median"]
