"""``classroom``: one command with subcommands for every job the suite does.

Each subcommand lives in the package it belongs to and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this module only dispatches, and
imports a subcommand's module when that subcommand is asked for, so ``classroom --help``
stays fast and never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("services.cli.demo", "run the whole suite on this machine with a simulated classroom"),
    "run": (
        "services.cli.run_service",
        "run one service (capture, enhancement, fusion, recognition, store, modelserver)",
    ),
    "topics": ("services.cli.topics", "create the suite's Kafka topics with their partition counts"),
    "simulate": ("services.simulator.cli", "write a SmartClass-Sim data set, or a preview contact sheet"),
    "dataset": (
        "services.dataset.cli",
        "check a data set folder, or convert real recordings into the format",
    ),
    "train": ("models.tools.train", "train the recognition models on a data set"),
    "train-occupancy": (
        "models.tools.train_occupancy",
        "train the seat-occupancy model on simulated live sessions (which seats have a student)",
    ),
    "probe": (
        "models.tools.probe",
        "retrain a checkpoint's recogniser alone on its frozen features: budget or generalisation limit?",
    ),
    "evaluate": (
        "models.tools.evaluate",
        "evaluate methods and ablations; JSON and Markdown tables like the paper's",
    ),
    "replay": (
        "models.tools.replay",
        "a simulated live session through the recognition model, served path beside the training path",
    ),
    "agreement": (
        "services.cli.agreement",
        "how often a run's behaviour events agree with the simulator's ground truth",
    ),
    "export": ("models.tools.export", "export the recognition network to ONNX / TorchScript"),
    "bench": (
        "services.cli.bench",
        "print benchmark figures (pipeline, enhance, simulate, models, dashboard)",
    ),
    "dashboard": ("dashboards.cli", "run the engagement dashboard, manage its users, generate semester data"),
    "db": (
        "services.cli.db",
        "the SQL store's upkeep: schema migrations, purge of sessions older than the campus keeps them",
    ),
}


# how `classroom --help` lists them: what an operator runs, apart from what a developer diagnoses with
GROUPS: dict[str, tuple[str, ...]] = {
    "run the suite": ("demo", "run", "topics", "dashboard", "db"),
    "data and models": ("simulate", "dataset", "train", "train-occupancy", "evaluate", "export"),
    "diagnostics": ("agreement", "replay", "probe", "bench"),
}


def _grouped_commands() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    lines = []
    for group, names in GROUPS.items():
        lines.append(f"{group}:")
        lines += [f"  {name:<{width}}{COMMANDS[name][1]}" for name in names]
        lines.append("")
    return "\n".join(lines)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classroom",
        usage="classroom [-h] COMMAND ...",
        description="Smart-classroom behaviour analytics (RGB + depth + thermal, section numbers from the paper).",
        epilog=_grouped_commands() + "classroom COMMAND --help tells more.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    try:
        parser = build_parser(command)
    except ModuleNotFoundError as exc:
        print(
            f"classroom {command}: not available in this installation ({exc.name} is missing)",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
