"""``classroom export``: the command line of models/serving/export.py (the recognition network
of a checkpoint, or of untrained weights, to ONNX or TorchScript)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, help="model.pt from classroom train (default: untrained weights)"
    )
    parser.add_argument("--method", default="proposed", help="method to build when no checkpoint is given")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="output file")


def run(args: argparse.Namespace) -> int:
    # the library (and torch) load here, not at the top: `classroom export --help` stays fast
    from models.serving.export import export_onnx, export_torchscript
    from models.serving.inference import InferenceEngine

    try:
        engine = InferenceEngine(args.checkpoint, method=args.method)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"classroom export: {exc}", file=sys.stderr)
        return 2
    window = engine.info.window_frames
    if args.format == "onnx":
        path = export_onnx(engine.pipeline.float(), args.out, window)
    else:
        path = export_torchscript(engine.pipeline.float(), args.out, window)
    print(
        f"{args.format}: {path} ({engine.info.recognition_version}, T={window}, C={engine.info.feature_dim})"
    )
    return 0
