"""`classroom topics`: create the suite's topics with their partition counts and retention."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


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
    security = parser.add_argument_group("a broker with TLS / SASL (the password: $KAFKA_SASL_PASSWORD)")
    security.add_argument(
        "--security-protocol", default="PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    )
    security.add_argument("--ssl-ca-file", type=Path)
    security.add_argument("--ssl-cert-file", type=Path)
    security.add_argument("--ssl-key-file", type=Path)
    security.add_argument("--sasl-mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    security.add_argument("--sasl-username")


def run(args: argparse.Namespace) -> int:
    from services.common.kafka_security import KafkaSecurity
    from services.common.topics import ensure_topics, topic_specs

    specs = topic_specs(args.prefix, partitions=args.partitions)
    for spec in specs:
        policy = "compact" if spec.compacted else f"retention {spec.retention_ms // 60000} min"
        print(f"{spec.name:<50} {spec.partitions:>3} partitions  {policy:<22} {spec.description}")
    if args.list:
        return 0
    try:
        security = KafkaSecurity(
            protocol=args.security_protocol,
            ca_file=args.ssl_ca_file,
            cert_file=args.ssl_cert_file,
            key_file=args.ssl_key_file,
            sasl_mechanism=args.sasl_mechanism,
            username=args.sasl_username,
            password=os.environ.get("KAFKA_SASL_PASSWORD") if args.sasl_mechanism else None,
        )
    except ValueError as exc:
        print(f"classroom topics: {exc}", file=sys.stderr)
        return 2
    created = ensure_topics(args.bootstrap, specs, security=security)
    print(f"created {len(created)} topic(s); {len(specs) - len(created)} existed already")
    return 0
