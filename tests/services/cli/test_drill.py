"""The fault drill: a paused service, a killed model server and a database that refuses
connections cost latency, never an event (issue 20). Recovery times are figures of
`classroom bench drill` (docs/benchmarks.md), not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.postgres]


def drill(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.cli.main", "bench", "drill", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_no_event_is_lost_or_duplicated_through_the_faults(postgres_schema_url, tmp_path):
    done = drill(
        "--database-url",
        postgres_schema_url,
        "--workdir",
        str(tmp_path),
        "--warmup",
        "8",
        "--quiet",
        "8",
        "--json",
        timeout=540,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    logs = f"{result}\n{done.stderr[-2000:]}"
    assert result["drained"], logs
    assert result["rows_stored"] > 0 and result["lost"] == 0 and result["stored_not_published"] == 0, logs
    assert result["stored_twice"] == 0, logs
    assert result["coverage_min"] >= 0.99, logs
    # a window that is missing shows in a metric
    assert result["missing_windows"] <= result["windows_not_emitted_metric"], logs
    # work resumed after each dependency came back (how fast: the benchmark's figure)
    assert all(seconds is not None for seconds in result["recovery_s"].values()), logs
    assert result["latency_capture_to_event"]["after faults"]["n"] > 0, logs


def test_the_drill_needs_postgresql(tmp_path):
    done = drill("--database-url", f"sqlite:///{tmp_path / 'x.db'}", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "classroom bench drill: --database-url must be PostgreSQL (the outage is a TCP proxy)"
    )
