"""`classroom bench WHAT`: commands that print benchmark figures (never timed tests)."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "pipeline": ("services.tools.bench_pipeline", "the whole suite: per-stage rates, capture->event latency"),
    "kafka": ("services.tools.bench_kafka_cli", "data-plane throughput: aiokafka next to kafka-python"),
    "enhance": ("services.tools.bench_enhance", "section 3.2 quality against baselines, and speed"),
    "simulate": ("services.tools.bench_simulate", "simulator frame sets per second"),
    "models": ("models.tools.bench", "model server networks: frame sets/s against batch size"),
    "gpu": ("models.tools.bench_gpu", "model server on one GPU: fp32, fp16, compiled against batch size"),
    "dashboard": ("dashboards.tools.bench", "dashboard page render times on a semester of data"),
    "drill": (
        "services.cli.drill",
        "fault drill: pause a service, kill the model server, refuse the database; what was lost",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="WHAT", required=True)
    sub.add_parser("all", help="every benchmark below with its defaults, one after another").set_defaults(
        _bench="all", _missing=""
    )
    for name, (module_name, help_text) in BENCHES.items():
        bench_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            module = None
        if module is None or not hasattr(module, "add_arguments"):
            bench_parser.set_defaults(_bench=None, _missing=module_name)
            continue
        module.add_arguments(bench_parser)
        bench_parser.set_defaults(_bench=module)


def run(args: argparse.Namespace) -> int:
    if args._bench == "all":
        failures = 0
        for name, (module_name, _) in BENCHES.items():
            print(f"\n===== classroom bench {name} =====", flush=True)
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                module = None
            if module is None or not hasattr(module, "add_arguments"):
                print(f"{module_name} is not available in this installation")
                failures += 1
                continue
            bench_parser = argparse.ArgumentParser(prog=f"classroom bench {name}")
            module.add_arguments(bench_parser)
            failures += int(module.run(bench_parser.parse_args([])) or 0) != 0
        return 1 if failures else 0
    if args._bench is None:
        print(f"bench {args.bench}: {args._missing} is not available in this installation")
        return 2
    return int(args._bench.run(args) or 0)
