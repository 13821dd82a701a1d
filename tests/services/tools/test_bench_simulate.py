"""``classroom bench simulate`` end to end (small sizes)."""

from __future__ import annotations

import argparse

from services.tools.bench_simulate import run_benchmark


def test_bench_reports_frame_rates():
    result = run_benchmark(
        argparse.Namespace(frames=2, runs=2, students=4, sizes="320x180", conditions="normal", seed=0)
    )
    r = result["results"]["320x180"]
    assert r["median_fps"] > 0 and len(r["runs_fps"]) == 2
    assert r["min_fps"] <= r["median_fps"] <= r["max_fps"]
