"""``classroom bench gpu`` (``make bench-gpu``): the model server's throughput on one GPU against
batch size in fp32, fp16 and a compiled form, as 20-student frame sets per second; the sweep is
models/evaluation/gpu_sweep.py.

Needs only this repository, its committed checkpoint and torch (no install, no data):

    PYTHONPATH=. python3 -m models.tools.bench_gpu --json /tmp/bench-gpu.json

Without CUDA it measures nothing and says why; ``--device cpu`` runs the same sweep on the CPU
(bf16 for fp16, a TorchScript trace for the compiled form).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.serving.committed import DEFAULT_CHECKPOINT


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda[:N] (default) or cpu")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="default: the served one")
    parser.add_argument(
        "--forms",
        type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
        default=["fp32", "fp16", "compiled"],
    )
    parser.add_argument(
        "--batches", type=_ints, default=[1, 20, 60, 120, 240], help="crops (and windows) per call"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per batch (median)")
    parser.add_argument("--seats", type=int, default=20, help="students per frame set")
    parser.add_argument(
        "--compiler",
        choices=["auto", "inductor", "trace"],
        default="auto",
        help="the compiled form: torch.compile (inductor) or TorchScript (trace); auto: inductor on CUDA",
    )
    parser.add_argument("--compile-mode", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    parser.add_argument(
        "--served-frame-sets",
        type=_ints,
        default=[1, 3, 6, 12],
        help="frame sets per InferenceEngine.fuse call for the served-path table ('' for none)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")


def run(args: argparse.Namespace) -> int:
    # torch and the model code load here: `classroom bench` builds every bench's arguments, and a
    # machine without the model code's dependencies (the lent GPU machine has torch but no
    # registry) should hear which one is missing, not a traceback
    try:
        import torch

        from models.evaluation.gpu_sweep import SWEEP_FORMS, device_skip_reason, gpu_sweep
    except ModuleNotFoundError as exc:
        print(f"cannot import the model code on this machine ({exc}): nothing measured")
        return 2
    unknown = sorted(set(args.forms) - set(SWEEP_FORMS))
    if unknown:
        print(f"unknown form(s) {unknown}; choose from {', '.join(SWEEP_FORMS)}")
        return 2
    torch.set_num_threads(args.threads)
    reason = device_skip_reason(args.device)
    if reason is not None:
        print(f"{reason}: nothing measured (--device cpu runs the CPU path)")
        _write_json(args.json, {"device": args.device, "torch": torch.__version__, "skipped": reason})
        return 0
    result = gpu_sweep(
        checkpoint=args.checkpoint,
        device=args.device,
        forms=args.forms,
        batches=args.batches,
        repeats=args.repeats,
        seats=args.seats,
        compiler=args.compiler,
        compile_mode=args.compile_mode,
        served_frame_sets=args.served_frame_sets,
        log=lambda line: print(line, flush=True),
    )
    print_sweep(result)
    _write_json(args.json, result)
    return 0


def print_sweep(result: dict) -> None:
    seats, hop = result["seats"], result["hop_frames"]
    cuda = f", CUDA {result['cuda']}" if result["cuda"] else ""
    print(
        f"\n{result['device_name']} ({result['device']}), torch {result['torch']}{cuda}, "
        f"python {result['python']}"
    )
    print(
        f"{result['model']}, {result['crop_size']} px crops x {result['channels']} channels; a frame set is "
        f"{seats} crops + {seats}/{hop} recognition windows (one per student every {hop} frame sets); "
        f"medians of {result['repeats']}"
    )
    print(
        f"{'form':<16} {'batch':>6} {'crop ms':>9} {'crops/s':>9} {'window ms':>10} {'windows/s':>10} "
        f"{'frame sets/s':>13} {'1st call s':>11}"
    )
    best = None
    for form in result["forms"]:
        for row in form["rows"]:
            print(
                f"{form['name']:<16} {row['batch']:>6} {row['crop_ms']:>9.2f} {row['crops_per_s']:>9.0f} "
                f"{row['window_ms']:>10.2f} {row['windows_per_s']:>10.0f} {row['frame_sets_per_s']:>13.1f} "
                f"{row['first_call_s']:>11.2f}"
            )
            if best is None or row["frame_sets_per_s"] > best[0]:
                best = (row["frame_sets_per_s"], form["name"], row["batch"])
        if form["skipped"]:
            print(f"{form['name']:<16} skipped: {form['skipped']}")
        for note in form["notes"]:
            print(f"{'':<16} note: {note}")
    served = result.get("served")
    if served and served.get("skipped"):
        print(f"\nserved path: skipped: {served['skipped']}")
    elif served:
        print(
            f"\nserved path, {result['served_precision']} (InferenceEngine.fuse on 640x360 frame sets, crop "
            f"extraction {served['crop_ms_per_frame_set']:.2f} ms of it; recognise {seats} windows per call)"
        )
        print(f"{'frame sets/call':>16} {'ms/frame set':>13} {'frame sets/s':>13} {'with recognition':>17}")
        for row in served["fuse"]:
            print(
                f"{row['frame_sets']:>16} {row['ms_per_frame_set']:>13.2f} {row['frame_sets_per_s']:>13.1f} "
                f"{row['frame_sets_per_s_with_recognition']:>17.1f}"
            )
    if best is not None:
        print(
            f"\nnetworks: {best[0]:.1f} frame sets/s per {'GPU' if result['cuda'] else 'device'} "
            f"({best[1]}, batch {best[2]} crops) on {result['device_name']}"
        )


def _write_json(path: Path | None, result: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
