"""``classroom train-occupancy``: the command line of models/training/occupancy.py (the
seat-occupancy model trained on simulated live sessions, written with its report beside it)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def _seed_range(text: str) -> list[int]:
    try:
        first, _, last = text.partition("-")
        seeds = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed or a range like 100-123, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("models/checkpoints/occupancy/model.pt"))
    parser.add_argument(
        "--train-seeds",
        type=_seed_range,
        default=_seed_range("1000-1039"),
        help="simulated training sessions, one per seed (default 1000-1039)",
    )
    parser.add_argument(
        "--val-seeds",
        type=_seed_range,
        default=_seed_range("2000-2009"),
        help="held-out sessions (default 2000-2009)",
    )
    parser.add_argument("--frames", type=int, default=6, help="frame sets per session")
    parser.add_argument("--every", type=int, default=20, help="take one frame set in this many (15 fps)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--compare-head",
        default=None,
        metavar="CHECKPOINT",
        help="also score the occupancy head of this recognition checkpoint on the validation crops",
    )


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here, not at the top: `classroom train-occupancy --help` stays fast
    import torch

    from models.networks.occupancy import save_occupancy
    from models.training.occupancy import session_specs, train_occupancy

    if set(args.train_seeds) & set(args.val_seeds):
        print("train-occupancy: training and validation seeds overlap", file=sys.stderr)
        return 2
    if args.frames < 1 or args.every < 1 or args.epochs < 1:
        print("train-occupancy: --frames, --every and --epochs must be at least 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    net, report = train_occupancy(
        session_specs(args.train_seeds),
        session_specs(args.val_seeds),
        frames=args.frames,
        every=args.every,
        epochs=args.epochs,
        seed=args.seed,
        head_checkpoint=args.compare_head,
    )
    save_occupancy(net, report, args.out)
    print(
        f"held-out sessions: accuracy {100 * report.val_accuracy:.2f} % over {report.val_crops} seat crops "
        f"(taken seats called empty {100 * report.val_missed_occupied:.2f} %, empty seats called taken "
        f"{100 * report.val_false_occupied:.2f} %)"
    )
    if not math.isnan(report.head_val_accuracy):
        print(
            f"the recognition checkpoint's occupancy head on the same crops: {100 * report.head_val_accuracy:.2f} %"
        )
    print(f"wrote {args.out} and {args.out.with_suffix('.report.json')} in {report.seconds:.0f} s")
    return 0
