"""``classroom simulate``: write a SmartClass-Sim data set, record a live session, or a contact sheet.

classroom simulate --preset small --out data/sim-small --workers 2
classroom simulate --preset paper --out data/paper-test --splits test --limit 50
classroom simulate --session 120 --fps 15 --students 20 --out data/session
classroom simulate --preview docs/images/simulator-preview.png
classroom simulate --keypoint-figure docs/images/keypoints.png
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x360)") from None
    if w < 64 or h < 36:
        raise argparse.ArgumentTypeError(f"{text} is too small")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=None, help="data-set preset: paper, small or tiny")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder to write (created; clips are replaced)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed: the same seed writes the same bytes")
    parser.add_argument("--splits", default="train,val,test", help="splits to write (default all)")
    parser.add_argument(
        "--limit", type=int, default=None, help="write only the first N windows of each split"
    )
    parser.add_argument("--workers", type=int, default=1, help="render in N processes (default 1)")
    parser.add_argument("--no-references", action="store_true", help="skip the clean references")
    parser.add_argument("--rgb-size", type=_size, default=None, help="colour resolution, e.g. 1920x1080")
    parser.add_argument(
        "--session", type=float, default=None, metavar="SECONDS", help="record a live session instead"
    )
    parser.add_argument("--students", type=int, default=20, help="session/preview: students in the room")
    parser.add_argument("--fps", type=float, default=15.0, help="session: frame rate (default 15)")
    parser.add_argument(
        "--conditions", default="mixed", help="session: normal, low_light, occlusion, ..., or mixed"
    )
    parser.add_argument("--split", default="test", help="session: the split its students belong to")
    parser.add_argument("--preview", type=Path, default=None, help="write a contact sheet PNG")
    parser.add_argument(
        "--keypoint-figure",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the 17-keypoint figure PNG (docs/keypoints.md)",
    )
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")


def run(args: argparse.Namespace) -> int:
    from services.dataset.virtual import PRESETS

    if args.list_presets:
        for p in PRESETS.values():
            per_class = "/".join(str(p.samples_per_class(s)) for s in ("train", "val", "test"))
            print(
                f"{p.name:6} {p.subjects} students, {sum(p.split_windows)} windows, "
                f"per class {per_class}: {p.description}"
            )
        return 0
    if args.preview is None and args.keypoint_figure is None and args.out is None:
        print(
            "classroom simulate: give --out (a data set or a --session), --preview and/or --keypoint-figure",
            file=sys.stderr,
        )
        return 2
    if args.keypoint_figure is not None:
        from services.simulator.preview import write_keypoint_figure

        print(f"wrote {write_keypoint_figure(args.keypoint_figure)}")
    if args.preview is not None:
        from services.simulator.preview import write_contact_sheet

        path = write_contact_sheet(
            args.preview, seed=args.seed, students=args.students, rgb_size=args.rgb_size or (640, 360)
        )
        print(f"wrote {path}")
    if args.out is None:
        return 0
    if args.session is not None:
        return _record(args)
    if args.preset is None:
        print("classroom simulate: --out needs --preset (paper, small, tiny) or --session", file=sys.stderr)
        return 2
    if args.preset not in PRESETS:
        print(
            f"classroom simulate: unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}",
            file=sys.stderr,
        )
        return 2
    return _export(args, PRESETS[args.preset])


def _export(args: argparse.Namespace, preset) -> int:
    from services.dataset.virtual import VirtualDataset

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "val", "test")]
    if bad:
        print(f"classroom simulate: unknown split(s) {bad}", file=sys.stderr)
        return 2
    if args.rgb_size is not None:
        preset = dataclasses.replace(preset, sim=preset.sim.model_copy(update={"rgb_size": args.rgb_size}))
    ds = VirtualDataset(preset, seed=args.seed)
    total = sum(min(len(ds.windows(s)), args.limit if args.limit is not None else 10**9) for s in splits)
    from services.common.progress import progress_bar

    started = time.perf_counter()
    bar = progress_bar(total=total, desc="windows", unit="window")

    def progress(entry) -> None:
        bar.update()

    print(f"SmartClass-Sim {preset.name}, seed {args.seed}: writing {total} windows to {args.out}")
    ds.export(
        args.out,
        splits=splits,
        limit=args.limit,
        workers=max(1, args.workers),
        references=not args.no_references,
        progress=progress,
    )
    bar.close()
    print(f"done in {time.perf_counter() - started:.1f} s; check it with: classroom dataset check {args.out}")
    return 0


def _record(args: argparse.Namespace) -> int:
    from services.simulator.live import SimulatedCamera
    from services.simulator.recording import record_session

    if args.split not in ("train", "val", "test"):
        print(f"classroom simulate: --split must be train, val or test, not {args.split!r}", file=sys.stderr)
        return 2
    try:
        camera = SimulatedCamera(
            seed=args.seed,
            students=args.students,
            fps=args.fps,
            rgb_size=args.rgb_size or (640, 360),
            conditions=args.conditions,
            references=not args.no_references,
            start_time_us=1_772_438_400_000_000,
        )
    except ValueError as exc:
        print(f"classroom simulate: {exc}", file=sys.stderr)
        return 2
    frames = max(1, round(args.session * args.fps))
    started = time.perf_counter()
    info = record_session(args.out, camera, frames=frames, split=args.split)
    print(
        f"wrote session clip {info.id}: {info.frames} frames at {info.fps} fps "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0
