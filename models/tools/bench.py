"""``classroom bench models``: the command line of models/evaluation/bench.py (model-server
throughput against batch size on CPU and, when present, CUDA; optionally training-step times).

    python -m models.tools.bench --repeats 20 --fuse-batches 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from services.common.vocabulary import WINDOW_FRAMES


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
    # the library (and torch) load here, not at the top: `classroom bench` builds every bench's
    # arguments, and `classroom bench pipeline` should not wait for torch
    import torch

    from models.evaluation.bench import bench_device, bench_training_step
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
