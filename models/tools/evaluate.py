"""``classroom evaluate``: the command line of models/evaluation/evaluate.py (which says what
every column measures).

    classroom evaluate --data sim:small --runs var/train --out var/eval/small

reads every ``<runs>/<method>/model.pt`` (or ``--checkpoint PATH`` repeated), evaluates each on
the TEST split and, on SmartClass-Sim, the robustness scenarios for the proposed method and the
strongest baseline, and writes ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="sim:small", help="sim:<preset>[?seed=N] or a data-set folder")
    parser.add_argument("--runs", type=Path, default=Path("var/train"), help="folder of <method>/model.pt")
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a model.pt (repeatable)"
    )
    parser.add_argument("--methods", help="only these methods (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("var/eval"), help="writes results.json, results.md")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frame-stride", type=int, default=4, help="quality on every N-th frame")
    parser.add_argument("--fps-students", type=int, default=20)
    parser.add_argument("--fps-repeats", type=int, default=10, help="0: do not time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=None, help="processes preparing uncached windows")
    parser.add_argument("--no-robustness", action="store_true", help="skip the scenario renders (sim only)")
    parser.add_argument("--limit", type=int, help="only the first N test windows (quick checks, not figures)")


def _refuse(message: str) -> int:
    print(f"classroom evaluate: {message}", file=sys.stderr)
    return 2


def _checkpoints_by_method(args: argparse.Namespace) -> tuple[dict[str, Path], int, bool]:
    """The checkpoint of each wanted method, their common crop size, and whether they read
    served inputs; ValueError (the message for the operator) where they cannot be compared."""
    from models.evaluation.evaluate import find_checkpoints
    from models.networks.checkpoint import load_checkpoint

    checkpoints = find_checkpoints(args.runs, args.checkpoint)
    if not checkpoints:
        raise ValueError(
            f"no checkpoint (looked in {args.runs}/*/model.pt); train with "
            "`classroom train --data ... --method NAME --out var/train/NAME` first"
        )
    wanted = set(args.methods.split(",")) if args.methods else None
    by_method: dict[str, Path] = {}
    crop_sizes, inputs = set(), set()
    for path in checkpoints:
        try:
            data = load_checkpoint(path)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        if wanted is None or data["method"] in wanted:
            if data["method"] in by_method:
                raise ValueError(
                    f"two checkpoints of {data['method']}: {by_method[data['method']]} and "
                    f"{path}; keep one in {args.runs} or name them with --checkpoint"
                )
            by_method[data["method"]] = path
            crop_sizes.add(int(data["crop_size"]))
            inputs.add(str(data.get("inputs", "raw_colour")))
    if len(crop_sizes) != 1:
        raise ValueError(f"checkpoints differ in crop size {sorted(crop_sizes)}")
    if len(inputs) != 1:
        raise ValueError(
            "checkpoints trained on served inputs (--recipe staged) and on raw colour "
            f"crops (--recipe paper) read different test inputs: evaluate them in two runs ({by_method})"
        )
    return by_method, crop_sizes.pop(), inputs.pop() == "served"


class _TestSplits:
    """The test split of a data set as a checkpoint reads it, each built once: through the served
    input path with the checkpoint's own section 3.2 parameters (enhancement.json beside it) when
    it was trained that way."""

    def __init__(self, args: argparse.Namespace, crop_size: int, served: bool) -> None:
        self.args, self.crop_size, self.served = args, crop_size, served
        self.splits: dict[tuple[str, str | None], Any] = {}

    def __call__(self, spec: str, checkpoint: Path) -> Any:
        from models.data.open import open_dataset
        from models.data.served import ServedWindows
        from models.networks.checkpoint import ENHANCEMENT_JSON

        params = checkpoint.with_name(ENHANCEMENT_JSON) if self.served else None
        params_file = str(params) if params is not None and params.is_file() else None
        key = (spec, params_file)
        if key not in self.splits:
            workers, limit = self.args.workers, self.args.limit
            self.splits[key] = (
                ServedWindows(
                    spec, "test", self.crop_size, params_file=params_file, workers=workers, limit=limit
                )
                if self.served
                else open_dataset(spec, "test", crop_size=self.crop_size, workers=workers, limit=limit)
            )
        return self.splits[key]


def _evaluate_methods(
    args: argparse.Namespace, by_method: dict[str, Path], test_split: _TestSplits, device: str
) -> dict[str, dict[str, Any]]:
    """Every checkpoint on the test split: its results, a confusion matrix PNG, one line printed."""
    from models.evaluation.evaluate import confusion_png, evaluate_checkpoint
    from services.common.vocabulary import BEHAVIOURS

    methods: dict[str, dict[str, Any]] = {}
    for method, path in by_method.items():
        began = time.perf_counter()
        result = evaluate_checkpoint(
            path,
            test_split(args.data, path),
            batch_size=args.batch_size,
            frame_stride=args.frame_stride,
            fps_students=args.fps_students,
            fps_repeats=args.fps_repeats,
            device_name=device,
            quality=not test_split.served,  # served inputs are enhanced before the crops: no raw/reference pairs
        )
        methods[method] = asdict(result)
        confusion_png(
            result.confusion,
            BEHAVIOURS,
            args.out / f"confusion-{method}.png",
            f"{method} on {args.data} test ({result.samples} samples): top-1 {result.top1:.1f} %",
        )
        print(
            f"{method}: top-1 {result.top1:.2f} top-5 {result.top5:.2f} macro-F1 {result.macro_f1:.2f} "
            f"PSNR {result.psnr:.2f} SSIM {result.ssim:.3f} MI {result.mi:.3f} EPI {result.epi:.3f} "
            f"FPS {result.fps:.1f} ({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
    return methods


def _robustness(
    args: argparse.Namespace,
    by_method: dict[str, Path],
    methods: dict[str, dict[str, Any]],
    test_split: _TestSplits,
    device: str,
) -> dict[str, dict[str, float]]:
    """Top-1 of the proposed method and the strongest baseline under each scenario (SmartClass-Sim only)."""
    from models.evaluation.evaluate import ROBUSTNESS_SCENARIOS, evaluate_checkpoint, robustness_methods

    robustness: dict[str, dict[str, float]] = {}
    if not args.data.startswith("sim:") or args.no_robustness:
        return robustness
    base = args.data.split("&conditions=")[0]
    joiner = "&" if "?" in base else "?"
    present = robustness_methods({m: r["top1"] for m, r in methods.items()})
    for scenario in ROBUSTNESS_SCENARIOS:
        if not present:
            break
        for method in present:
            r = evaluate_checkpoint(
                by_method[method],
                test_split(f"{base}{joiner}conditions={scenario}", by_method[method]),
                batch_size=args.batch_size,
                frame_stride=args.frame_stride,
                fps_students=args.fps_students,
                fps_repeats=0,
                device_name=device,
                quality=False,
            )
            robustness.setdefault(method, {})[scenario] = r.top1
            print(f"robustness {scenario}: {method} top-1 {r.top1:.2f}", flush=True)
    return robustness


def _write_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """results.json and results.md (printed too), and for one --checkpoint its quality card."""
    from models.evaluation.evaluate import render_markdown

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (args.out / "results.md").write_text(markdown)
    print(markdown)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    if len(args.checkpoint) == 1:  # one model: its quality card, which the dashboard shows beside its events
        from models.evaluation.card import quality_card

        try:
            card = quality_card(report, args.checkpoint[0])
        except ValueError as exc:  # --runs added other methods: the card would not be this checkpoint's alone
            print(
                f"no {args.out / 'model.quality.json'}: {exc} (evaluate {args.checkpoint[0]} without --runs)"
            )
            return
        (args.out / "model.quality.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {args.out / 'model.quality.json'} (digest {card['digest']})")


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here and in the steps, not at the top: `classroom evaluate --help` stays fast
    import torch

    from services.dataset.format import DatasetError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        by_method, crop_size, served = _checkpoints_by_method(args)
    except ValueError as exc:
        return _refuse(str(exc))
    test_split = _TestSplits(args, crop_size, served)
    try:
        for path in by_method.values():
            test_split(args.data, path)
    except (ValueError, FileNotFoundError, DatasetError) as exc:
        return _refuse(str(exc))
    device = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} thread(s)"
    methods = _evaluate_methods(args, by_method, test_split, device)
    robustness = _robustness(args, by_method, methods, test_split, device)
    first = next(iter(methods.values()))
    report = {
        "data": args.data,
        "test_samples": first["samples"],
        "command": "classroom evaluate "
        + " ".join(sys.argv[2:] if sys.argv[1:2] == ["evaluate"] else sys.argv[1:]),
        "device": device,
        "fps_students": args.fps_students,
        "crop_size": crop_size,
        "quality_note": f"{first['quality_subset']}, every {args.frame_stride}th frame ({first['quality_frames']} frames)",
        "methods": methods,
        "robustness": robustness,
    }
    _write_report(args, report)
    return 0
