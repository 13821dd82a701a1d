"""`classroom topics`: create the suite's topics with their partition counts and retention."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--prefix", default="", help="topic prefix (one suite per prefix)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=12,
        help="partitions per topic: the most workers one stage can spread over (campus: >= GPUs and rooms/4)",
    )
    parser.add_argument("--list", action="store_true", help="only print the layout")


def run(args: argparse.Namespace) -> int:
    from services.common.topics import ensure_topics, topic_specs

    specs = topic_specs(args.prefix, partitions=args.partitions)
    for spec in specs:
        policy = "compact" if spec.compacted else f"retention {spec.retention_ms // 60000} min"
        print(f"{spec.name:<50} {spec.partitions:>3} partitions  {policy:<22} {spec.description}")
    if args.list:
        return 0
    created = ensure_topics(args.bootstrap, specs)
    print(f"created {len(created)} topic(s); {len(specs) - len(created)} existed already")
    return 0
