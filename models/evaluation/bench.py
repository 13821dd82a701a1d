"""``classroom bench models``: model-server throughput against batch size, CPU and (when present) CUDA.

For fuse(): frame sets per second for batches of 1..N frame sets of ``--seats`` students at
640x360 (synthetic frames: the cost does not depend on the pixel values), split into crop
extraction and network. For recognise(): windows per second and ms per window for batches
of B students. Medians over ``--repeats`` timed runs after warm-up; prints a table (and
JSON with ``--json``). Timings on a shared machine are noisy: medians, and say the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path


def _median_seconds(
    fn: Callable[[], object], repeats: int, warmup: int = 2, sync: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds per call. With one torch thread the CPU
    time is what the call costs, without the time other processes on a shared machine took."""
    for _ in range(warmup):
        fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def synthetic_frame_set(width: int, height: int, seats: int, seed: int = 0):
    import numpy as np

    from models.serving.inference import FusionInput

    rng = np.random.default_rng(seed)
    cols = max(1, round((seats * width / height) ** 0.5))
    rows = -(-seats // cols)
    w, h = width / cols, height / rows
    boxes = np.array(
        [[c * w + 2, r * h + 2, (c + 1) * w - 2, (r + 1) * h - 2] for r in range(rows) for c in range(cols)][
            :seats
        ],
        dtype=np.float32,
    )
    return FusionInput(
        rgb=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        depth_mm=rng.integers(800, 4000, (height, width), dtype=np.uint16),
        thermal_c=rng.uniform(20.0, 36.0, (height, width)).astype(np.float32),
        thermal_equalised=rng.integers(0, 256, (height, width), dtype=np.uint8),
        seats=boxes,
    )


def bench_device(engine, args) -> dict:
    import numpy as np
    import torch

    from models.data.crops import extract_student_crops

    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    frame = synthetic_frame_set(args.width, args.height, args.seats)
    result: dict = {"device": str(engine.device), "fuse": [], "recognise": []}
    crop_s, _ = _median_seconds(
        lambda: extract_student_crops(
            [(frame.rgb, frame.depth_mm, frame.thermal_c, frame.thermal_equalised)],
            [frame.seats],
            crop_size=engine.info.crop_size,
        ),
        args.repeats,
    )
    result["crop_ms_per_frame_set"] = crop_s * 1e3
    for batch in args.fuse_batches:
        frames = [frame] * batch
        seconds, cpu = _median_seconds(partial(engine.fuse, frames), args.repeats, sync=sync)
        result["fuse"].append(
            {
                "frame_sets": batch,
                "ms": seconds * 1e3,
                "cpu_ms_per_frame_set": cpu * 1e3 / batch,
                "frame_sets_per_s": batch / seconds,
                "ms_per_frame_set": seconds * 1e3 / batch,
            }
        )
    t, c = engine.info.window_frames, engine.info.feature_dim
    rng = np.random.default_rng(0)
    for batch in args.recognise_batches:
        kp = rng.random((batch, t, 17, 3), dtype=np.float32)
        nf = rng.standard_normal((batch, t, 17, c)).astype(np.float16)
        seconds, cpu = _median_seconds(partial(engine.recognise, kp, nf), args.repeats, sync=sync)
        result["recognise"].append(
            {
                "windows": batch,
                "ms": seconds * 1e3,
                "cpu_ms_per_window": cpu * 1e3 / batch,
                "windows_per_s": batch / seconds,
                "ms_per_window": seconds * 1e3 / batch,
            }
        )
    return result


def bench_training_step(
    method: str, crop_size: int, windows: int, frames: int, repeats: int, with_enhancement: bool = False
) -> dict:
    """Seconds per optimiser step of end-to-end training (forward, multi-task loss, backward, AdamW)
    on procedural toy windows of the given shape; the method's torch enhancement only when asked
    (it needs models/networks/enhancement.py), with a random frozen phi for the perceptual loss."""
    import torch

    from models.data.toydata import ToyWindowDataset
    from models.data.windows import collate
    from models.networks.perceptual import PerceptualNet
    from models.networks.registry import build_pipeline, method_config
    from models.training.losses import LossConfig, MultiTaskLoss

    data = ToyWindowDataset(windows, window_frames=frames, crop_size=crop_size)
    batch = collate([data[i] for i in range(windows)])
    torch.manual_seed(0)
    overrides = {} if with_enhancement else {"enhancement": "identity"}
    model = build_pipeline(method_config(method, crop_size=crop_size, **overrides)).train()
    criterion = MultiTaskLoss(
        LossConfig(**model.config["loss"]), PerceptualNet() if with_enhancement else None
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)

    def step() -> None:
        terms = criterion(model(batch["crops"]), batch)
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        optimiser.step()

    seconds, cpu = _median_seconds(step, repeats, warmup=1)
    return {
        "method": method,
        "crop_size": crop_size,
        "windows": windows,
        "frames": frames,
        "enhancement": model.config["enhancement"],
        "s_per_step": seconds,
        "cpu_s_per_step": cpu,
        "windows_per_s": windows / seconds,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="model.pt (default: untrained weights of --method)")
    parser.add_argument("--method", default="proposed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the CPU budget is for 1)")
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument(
        "--crop-size",
        type=int,
        help="crop size of the untrained model (default 96; a checkpoint has its own)",
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fuse-batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4, 8])
    parser.add_argument(
        "--recognise-batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 20, 64, 256]
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--devices", default="cpu,cuda", help="devices to try, '' for none; cuda is skipped when absent"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--train-step",
        metavar="CROP",
        type=int,
        action="append",
        help="also time one training step at this crop size (repeatable; uses --threads, --method)",
    )
    parser.add_argument("--train-windows", type=int, default=8, help="windows per training step")
    parser.add_argument(
        "--train-enhancement", action="store_true", help="include the method's torch enhancement in the step"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from models.serving.inference import InferenceEngine

    torch.set_num_threads(args.threads)
    results = []
    for device in [d.strip() for d in args.devices.split(",") if d.strip()]:
        if device != "cpu" and not device.startswith("cuda"):
            print(f"{device}: not a device this benchmark knows (cpu, cuda[:N]), skipped")
            continue
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{device}: not available, skipped")
            continue
        engine = InferenceEngine(
            args.checkpoint,
            device=device,
            method=args.method,
            tune_allocator=True,
            untrained_config={"crop_size": args.crop_size} if args.crop_size else None,
        )
        r = bench_device(engine, args)
        r.update(
            model=engine.info.fusion_version, trained=engine.info.trained, crop_size=engine.info.crop_size
        )
        r["threads"] = torch.get_num_threads() if device == "cpu" else None
        results.append(r)
        name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {r['threads']} thread(s)"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"\n{name}: {engine.info.fusion_version}, crop {engine.info.crop_size}px, load average {load:.2f}"
        )
        print(f"crop extraction: {r['crop_ms_per_frame_set']:.2f} ms per frame set of {args.seats} seats")
        print(f"{'fuse batch':>12} {'ms':>9} {'frame sets/s':>13} {'ms/frame set':>13} {'cpu ms/set':>11}")
        for row in r["fuse"]:
            print(
                f"{row['frame_sets']:>12} {row['ms']:>9.2f} "
                f"{row['frame_sets_per_s']:>13.2f} {row['ms_per_frame_set']:>13.2f} "
                f"{row['cpu_ms_per_frame_set']:>11.2f}"
            )
        print(f"{'recognise B':>12} {'ms':>9} {'windows/s':>13} {'ms/window':>13} {'cpu ms/win':>11}")
        for row in r["recognise"]:
            print(
                f"{row['windows']:>12} {row['ms']:>9.2f} "
                f"{row['windows_per_s']:>13.1f} {row['ms_per_window']:>13.3f} "
                f"{row['cpu_ms_per_window']:>11.3f}"
            )
    from services.common.vocabulary import WINDOW_FRAMES

    for crop in args.train_step or []:
        r = bench_training_step(
            args.method,
            crop,
            args.train_windows,
            WINDOW_FRAMES,
            max(3, args.repeats // 4),
            args.train_enhancement,
        )
        results.append({"training_step": r, "threads": torch.get_num_threads()})
        shape = f"{args.train_windows} windows x {WINDOW_FRAMES} frames, {torch.get_num_threads()} thread(s)"
        print(
            f"\ntraining step, {args.method} (enhancement {r['enhancement']}), crop {crop}px, {shape}: "
            f"{r['s_per_step']:.2f} s "
            f"({r['windows_per_s']:.1f} windows/s, CPU {r['cpu_s_per_step']:.2f} s)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
