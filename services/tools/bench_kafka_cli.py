"""`classroom bench kafka`: aiokafka next to kafka-python on the embedded broker."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message-bytes", type=int, default=300_000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    from services.tools.bench_kafka import print_result, run_benchmark

    print_result(run_benchmark(message_bytes=args.message_bytes, messages=args.messages, rounds=args.rounds))
    return 0
