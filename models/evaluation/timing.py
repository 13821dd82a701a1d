"""Medians of timed calls, wall-clock and process CPU: what the model benches
(models/evaluation/bench.py) and the GPU sweep (models/evaluation/gpu_sweep.py) time with.

The standard library alone, so that both benches, the torch-only sweep included, can use it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_medians(
    calls: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 2,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, tuple[float, float]]:
    """Per call its median wall-clock and median process CPU seconds, the calls taken in turn
    (a, b, a, b, ...) so that the load of a shared machine weighs on each alike. With one torch
    thread the CPU time is what the call costs, without the time other processes took."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    sync()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in calls}


def median_seconds(
    fn: Callable[[], object], repeats: int, warmup: int = 2, sync: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of one call (``interleaved_medians``)."""
    return interleaved_medians({"call": fn}, repeats, warmup, sync)["call"]
