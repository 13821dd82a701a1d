"""``classroom dataset``: check a data-set folder, convert a recording into the format, describe a data set.

classroom dataset check data/sim-small [--deep]
classroom dataset convert --mkv rec.mkv --thermal thermal.avi --annotations rec.json --out data/room101
classroom dataset info sim:paper
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    check = sub.add_parser("check", help="validate a data-set folder and report problems")
    check.add_argument("folder", type=Path)
    check.add_argument("--deep", action="store_true", help="decode every image (slower)")
    convert = sub.add_parser(
        "convert", help="convert a Kinect MKV + thermal video + annotation file into a clip"
    )
    convert.add_argument("--mkv", type=Path, required=True)
    convert.add_argument("--thermal", type=Path, required=True, help="thermal video readable by OpenCV")
    convert.add_argument(
        "--annotations", type=Path, required=True, help="annotation JSON (docs/dataset-format.md)"
    )
    convert.add_argument("--out", type=Path, required=True, help="data-set folder (created or extended)")
    convert.add_argument("--max-frames", type=int, default=None)
    info = sub.add_parser("info", help="splits, windows and samples per class of a data set")
    info.add_argument("spec", help="a folder or sim:<preset>[?seed=N]")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done (check: no problems), 1 check found problems, 2 the command could not run
    (a data set, recording or annotation file it cannot use, printed as one line)."""
    from pydantic import ValidationError

    from services.dataset.format import DatasetError

    command = getattr(args, "dataset_command", None)
    if command is None:
        print("classroom dataset: choose check, convert or info (see --help)", file=sys.stderr)
        return 2
    try:
        if command == "check":
            from services.dataset.check import check_dataset, format_report

            report = check_dataset(args.folder, deep=args.deep)
            print(format_report(report))
            return 0 if report.ok else 1
        if command == "convert":
            from services.dataset.convert import convert_recording

            clip = convert_recording(
                mkv=args.mkv,
                thermal_video=args.thermal,
                annotations=args.annotations,
                out=args.out,
                max_frames=args.max_frames,
            )
            print(f"wrote clip {clip.id} ({clip.frames} frames at {clip.fps} fps) into {args.out}")
            return 0
        from services.dataset.api import open_dataset

        try:
            ds = open_dataset(args.spec, cache=False)
        except ValidationError:
            raise
        except ValueError as exc:  # a malformed or unknown sim: spec
            print(f"classroom dataset info: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        print(f"{ds.name}")
        for split, students in ds.splits.items():
            samples = ds.samples(split)
            counts = Counter(s.label for s in samples)
            windows = len(ds.windows(split))
            print(f"  {split}: {len(students)} students, {windows} windows, {len(samples)} samples")
            print("    " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return 0
    except DatasetError as exc:
        print(f"classroom dataset {command}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a value the format refuses that no check above named
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        print(f"classroom dataset {command}: {exc.title}: {_one_line(problems)}", file=sys.stderr)
        return 2
