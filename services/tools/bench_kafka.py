"""Kafka data-plane throughput of the chosen client (aiokafka) next to kafka-python, side by side.

Both clients move the same 300 KB messages through the same embedded broker on loopback in
alternating rounds; the figures are medians over the rounds and the ratio is taken per round.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

from services.common.embedded_broker import EmbeddedBroker
from services.common.topics import TopicSpec, ensure_topics


async def _aiokafka_round(bootstrap: str, topic: str, payload: bytes, n: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    # not client_kwargs(): both libraries get the same bench-sized settings on the plaintext loopback broker
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=len(payload) + 4096,
        max_batch_size=4 * 1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(topic, payload, key=str(i % 4).encode()) for i in range(n)]
    await asyncio.gather(*futures)
    produce_s = time.perf_counter() - started
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    got, n_timed = 0, n
    consume_started: float | None = None
    while got < n:
        batches = await consumer.getmany(timeout_ms=1000)
        if batches and consume_started is None:
            consume_started = time.perf_counter() - 1e-9
            # the first fetch's records were read before the clock started: count them out
            first = sum(len(v) for v in batches.values())
            n_timed = n - first
            got += first
            continue
        got += sum(len(v) for v in batches.values())
    consume_s = time.perf_counter() - (consume_started or time.perf_counter())
    await consumer.stop()
    size = len(payload)
    return n * size / produce_s / 1e6, max(n_timed, 1) * size / max(consume_s, 1e-9) / 1e6


def _kafka_python_round(bootstrap: str, topic: str, payload: bytes, n: int) -> tuple[float, float]:
    from kafka import KafkaConsumer, KafkaProducer

    # not client_kwargs(): both libraries get the same bench-sized settings on the plaintext loopback broker
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=len(payload) + 4096,
        batch_size=4 * 1024 * 1024,
    )
    started = time.perf_counter()
    futures = [producer.send(topic, payload, key=str(i % 4).encode()) for i in range(n)]
    for future in futures:
        future.get(timeout=120)
    produce_s = time.perf_counter() - started
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    got, n_timed = 0, n
    consume_started: float | None = None
    while got < n:
        batches = consumer.poll(timeout_ms=1000)
        count = sum(len(v) for v in batches.values())
        if count and consume_started is None:
            consume_started = time.perf_counter()
            n_timed = n - count
            got += count
            continue
        got += count
    consume_s = time.perf_counter() - (consume_started or time.perf_counter())
    consumer.close()
    size = len(payload)
    return n * size / produce_s / 1e6, max(n_timed, 1) * size / max(consume_s, 1e-9) / 1e6


def run_benchmark(*, message_bytes: int = 300_000, messages: int = 300, rounds: int = 3) -> dict:
    payload = os.urandom(message_bytes)
    rows: dict[str, list[tuple[float, float]]] = {"aiokafka": [], "kafka-python": []}
    with EmbeddedBroker() as broker:
        for r in range(rounds):
            for client in ("aiokafka", "kafka-python"):
                topic = f"bench-{client}-{r}-{uuid.uuid4().hex[:6]}"
                ensure_topics(broker.bootstrap, [TopicSpec(topic, 4, 600_000)])
                n = (
                    messages if client == "aiokafka" else max(30, messages // 5)
                )  # kafka-python is ~20x slower
                if client == "aiokafka":
                    rows[client].append(asyncio.run(_aiokafka_round(broker.bootstrap, topic, payload, n)))
                else:
                    rows[client].append(_kafka_python_round(broker.bootstrap, topic, payload, n))
    result: dict = {"message_bytes": message_bytes, "rounds": rounds}
    for client, values in rows.items():
        result[client] = {
            "produce_MBps": round(statistics.median(v[0] for v in values), 1),
            "consume_MBps": round(statistics.median(v[1] for v in values), 1),
        }
    ratios_p = [a[0] / b[0] for a, b in zip(rows["aiokafka"], rows["kafka-python"], strict=True)]
    ratios_c = [a[1] / b[1] for a, b in zip(rows["aiokafka"], rows["kafka-python"], strict=True)]
    result["ratio_produce"] = round(statistics.median(ratios_p), 1)
    result["ratio_consume"] = round(statistics.median(ratios_c), 1)
    return result


def print_result(result: dict) -> None:
    print(
        f"Kafka data plane, {result['message_bytes'] // 1000} KB messages, embedded broker on loopback, "
        f"median of {result['rounds']} alternating rounds"
    )
    print(f"  {'client':<14}{'produce MB/s':>14}{'consume MB/s':>14}")
    for client in ("aiokafka", "kafka-python"):
        print(f"  {client:<14}{result[client]['produce_MBps']:>14}{result[client]['consume_MBps']:>14}")
    print(
        f"  aiokafka / kafka-python: produce x{result['ratio_produce']}, consume x{result['ratio_consume']}"
    )
