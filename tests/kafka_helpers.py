"""Small synchronous Kafka helpers for tests (kafka-python: simple and fine for a few messages)."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=20_000_000)
    for key, value in messages:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()


def consume_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list:
    """Read a topic from the beginning until ``expect`` records arrived or ``timeout`` passed."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_bytes=50_000_000,
        max_partition_fetch_bytes=20_000_000,
    )
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records
