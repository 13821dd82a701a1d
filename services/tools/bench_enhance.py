"""``classroom bench enhance``: section 3.2 quality against the baselines, and its speed.

Quality, on low-light frame sets with clean references:
- colour: PSNR, SSIM and EPI of each method against the well-lit reference (and the
  unprocessed input), with each method's median colour-only time at the analysis size;
- depth, in the colour camera's view: MAE / RMSE over the holes (pixels of the depth
  sensor's view where the unrestored registered depth is missing and the reference has
  depth) for no restoration, the conventional median filter and section 3.2;
- thermal: RMS and local contrast of the linear stretch (conventional) and of CLAHE.

Data: ``--data sim:small`` (default) takes the SmartClass-Sim test split's windows whose
conditions include low light, ``--frames`` frame sets from them; any folder in the data-set
format works too. ``--data synthetic`` uses scikit-image photographs darkened synthetically
and ray-cast board scenes (labelled as such in the output).

Speed: median milliseconds per frame set (all three modalities, ``Enhancer.process``) at
640×360 and 1920×1080 analysis size on the CPU, wall clock and the process's CPU time per
frame set (every thread, OpenCV's included), with the machine's load average beside them;
frame sets per second with ``--threads`` frame sets in flight (the enhancement service's
worker threads), OpenCV's per-call thread pool set as the service sets it
(``pipeline.opencv_threads``), and with as many single-threaded processes (replicas of the
service in one consumer group, which is how the suite scales on one host: no GIL shared);
each throughput is the median of ``--blocks`` blocks; the service's worker path (wire bytes in,
decode, enhance, encode, bytes out) in worker threads against worker processes, side by side
(``service_speed``); and the torch path
(``models.networks.enhancement.TrimodalEnhancer``) batched on CUDA when a GPU is there.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts without numpy/cv2
    import numpy as np

    from services.common.calibration import CameraCalibration

SIZES = ((640, 360), (1920, 1080))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="sim:small", help="sim:<preset>, a data-set folder, or 'synthetic'")
    parser.add_argument("--split", default="test", help="split whose low-light windows are measured")
    parser.add_argument("--frames", type=int, default=24, help="low-light frame sets for the quality table")
    parser.add_argument("--frames-per-window", type=int, default=2, help="frame sets taken from each window")
    parser.add_argument(
        "--repeats", type=int, default=100, help="timed frame sets per speed figure (and per block)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="frame sets in flight for the throughput figure"
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=5,
        help="timed blocks of --repeats frame sets; throughput is their median",
    )
    parser.add_argument(
        "--sizes", default="640x360,1920x1080", help="analysis sizes timed, WxH comma separated"
    )
    parser.add_argument(
        "--device", default="auto", help="torch path device: auto (CUDA if present), cuda, cpu, none"
    )
    parser.add_argument("--batch", type=int, default=32, help="torch path batch size")
    parser.add_argument(
        "--params", default=None, help="EnhancementParams JSON (default: the documented defaults)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--images", default=None, help="write before/after images of the first frame set into this folder"
    )


@dataclass
class FrameSample:
    """One low-light frame set with its references (colour view at analysis size)."""

    rgb: np.ndarray
    depth_mm: np.ndarray
    thermal_c: np.ndarray
    reference_rgb: np.ndarray
    reference_depth_mm: np.ndarray
    calibration: CameraCalibration
    analysis_size: tuple[int, int]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)

    def render(self) -> str:
        cells = [[_fmt(v) for v in row] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(self.columns)]
        line = "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)) + " |"
        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
        return "\n".join([f"\n{self.title}", line, rule, *body])


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else (f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}")
    return str(value)


# --- data ------------------------------------------------------------------------------------


def _low_light_windows(dataset, split: str):
    refs = dataset.windows(split)
    plan = getattr(dataset, "plan", None)
    for ref in refs:
        if plan is not None:
            if plan(split, int(ref.clip_id.rsplit("-", 1)[1])).conditions.low_light:
                yield ref
        elif any(
            "low_light" in (a.conditions if hasattr(a, "conditions") else a.get("conditions", ()))
            for a in dataset.load_annotations(ref)[:1]
        ):
            yield ref


def load_dataset_samples(spec: str, split: str, frames: int, per_window: int) -> list[FrameSample]:
    from services.dataset.api import open_dataset

    dataset = open_dataset(spec)
    samples: list[FrameSample] = []
    for ref in _low_light_windows(dataset, split):
        window = dataset.load_window(ref, references=True)
        if not window.references:
            continue
        size = (window.camera.analysis_width, window.camera.analysis_height)
        step = max(1, len(window.frames) // per_window)
        for index in range(0, len(window.frames), step)[:per_window]:
            frame, reference = window.frames[index], window.references[index]
            samples.append(
                FrameSample(
                    frame.rgb,
                    frame.depth_mm,
                    frame.thermal_c,
                    reference.rgb,
                    reference.depth_mm,
                    window.calibration,
                    size,
                )
            )
            if len(samples) >= frames:
                return samples
    if not samples:
        raise SystemExit(f"{spec}: no low-light window with references in split {split!r}")
    return samples


def synthetic_samples(frames: int) -> list[FrameSample]:
    """scikit-image photographs as colour (darkened), ray-cast boards for depth and thermal."""
    import cv2
    import numpy as np
    import skimage.data

    from services.enhancement import synthetic

    calibration = synthetic.example_calibration()
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    samples = []
    for i in range(frames):
        rng = np.random.default_rng(i)
        photo = np.ascontiguousarray(getattr(skimage.data, names[i % len(names)])()[..., ::-1])
        scene = synthetic.render_box_scene(calibration, photo, synthetic.random_boards(rng))
        clean = cv2.resize(photo, (640, 360), interpolation=cv2.INTER_AREA)
        exposure, falloff = (0.05, 0.0) if i % 2 == 0 else (0.12, 0.5)
        samples.append(
            FrameSample(
                synthetic.low_light(clean, rng, exposure=exposure, falloff=falloff),
                synthetic.depth_holes(scene.depth_mm, rng),
                synthetic.low_thermal_contrast(scene.thermal_c, rng),
                clean,
                np.rint(scene.colour_depth_mm).astype(np.uint16),
                calibration,
                (640, 360),
            )
        )
    return samples


# --- quality ---------------------------------------------------------------------------------


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def colour_quality(samples: list[FrameSample], params) -> Table:
    from services.enhancement import baselines, metrics, retinex
    from services.enhancement.alignment import resize_to

    methods: dict[str, Callable] = {
        "input (no enhancement)": lambda x: x,
        "CLAHE on luminance": baselines.clahe_luminance,
        "single-scale Retinex": baselines.single_scale_retinex,
        "MSRCR": baselines.msrcr,
        "conventional (global HE)": baselines.histogram_equalise_luma,
        "GF Retinex, one fixed scale (w/o multi-scale weights)": lambda x: retinex.fixed_scale_retinex(
            x, params
        ),
        "proposed (multi-scale weighted GF Retinex)": lambda x: retinex.enhance_low_light(x, params),
    }
    table = Table(
        f"Colour, {len(samples)} low-light frame sets vs well-lit references",
        ["method", "PSNR dB", "SSIM", "EPI", "ms/frame (colour only)"],
    )
    for name, method in methods.items():
        scores = []
        for s in samples:
            colour = resize_to(s.rgb, s.analysis_size)
            out = method(colour)
            scores.append(
                (
                    metrics.psnr(out, s.reference_rgb),
                    metrics.ssim(out, s.reference_rgb),
                    metrics.edge_preservation_index(out, s.reference_rgb),
                )
            )
        colour = resize_to(samples[0].rgb, samples[0].analysis_size)
        ms = _median_ms(functools.partial(method, colour), 15)
        table.rows.append([name, *(statistics.fmean(x[i] for x in scores) for i in range(3)), ms])
    return table


def register_unrestored(depth_mm, sample: FrameSample):
    """Registration without restoration: splat, close the splat's sampling gaps, nothing else."""
    import numpy as np

    from services.enhancement.alignment import registration_tables, resize_to, splat_depth
    from services.enhancement.depth import close_small_holes

    tables = registration_tables(sample.calibration, sample.analysis_size)
    grid, _ = splat_depth(depth_mm.astype(np.float32), depth_mm > 0, tables)
    grid = close_small_holes(grid, (grid <= 0) & tables.depth_field_of_view_grid, 3)
    return resize_to(grid, sample.analysis_size, nearest=True), tables


def depth_and_thermal_quality(samples: list[FrameSample], params) -> tuple[Table, Table]:
    import numpy as np

    from services.enhancement import baselines, metrics, thermal
    from services.enhancement.pipeline import Enhancer

    enhancer = Enhancer(params)

    # per frame set: (MAE, RMSE, hole share) of each depth method, (RMS, local) contrast of each thermal view
    rows: dict[str, list[tuple[float, float, float]]] = {
        "no restoration (registered raw)": [],
        "conventional (5x5 median)": [],
        "proposed (sec. 3.2)": [],
    }
    contrast: dict[str, list[tuple[float, float]]] = {
        "input, linear min-max stretch (conventional)": [],
        "proposed, CLAHE": [],
    }
    for s in samples:
        raw, tables = register_unrestored(s.depth_mm, s)
        reference = s.reference_depth_mm.astype(np.float32)
        holes = (raw <= 0) & tables.depth_field_of_view & (reference > 0)
        median, _ = register_unrestored(baselines.median_depth(s.depth_mm), s)
        guide = np.zeros(s.analysis_size[::-1], np.float32)
        proposed, _, _ = enhancer.register_depth(s.depth_mm, s.calibration, s.analysis_size, guide)
        for name, depth in zip(rows, (raw, median, proposed), strict=True):
            rows[name].append((*metrics.depth_hole_errors(depth, reference, holes), float(holes.mean())))
        linear = thermal.linear_stretch(s.thermal_c)
        equalised, _ = thermal.equalise_thermal(s.thermal_c, params)
        for name, view in zip(contrast, (linear, equalised), strict=True):
            contrast[name].append((metrics.rms_contrast(view), metrics.local_contrast(view)))
    depth_table = Table(
        "Depth in the colour view: error over the holes (mm)",
        ["method", "MAE", "RMSE", "hole share of frame"],
    )
    for name, values in rows.items():
        finite = [v for v in values if v[0] == v[0]]
        depth_table.rows.append([name, *(statistics.fmean(v[i] for v in finite) for i in range(3))])
    thermal_table = Table("Thermal contrast (sensor frame)", ["view", "RMS contrast", "local contrast (7x7)"])
    for name, pairs in contrast.items():
        thermal_table.rows.append(
            [name, statistics.fmean(v[0] for v in pairs), statistics.fmean(v[1] for v in pairs)]
        )
    return depth_table, thermal_table


# --- speed -----------------------------------------------------------------------------------


def _frame_set_at(sample: FrameSample, size: tuple[int, int]):
    """The sample's frame set with its colour resampled to ``size`` and the calibration to match."""
    import cv2

    from services.common.frames import FrameSet

    rgb = sample.rgb
    calibration = sample.calibration
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        calibration = calibration.model_copy(update={"rgb": calibration.rgb.scaled(*size)})
    return FrameSet(rgb, sample.depth_mm, sample.thermal_c, 0, 0, 0), calibration


def _replica(frame_sets, size, params, repeats: int, blocks: int, barrier, durations) -> None:
    """One single-threaded replica: warm up, then ``blocks`` timed blocks started together."""
    import cv2

    from services.enhancement.pipeline import Enhancer

    cv2.setNumThreads(1)
    enhancer = Enhancer(params)

    def run_block() -> float:
        start = time.perf_counter()
        for k in range(repeats):
            frame_set, calibration = frame_sets[k % len(frame_sets)]
            enhancer.process(frame_set, calibration, size)
        return time.perf_counter() - start

    run_block()  # warm
    for _ in range(blocks):
        barrier.wait(timeout=600)
        durations.put(run_block())


def replica_throughput(frame_sets, size, params, processes: int, repeats: int, blocks: int) -> list[float]:
    """Frame sets/s of ``processes`` replicas side by side, per block (slowest replica's time)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    barrier, durations = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_replica, args=(frame_sets, size, params, repeats, blocks, barrier, durations))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        times = [durations.get(timeout=600) for _ in range(processes * blocks)]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
    # Blocks start together (barrier); each block's figure is set by its slowest replica.
    return [processes * repeats / max(times[b * processes : (b + 1) * processes]) for b in range(blocks)]


def cpu_speed(
    samples: list[FrameSample], params, sizes, repeats: int, threads: int, blocks: int = 5
) -> Table:
    """Median wall and CPU time of one frame set, and throughput with ``threads`` in flight.

    Throughput is the median over ``blocks`` blocks of ``repeats`` frame sets each, on one
    pool created (and warmed by a block) before timing: a single short pass measured pool
    start-up and the machine's neighbours as much as the enhancement. The blocks' range is
    reported beside the median.
    """
    import cv2

    from services.enhancement.pipeline import Enhancer, opencv_threads

    enhancer = Enhancer(params)
    previous_threads = cv2.getNumThreads()
    cv2_threads = opencv_threads(threads)
    cv2.setNumThreads(cv2_threads)  # as the service does for `threads` workers
    table = Table(
        f"Speed, all three modalities per frame set (Enhancer.process, CPU, {cv2_threads} OpenCV thread(s); "
        f"throughput: median of {blocks} blocks of {repeats} frame sets)",
        [
            "analysis size",
            "median ms (wall)",
            "ms CPU per frame set",
            "frame sets/s (1 thread)",
            f"frame sets/s ({threads} threads)",
            f"{threads} threads, blocks' range",
            f"frame sets/s ({threads} processes)",
            f"{threads} processes, blocks' range",
            "load avg (1 min)",
        ],
    )
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for size in sizes:
                frame_sets = [_frame_set_at(s, size) for s in samples[: min(len(samples), 8)]]
                table.rows.append(
                    _cpu_speed_row(enhancer, pool, frame_sets, params, size, repeats, threads, blocks)
                )
    finally:
        cv2.setNumThreads(previous_threads)
    return table


def _cpu_speed_row(
    enhancer, pool: ThreadPoolExecutor, frame_sets, params, size, repeats: int, threads: int, blocks: int
) -> list:
    """One analysis size: frame sets one at a time (wall and CPU time), then blocks of them through
    the warmed thread pool and through ``threads`` replica processes."""
    jobs = [(*frame_sets[k % len(frame_sets)], size) for k in range(repeats)]

    def block() -> float:
        start = time.perf_counter()
        list(pool.map(lambda job: enhancer.process(*job), jobs))
        return repeats / (time.perf_counter() - start)

    block()  # warm: tables, allocator and the pool's threads
    wall = []
    start_cpu = time.process_time()
    for i in range(repeats):
        fs, cal = frame_sets[i % len(frame_sets)]
        start = time.perf_counter()
        enhancer.process(fs, cal, size)
        wall.append(time.perf_counter() - start)
    cpu_ms = (time.process_time() - start_cpu) / repeats * 1e3
    rates = [block() for _ in range(max(1, blocks))]
    replicas = replica_throughput(frame_sets, size, params, threads, repeats, max(1, blocks))
    median_wall = statistics.median(wall) * 1e3
    return [
        f"{size[0]}x{size[1]}",
        median_wall,
        cpu_ms,
        1e3 / median_wall,
        statistics.median(rates),
        f"{min(rates):.1f}-{max(rates):.1f}",
        statistics.median(replicas),
        f"{min(replicas):.1f}-{max(replicas):.1f}",
        os.getloadavg()[0],
    ]


def _wire_frame_sets(samples: list[FrameSample], size: tuple[int, int]):
    """(Campus, [FrameSet wire bytes]): the samples as a capture service publishes them, one camera each."""
    from services.common import codecs
    from services.common.campus import Camera, Campus, Classroom
    from services.common.pb.classroom.v1 import frames_pb2

    cameras, payloads = [], []
    for i, sample in enumerate(samples):
        frame_set, calibration = _frame_set_at(sample, size)
        cameras.append(
            Camera(id=f"cam-{i}", analysis_width=size[0], analysis_height=size[1], calibration=calibration)
        )
        ts = 1_767_000_000_000_000 + i * 66_666
        message = frames_pb2.FrameSet(
            classroom_id="bench",
            session_id="bench",
            camera_id=f"cam-{i}",
            sequence=i,
            capture_ts_us=ts,
            rgb=codecs.encode_rgb(frame_set.rgb, capture_ts_us=ts),
            depth=codecs.encode_depth(frame_set.depth_mm, capture_ts_us=ts),
            thermal=codecs.encode_thermal(frame_set.thermal_c, capture_ts_us=ts),
            frame_rate=15.0,
        )
        payloads.append(message.SerializeToString())
    return Campus(classrooms=(Classroom(id="bench", cameras=tuple(cameras)),)), payloads


def service_speed(
    samples: list[FrameSample], params, sizes, repeats: int, workers: int, blocks: int
) -> Table:
    """The enhancement service's worker path (wire bytes in: decode, section 3.2, encode; bytes out).

    ``workers`` threads (``ENHANCE_EXECUTOR=thread``) against ``workers`` worker processes
    (``process``, the default), blocks alternating in one run so both see the same machine;
    the ratio is the median of each round's processes/threads ratio.
    """
    import cv2

    from services.enhancement.pipeline import opencv_threads

    table = Table(
        f"Service worker path (wire bytes in, decode + Enhancer.process + encode, bytes out), "
        f"{workers} workers; median of {blocks} alternating blocks of {repeats} frame sets",
        [
            "analysis size",
            "frame sets/s (threads)",
            "threads, blocks' range",
            "frame sets/s (processes)",
            "processes, blocks' range",
            "processes / threads",
        ],
    )
    previous_threads = cv2.getNumThreads()
    cv2.setNumThreads(opencv_threads(workers))
    try:
        for size in sizes:
            by_threads, by_processes = _threads_against_processes(
                samples, params, size, repeats, workers, blocks
            )
            ratios = [p / t for p, t in zip(by_processes, by_threads, strict=True)]
            table.rows.append(
                [
                    f"{size[0]}x{size[1]}",
                    statistics.median(by_threads),
                    f"{min(by_threads):.1f}-{max(by_threads):.1f}",
                    statistics.median(by_processes),
                    f"{min(by_processes):.1f}-{max(by_processes):.1f}",
                    statistics.median(ratios),
                ]
            )
    finally:
        cv2.setNumThreads(previous_threads)
    return table


def _threads_against_processes(
    samples: list[FrameSample], params, size, repeats: int, workers: int, blocks: int
) -> tuple[list[float], list[float]]:
    """Frame sets/s of each block through ``workers`` threads and through ``workers`` processes,
    the two alternating; both pools started and warmed before the first block."""
    from services.enhancement.service import FrameSetEnhancer, enhance_in_worker, process_pool, worker_pid

    campus, payloads = _wire_frame_sets(samples[: min(len(samples), 8)], size)
    enhancer = FrameSetEnhancer(campus, params, jpeg_quality=90)
    jobs = [payloads[k % len(payloads)] for k in range(repeats)]
    with (
        ThreadPoolExecutor(max_workers=workers) as threads,
        process_pool(enhancer, workers) as processes,
    ):
        [f.result() for f in [processes.submit(worker_pid) for _ in range(workers)]]  # all started

        def rate(pool, fn) -> float:
            start = time.perf_counter()
            list(pool.map(fn, jobs))
            return repeats / (time.perf_counter() - start)

        rate(threads, enhancer)  # warm: tables, allocator
        rate(processes, enhance_in_worker)
        by_threads, by_processes = [], []
        for _ in range(max(1, blocks)):
            by_threads.append(rate(threads, enhancer))
            by_processes.append(rate(processes, enhance_in_worker))
    return by_threads, by_processes


def torch_speed(
    samples: list[FrameSample], params, sizes, device_name: str, batch: int, repeats: int
) -> Table | None:
    import numpy as np
    import torch

    from models.networks.enhancement import TrimodalEnhancer

    if device_name == "none":
        return None
    if device_name == "auto":
        if not torch.cuda.is_available():
            return None
        device_name = "cuda"
    device = torch.device(device_name)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    table = Table(
        f"Speed, torch path batched ({name}, batch {batch})",
        ["analysis size", "ms per batch", "frame sets/s"],
    )
    for size in sizes:
        fs, calibration = _frame_set_at(samples[0], size)
        module = TrimodalEnhancer(calibration, size, params).to(device).eval()
        rgb = (
            torch.from_numpy(fs.rgb).permute(2, 0, 1)[None].float().div(255).repeat(batch, 1, 1, 1).to(device)
        )
        depth = torch.from_numpy(fs.depth_mm.astype(np.float32))[None, None].repeat(batch, 1, 1, 1).to(device)
        heat = torch.from_numpy(fs.thermal_c)[None, None].repeat(batch, 1, 1, 1).to(device)

        def step(m=module, r=rgb, d=depth, t=heat):
            with torch.inference_mode():
                m(r, d, t)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        step()
        ms = _median_ms(step, max(3, repeats // 4))
        table.rows.append([f"{size[0]}x{size[1]}", ms, batch * 1e3 / ms])
    return table


def _labelled(image, text: str):
    import cv2

    out = image.copy()
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_images(sample: FrameSample, params, folder: str, source: str) -> list[str]:
    """enhancement-rgb.png, enhancement-depth.png, enhancement-thermal.png: before | after | reference."""
    from pathlib import Path

    import cv2
    import numpy as np

    from services.common.frames import FrameSet
    from services.enhancement.alignment import resize_to
    from services.enhancement.pipeline import Enhancer
    from services.enhancement.thermal import linear_stretch, pseudo_colour

    out = Enhancer(params).process(
        FrameSet(sample.rgb, sample.depth_mm, sample.thermal_c, 0, 0, 0),
        sample.calibration,
        sample.analysis_size,
    )
    raw, _ = register_unrestored(sample.depth_mm, sample)
    top = max(float(sample.reference_depth_mm.max()), 1.0)

    def depth_view(d):
        view = cv2.applyColorMap(np.clip(d / top * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        view[d <= 0] = 0
        return view

    size = sample.analysis_size
    thermal_in = resize_to(pseudo_colour(linear_stretch(sample.thermal_c)), size)
    tag = f"[{source}]"
    panels = {
        "enhancement-rgb.png": [
            _labelled(resize_to(sample.rgb, size), f"low-light input {tag}"),
            _labelled(out.rgb, "section 3.2 enhanced"),
            _labelled(sample.reference_rgb, "well-lit reference"),
        ],
        "enhancement-depth.png": [
            _labelled(depth_view(raw), f"raw depth registered, holes black {tag}"),
            _labelled(depth_view(out.depth_mm.astype(np.float32)), "restored + registered"),
            _labelled(depth_view(sample.reference_depth_mm.astype(np.float32)), "reference"),
        ],
        "enhancement-thermal.png": [
            _labelled(thermal_in, f"thermal, linear stretch (sensor view) {tag}"),
            _labelled(pseudo_colour(out.thermal_equalised), "CLAHE + pseudo-colour, registered"),
        ],
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    written = []
    for name, images in panels.items():
        path = str(Path(folder) / name)
        cv2.imwrite(path, np.hstack(images))
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    from services.enhancement.params import EnhancementParams

    params = EnhancementParams.from_json(args.params) if args.params else EnhancementParams()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    if args.data == "synthetic":
        samples = synthetic_samples(args.frames)
        source = (
            "SYNTHETIC: scikit-image photographs darkened (exposure, shot/read noise, gamma), ray-cast boards"
        )
    else:
        samples = load_dataset_samples(args.data, args.split, args.frames, args.frames_per_window)
        source = f"{args.data}, split {args.split}, windows with the low_light condition"
    print(f"classroom bench enhance: {len(samples)} frame sets from {source}")
    print(f"parameters: {args.params or 'documented defaults'}; machine: {os.cpu_count()} CPUs")
    tables = [colour_quality(samples, params), *depth_and_thermal_quality(samples, params)]
    tables.append(cpu_speed(samples, params, sizes, args.repeats, args.threads, args.blocks))
    tables.append(service_speed(samples, params, sizes, args.repeats, args.threads, args.blocks))
    gpu = torch_speed(samples, params, sizes, args.device, args.batch, args.repeats)
    if gpu is not None:
        tables.append(gpu)
    else:
        print("\n(torch path on a GPU: no CUDA device here; run with --device cuda where one is)")
    for table in tables:
        print(table.render(), flush=True)
    if args.images:
        for path in write_images(samples[0], params, args.images, source.split(":")[0]):
            print(f"wrote {path}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {"source": source, "tables": [t.__dict__ for t in tables]}, out, indent=2, default=float
            )
    return 0
