"""``classroom probe``: the command line of models/training/probe.py (a checkpoint's recogniser
retrained alone on its frozen front end: a budget limit or a generalisation limit?).

    classroom probe --checkpoint models/checkpoints/sim-small/model.pt --epochs 30
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the library loads in the functions that use it: `classroom probe --help` stays fast
    from models.data.windows import WindowDataset


# models.training.probe.KEYPOINT_SOURCES, written out: that module loads torch, --help does not
KEYPOINT_SOURCES = ("predicted", "exact", "exact-seen", "exact-hidden", "seen-flags", "exact-seen-flags")


def _sources(text: str) -> tuple[str, ...]:
    sources = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in sources if s not in KEYPOINT_SOURCES]
    if unknown or not sources:
        raise argparse.ArgumentTypeError(
            f"unknown keypoint source {', '.join(unknown) or text!r}; choose from {', '.join(KEYPOINT_SOURCES)}"
        )
    return sources


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt of classroom train")
    parser.add_argument("--data", default="sim:small", help="the data set the checkpoint was trained on")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="keypoint noise on training windows (crop px)"
    )
    parser.add_argument(
        "--train-extras", action="store_true", help="the training split with its background people"
    )
    parser.add_argument(
        "--keypoints",
        default="predicted",
        type=_sources,
        help="where the recogniser's keypoints come from: the front end, or the annotation for all points, "
        "the points in view or the hidden ones (how much better keypoints would help); seen-flags: the "
        "front end's positions with the annotation's seen flags as confidence (exact-seen-flags: and the "
        "points in view exact). Several, comma-separated, share one pass of the front end and get a "
        "recogniser each, from the same start",
    )
    parser.add_argument(
        "--no-features", action="store_true", help="train on the keypoints alone (no node features)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="first windows of each split (quick checks)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--workers", type=int, help="processes preparing uncached windows")
    parser.add_argument("--seed", type=int, default=0)


def _split(args: argparse.Namespace, split: str, crop: int, served: bool) -> WindowDataset:
    """One split of --data as the checkpoint was trained on it."""
    from models.data.open import open_dataset
    from models.data.served import ServedWindows
    from models.networks.checkpoint import ENHANCEMENT_JSON

    if served:  # the served input path with the checkpoint's own section 3.2 parameters
        params = args.checkpoint.with_name(ENHANCEMENT_JSON)
        return ServedWindows(
            args.data,
            split,
            crop,
            params_file=params if params.is_file() else None,
            workers=args.workers,
            limit=args.limit,
        )
    return open_dataset(
        args.data,
        split,
        seed=args.seed,
        crop_size=crop,
        workers=args.workers,
        limit=args.limit,
        extras=args.train_extras and split == "train",
    )


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here and in _split, not at the top: `classroom probe --help` stays fast
    import torch

    from models.networks.checkpoint import load_checkpoint
    from models.networks.registry import create_model
    from models.training.probe import front_end_sources, probe
    from services.dataset.format import DatasetError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = load_checkpoint(args.checkpoint)
        pipeline = create_model(data["method"], checkpoint=data)
        crop = int(data["crop_size"])
        began = time.perf_counter()
        served = data.get("inputs") == "served"
        outputs = {
            split: front_end_sources(pipeline, _split(args, split, crop, served), sources=args.keypoints)
            for split in ("train", "val", "test")
        }
    except (ValueError, FileNotFoundError, KeyError, DatasetError) as exc:
        print(f"classroom probe: {exc}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{name} {len(labels)}" for name, (_, _, labels) in outputs.items())
    print(f"front end of {args.checkpoint} over {sizes} samples in {time.perf_counter() - began:.0f} s")
    recogniser: torch.nn.Module = pipeline.recognition  # type: ignore[assignment]
    start = copy.deepcopy(recogniser.state_dict())
    summary = []
    for source in args.keypoints:
        recogniser.load_state_dict(start)  # every source from the same start
        torch.manual_seed(args.seed)  # and the same fresh weights where --no-features resets them
        print(f"keypoints: {source}")
        history = probe(
            pipeline,
            {name: (kp[source], features, labels) for name, (kp, features, labels) in outputs.items()},
            epochs=args.epochs,
            lr=args.lr,
            jitter_px=args.jitter,
            crop_size=crop,
            seed=args.seed,
            features=not args.no_features,
            batch_size=args.batch_size,
        )
        best = max(history[1:] or history, key=lambda r: r["val"])
        summary.append((source, best))
        start_was = "fresh weights" if args.no_features else "the checkpoint"
        print(
            f"{source}: best validation epoch {best['epoch']}: train {best['train']:.1f} val {best['val']:.1f} "
            f"test {best['test']:.1f} (epoch 0, {start_was}: val {history[0]['val']:.1f} "
            f"test {history[0]['test']:.1f})"
        )
    if len(summary) > 1:
        print("| keypoints | best epoch | train | validation | test |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for source, best in summary:
            print(
                f"| `{source}` | {best['epoch']} | {best['train']:.1f} | {best['val']:.1f} | {best['test']:.1f} |"
            )
    return 0
