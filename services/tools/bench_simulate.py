"""``classroom bench simulate``: trimodal frame sets per second of the simulator, one process.

Renders one camera (colour + depth + thermal with ground truth, no references, no
encoding) of a classroom with ``--students`` people, for each ``--sizes`` colour
resolution, and reports the median over ``--runs`` runs of ``--frames`` frame sets.
Wall-clock time is what counts; CPU time is printed too because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from services.simulator.classroom import room_for
from services.simulator.config import Conditions, SimConfig, parse_conditions
from services.simulator.session import build_live_scene


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60, help="frame sets per run (default 60)")
    parser.add_argument(
        "--runs", type=int, default=5, help="runs per size; the median is reported (default 5)"
    )
    parser.add_argument("--students", type=int, default=20, help="students in the classroom (default 20)")
    parser.add_argument(
        "--sizes",
        default="640x360,1920x1080",
        help="colour resolutions, comma separated (default 640x360,1920x1080)",
    )
    parser.add_argument("--conditions", default="normal", help="condition set (normal, low_light, hard, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_benchmark(args: argparse.Namespace) -> dict:
    """Figures for docs/benchmarks.md: median frame sets per second for each colour size."""
    frames = int(getattr(args, "frames", 60))
    runs = int(getattr(args, "runs", 5))
    students = int(getattr(args, "students", 20))
    sizes = [_size(s) for s in str(getattr(args, "sizes", "640x360,1920x1080")).split(",") if s.strip()]
    conditions = parse_conditions(getattr(args, "conditions", "normal")) or Conditions()
    seed = int(getattr(args, "seed", 0))
    if frames < 1 or runs < 1:
        raise ValueError("frames and runs must be at least 1")
    results = {}
    for size in sizes:
        scene = build_live_scene(
            seed=seed,
            students=students,
            config=SimConfig(rgb_size=size),
            conditions=conditions,
            room=room_for(students),
        )
        for k in range(3):  # warm-up: noise banks, ray maps, static rasters
            scene.render(k / 15.0, np.random.default_rng(k))
        wall, cpu = [], []
        for r in range(runs):
            w0, c0 = time.perf_counter(), time.process_time()
            for k in range(frames):
                scene.render(1.0 + (r * frames + k) / 15.0, np.random.default_rng([r, k]))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        per_run = [frames / w for w in wall]
        results[f"{size[0]}x{size[1]}"] = {
            "median_fps": round(statistics.median(per_run), 2),
            "min_fps": round(min(per_run), 2),
            "max_fps": round(max(per_run), 2),
            "median_cpu_ms_per_frame": round(statistics.median(cpu) / frames * 1000.0, 2),
            "runs_fps": [round(v, 2) for v in per_run],
        }
    return {
        "benchmark": "simulate",
        "students": students,
        "frames_per_run": frames,
        "runs": runs,
        "conditions": conditions.tags or ["normal"],
        "modalities": "rgb+depth+thermal with ground truth, one camera, one process",
        "results": results,
    }


def run(args: argparse.Namespace) -> int:
    result = run_benchmark(args)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=1))
        return 0
    print(f"SmartClass-Sim: {result['students']} students, {result['modalities']}")
    for size, r in result["results"].items():
        print(
            f"  {size:>9}: {r['median_fps']:6.1f} frame sets/s median of {result['runs']} runs x "
            f"{result['frames_per_run']} (min {r['min_fps']:.1f}, max {r['max_fps']:.1f}; "
            f"{r['median_cpu_ms_per_frame']:.1f} ms CPU per frame set)"
        )
    return 0
