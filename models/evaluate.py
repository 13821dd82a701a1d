"""``classroom evaluate``: the paper's tables (3, 4, 6 and the 4.2.3 robustness study) on SmartClass-Sim.

Not built yet: it needs the SmartClass-Sim data adapter and trained checkpoints, which are
part 2 of issue 5. The command says so and exits with status 2 instead of printing figures.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", help="comma-separated registry methods (models/registry.py METHODS)")
    parser.add_argument("--data", help="sim:SPEC or a data-set folder")


def run(args: argparse.Namespace) -> int:
    print(
        "classroom evaluate: not implemented yet; it arrives with part 2 of issue 5 "
        "(SmartClass-Sim adapter, trained checkpoints, Table 3/4/6 and robustness runs)",
        file=sys.stderr,
    )
    return 2
