"""``classroom bench models``: the command line of models/evaluation/bench.py (model-server
throughput against batch size on CPU and, when present, CUDA; optionally training-step times).

    python -m models.tools.bench --repeats 20 --fuse-batches 1,2,4,8
    python -m models.tools.bench --checkpoint C --threads 1 --forms eager,optimised  # side by side
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
    parser.add_argument(
        "--occupancy-checkpoint",
        type=Path,
        help="seat-occupancy model, as the model server loads beside a trained checkpoint (default: none)",
    )
    parser.add_argument(
        "--forms",
        type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
        default=["optimised"],
        help=(
            "per-crop stage forms to time, comma-separated: optimised (what the model server runs, "
            "MODELSERVER_OPTIMISE=true), eager; two are timed side by side, their calls interleaved"
        ),
    )
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


FORMS = ("optimised", "eager")


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here and in the steps, not at the top: `classroom bench` builds
    # every bench's arguments, and `classroom bench pipeline` should not wait for torch
    import torch

    unknown = [f for f in args.forms if f not in FORMS]
    if unknown or not args.forms:
        print(f"--forms: {', '.join(unknown) or 'none'}; choose from {', '.join(FORMS)}")
        return 2
    torch.set_num_threads(args.threads)
    results = []
    for device in [d.strip() for d in args.devices.split(",") if d.strip()]:
        if device != "cpu" and not device.startswith("cuda"):
            print(f"{device}: not a device this benchmark knows (cpu, cuda[:N]), skipped")
            continue
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{device}: not available, skipped")
            continue
        results += _bench_device(args, device)
    for crop in args.train_step or []:
        results.append(_bench_training_step(args, crop))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _bench_device(args: argparse.Namespace, device: str) -> list[dict]:
    """Time every form of the model server's work on ``device``, print the tables; returns one record per form."""
    import torch

    from models.evaluation.bench import bench_forms
    from models.serving.inference import InferenceEngine

    engines = {
        form: InferenceEngine(
            args.checkpoint,
            device=device,
            method=args.method,
            tune_allocator=True,
            untrained_config={"crop_size": args.crop_size} if args.crop_size else None,
            occupancy_checkpoint=args.occupancy_checkpoint,
            optimise=form == "optimised",
        )
        for form in args.forms
    }
    timings = bench_forms(engines, args)
    info = next(iter(engines.values())).info
    threads = torch.get_num_threads() if device == "cpu" else None
    results = []
    for form, engine in engines.items():
        r = timings[form]
        r.update(
            form=form,
            crop_stage=engine.crop_stage_form,
            warmup_s=engine.warmup_s,
            model=info.fusion_version,
            trained=info.trained,
            crop_size=info.crop_size,
            threads=threads,
        )
        results.append(r)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {threads} thread(s)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{name}: {info.fusion_version}, crop {info.crop_size}px, load average {load:.2f}")
    for form, engine in engines.items():
        built = f", built in {engine.warmup_s:.1f} s" if engine.warmup_s else ""
        print(f"{form}: per-crop stage {engine.crop_stage_form}{built}")
    first = timings[args.forms[0]]
    print(f"crop extraction: {first['crop_ms_per_frame_set']:.2f} ms per frame set of {args.seats} seats")
    _print_fuse(timings, args.forms)
    _print_recognise(timings, args.forms)
    return results


def _bench_training_step(args: argparse.Namespace, crop: int) -> dict:
    """Time one training step of ``args.method`` at ``crop`` px and print it; returns its record."""
    import torch

    from models.evaluation.bench import bench_training_step

    r = bench_training_step(
        args.method,
        crop,
        args.train_windows,
        WINDOW_FRAMES,
        max(3, args.repeats // 4),
        args.train_enhancement,
    )
    shape = f"{args.train_windows} windows x {WINDOW_FRAMES} frames, {torch.get_num_threads()} thread(s)"
    print(
        f"\ntraining step, {args.method} (enhancement {r['enhancement']}), crop {crop}px, {shape}: "
        f"{r['s_per_step']:.2f} s "
        f"({r['windows_per_s']:.1f} windows/s, CPU {r['cpu_s_per_step']:.2f} s)"
    )
    return {"training_step": r, "threads": torch.get_num_threads()}


def _print_fuse(timings: dict[str, dict], forms: list[str]) -> None:
    """One row per batch: each form's figures side by side, and with two the second's CPU time
    against the first's."""
    head = "".join(f" | {form + ': ms/set':>18} {'frame sets/s':>12} {'cpu ms/set':>10}" for form in forms)
    ratio = len(forms) == 2
    print(f"{'fuse batch':>10}{head}" + (f" | {'cpu ' + forms[1] + '/' + forms[0]:>20}" if ratio else ""))
    for i, row in enumerate(timings[forms[0]]["fuse"]):
        cells = [timings[form]["fuse"][i] for form in forms]
        line = f"{row['frame_sets']:>10}" + "".join(
            f" | {c['ms_per_frame_set']:>18.2f} {c['frame_sets_per_s']:>12.2f} {c['cpu_ms_per_frame_set']:>10.2f}"
            for c in cells
        )
        if ratio:
            line += f" | {cells[1]['cpu_ms_per_frame_set'] / cells[0]['cpu_ms_per_frame_set']:>20.2f}"
        print(line)


def _print_recognise(timings: dict[str, dict], forms: list[str]) -> None:
    """Recognition is the same network in every form: its rows, one per form."""
    head = "".join(f" | {form + ': ms/window':>21} {'windows/s':>10} {'cpu ms/win':>10}" for form in forms)
    print(f"{'recognise B':>11}{head}")
    for i, row in enumerate(timings[forms[0]]["recognise"]):
        cells = [timings[form]["recognise"][i] for form in forms]
        print(
            f"{row['windows']:>11}"
            + "".join(
                f" | {c['ms_per_window']:>21.3f} {c['windows_per_s']:>10.1f} {c['cpu_ms_per_window']:>10.3f}"
                for c in cells
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
