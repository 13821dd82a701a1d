"""`classroom bench pipeline`: the whole suite on this machine, measured.

For each classroom count: start the suite (embedded broker, model server, services, simulated
classrooms), let it warm up, then measure frame sets per second per stage and end to end, and
p50/p95 latency from capture (the frame set's publication) to the behaviour event's publication.
Two capture modes: paced at the camera rate (what a classroom sends) and unpaced (the most the
pipeline sustains). The Kafka data-plane figures of the chosen client next to kafka-python come
from services/tools/bench_kafka.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.cli.pipeline import PipelineRun


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classrooms", default="1,3", help="comma-separated classroom counts to run")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=25.0, help="seconds before measuring (joins, first windows)"
    )
    parser.add_argument(
        "--modes", default="paced,unpaced", help="paced (camera rate) and/or unpaced (flat out)"
    )
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--camera",
        choices=("simulator", "replay"),
        default="simulator",
        help="replay: each classroom rendered once and replayed at near-zero CPU (measures the suite, not the renderer)",
    )
    parser.add_argument("--skip-kafka", action="store_true", help="skip the client throughput comparison")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    parser.add_argument("--json-out", type=Path, default=None)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its live descendants (worker processes)."""
    children: dict[int, list[int]] = {}
    cpu_of: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            parent, cpu_of[int(entry.name)] = stat
            children.setdefault(parent, []).append(int(entry.name))
    out = {}
    for name, root in roots.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            total += cpu_of.get(pid, 0.0)
            stack += children.get(pid, [])
        out[name] = total
    return out


def _roots(run: PipelineRun) -> dict[str, int]:
    """Process names -> pids: each service child (capture agents summed under 'capture') and the broker."""
    roots = {c.name: c.process.pid for c in run.supervisor.children if c.alive()}
    if run.broker is not None and run.broker.process is not None:
        roots["broker"] = run.broker.process.pid
    return roots


def cpu_ms_per_classroom_second(
    before: dict[str, float], after: dict[str, float], seconds: float, classrooms: int
) -> dict[str, float]:
    """CPU milliseconds per classroom-second by process (capture agents summed), over the measured interval."""
    out: dict[str, float] = {}
    for name, used in after.items():
        key = "capture" if name.startswith("capture") else name
        out[key] = out.get(key, 0.0) + (used - before.get(name, 0.0))
    scale = 1000.0 / max(seconds, 1e-6) / max(classrooms, 1)
    result = {name: round(value * scale, 1) for name, value in sorted(out.items())}
    result["total"] = round(sum(out.values()) * scale, 1)
    return result


def measure(classrooms: int, *, paced: bool, args: argparse.Namespace) -> dict:
    from services.cli.pipeline import PipelineRun, RunOptions

    options = RunOptions(
        workdir=args.workdir / f"{classrooms}rooms-{'paced' if paced else 'unpaced'}-{time.time_ns()}",
        classrooms=classrooms,
        students=args.students,
        fps=args.fps,
        checkpoint=args.checkpoint,
        realtime=paced,
        partitions=max(2, classrooms),
        camera=args.camera,
        recordings_dir=args.workdir / "recordings",
    )
    run = PipelineRun(options)
    try:
        run.start()
        deadline = time.monotonic() + args.warmup
        while time.monotonic() < deadline:
            time.sleep(0.5)
            run.check_children()
        start_counts = run.counters()
        assert run.tap is not None
        run.tap.latencies_s.clear()
        run.tap.received_at.clear()
        run.tap.per_student.clear()
        roots = _roots(run)
        cpu_before = tree_cpu_seconds(roots)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            time.sleep(0.5)
            run.check_children()
        cpu_after = tree_cpu_seconds(roots)
        end_counts = run.counters()
        seconds = time.monotonic() - started
        summary = run.summary(start_counts, end_counts, seconds)
        rates = sorted(n / seconds for n in run.tap.per_student.values())
        missing = classrooms * args.students - len(rates)
        rates = [0.0] * max(0, missing) + rates
        # one event per student per hop (1 s) is full coverage of the 8 fps slots
        summary["events_per_student_per_s"] = {
            "min": round(rates[0], 2) if rates else 0.0,
            "median": round(statistics.median(rates), 2) if rates else 0.0,
            "students": len(rates),
        }
        summary["cpu_ms_per_classroom_second"] = cpu_ms_per_classroom_second(
            cpu_before, cpu_after, seconds, classrooms
        )
    finally:
        run.stop()
    summary["mode"] = "paced" if paced else "unpaced"
    per_room = summary["stages"]["fusion"]["per_s"] / classrooms
    summary["end_to_end_frame_sets_per_s_per_classroom"] = round(per_room, 2)
    return summary


def run(args: argparse.Namespace) -> int:
    results: dict = {"pipeline": []}
    for count in [int(c) for c in args.classrooms.split(",") if c]:
        for mode in args.modes.split(","):
            summary = measure(count, paced=mode == "paced", args=args)
            results["pipeline"].append(summary)
            print_pipeline(summary)
    if not args.skip_kafka:
        from services.tools.bench_kafka import print_result, run_benchmark

        results["kafka"] = run_benchmark()
        print_result(results["kafka"])
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0


def print_pipeline(summary: dict) -> None:
    latency = summary["latency_capture_to_event_s"]
    print(
        f"\n{summary['classrooms']} classroom(s) x {summary['students_per_classroom']} students, "
        f"capture {summary['mode']}, measured {summary['measured_seconds']} s"
    )
    print(f"  {'stage':<12}{'frame sets/s':>14}{'dead letters':>14}")
    for stage, figures in summary["stages"].items():
        unit = " (events/s)" if stage in ("recognition", "store") else ""
        print(f"  {stage:<12}{figures['per_s']:>14.2f}{figures['dead_letters']:>14}{unit}")
    print(
        f"  end to end (observations/s per classroom): {summary['end_to_end_frame_sets_per_s_per_classroom']}"
    )
    print(
        f"  capture -> behaviour event latency: p50 {latency['p50']} s, p95 {latency['p95']} s "
        f"over {latency['n']} events (window {latency['window_s']} s)"
    )
    print(f"  model: {', '.join(summary['model_versions'])}")
    shed = {stage: f["shed"] for stage, f in summary["stages"].items() if f.get("shed")}
    print(f"  frame sets shed as too old: {shed or 'none'}")
    coverage = summary.get("events_per_student_per_s")
    if coverage:
        print(
            f"  events per student per second (1.0 = every slot): min {coverage['min']}, "
            f"median {coverage['median']} over {coverage['students']} students"
        )
    cpu = summary.get("cpu_ms_per_classroom_second")
    if cpu:
        print("  CPU ms per classroom-second: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
