"""``classroom replay``: the command line of models/evaluation/replay.py (a simulated live
session, or a data-set split, through the recognition model, served path beside training path).

    classroom replay --seed 7 --students 4 --seconds 30
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="replay a data-set split instead (sim:<preset> or a folder): top-1 per path",
    )
    parser.add_argument("--split", default="test", help="with --data: the split")
    parser.add_argument("--limit", type=int, default=None, help="with --data: the first windows only")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed of the live session")
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--checkpoint", default=None, help="a model.pt (default: models/checkpoints/crowd/model.pt)"
    )
    parser.add_argument("--conditions", default="mixed", help="mixed, normal, low_light, occlusion, ...")
    parser.add_argument("--params", default=None, help="EnhancementParams JSON (default: the checkpoint's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _print_split(split: dict) -> None:
    print(
        f"replay of {split['data']} {split['split']}: {split['samples']} samples of {split['windows']} windows"
    )
    for name in ("served", "training_path"):
        if name in split:
            print(f"  {name:<14} top-1 {100 * split[name]['top1']:.1f}%")


def _print_session(result: dict) -> None:
    print(
        f"replay of seed {result['seed']}, {result['students']} students, {result['frames']} frame sets "
        f"({result['conditions']}): served keypoints {result['keypoint_error_crop_px']:.2f} crop px "
        f"from the truth (crop {result['crop_size']} px)"
    )
    for name in ("served", "training_path"):
        if name not in result:
            continue
        r = result[name]
        print(
            f"  {name:<14} agreement {100 * r['agreement']:.1f}% of {r['windows']} windows "
            f"({100 * r['agreement_stable']:.1f}% of {r['stable_windows']} with one true behaviour)"
        )
        for label, figures in r["per_class_stable"].items():
            print(f"    {label:<22} {figures['n']:>5} stable windows  {100 * figures['agreement']:5.1f}%")


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here, not at the top: `classroom replay --help` stays fast
    import torch

    from models.evaluation.replay import DEFAULT_CHECKPOINT, replay, replay_split
    from services.dataset.format import DatasetError

    torch.set_num_threads(max(1, args.threads))
    common = {"checkpoint": args.checkpoint or DEFAULT_CHECKPOINT, "params_file": args.params}
    try:
        if args.data:
            result = replay_split(data=args.data, split=args.split, limit=args.limit, **common)
        else:
            result = replay(
                seed=args.seed,
                students=args.students,
                seconds=args.seconds,
                conditions=args.conditions,
                **common,
            )
    except (ValueError, OSError, DatasetError) as exc:
        print(f"classroom replay: {exc}")
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.data:
        _print_split(result)
    else:
        _print_session(result)
    return 0
