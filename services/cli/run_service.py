"""`classroom run SERVICE [--validate-config]`: run one service in this process (what a container runs)."""

from __future__ import annotations

import argparse
import runpy
import sys

SERVICES = ("capture", "enhancement", "fusion", "recognition", "store", "modelserver")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--validate-config", action="store_true", help="check the settings and exit 0/1")


def run(args: argparse.Namespace) -> int:
    sys.argv = [f"services.{args.service}"] + (["--validate-config"] if args.validate_config else [])
    try:
        runpy.run_module(f"services.{args.service}", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0
