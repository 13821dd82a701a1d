"""Topic names, partition counts and retention: the suite's Kafka layout in one place.

Topics carry a version (``.v1``) so a schema change can run beside the old one. Every
topic is keyed by classroom id, so one classroom's messages stay ordered on one
partition and every service scales out as a consumer group up to the partition count.

Retention is part of the privacy design: frame topics hold images of students, so they
keep messages only long enough to ride out a restart or an outage of a downstream
service (15 minutes by default); dead letters, which may hold a frame's bytes, keep
them 24 hours; behaviour events (no pixels) keep 7 days for replay into the store.
Kafka deletes whole closed segments only, so a topic with a short retention also rolls its
segments (``segment_ms``): without it a quiet partition keeps frames until a segment of
1 GiB fills. A message is gone at most retention + segment + the broker's retention check
interval (5 minutes by default) after it was written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services.common.kafka_security import KafkaSecurity, client_kwargs

log = logging.getLogger(__name__)

MINUTE_MS = 60_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    compacted: bool = False
    description: str = ""
    segment_ms: int | None = None  # roll segments this often, so retention bites on quiet partitions

    def configs(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact"}
        configs = {"retention.ms": str(self.retention_ms)}
        if self.segment_ms is not None:
            configs["segment.ms"] = str(self.segment_ms)
        return configs


FRAMES_RAW = "frames.raw.v1"
FRAMES_ENHANCED = "frames.enhanced.v1"
OBSERVATIONS = "observations.v1"
BEHAVIOURS = "behaviours.v1"
DEAD_LETTER = "deadletter.v1"
# faust names a table's changelog "<app id>-<table>-changelog"; the recognition app id is
# "<prefix>classroom-recognition" and its table "windows" (services/recognition/service.py).
RECOGNITION_STATE = "classroom-recognition-windows-changelog"


def topic_specs(prefix: str = "", *, partitions: int = 12) -> list[TopicSpec]:
    """The suite's topics. ``partitions`` bounds how many workers of one stage share the load."""
    return [
        TopicSpec(
            prefix + FRAMES_RAW,
            partitions,
            15 * MINUTE_MS,
            description="captured frame sets (images)",
            segment_ms=5 * MINUTE_MS,
        ),
        TopicSpec(
            prefix + FRAMES_ENHANCED,
            partitions,
            15 * MINUTE_MS,
            description="enhanced, aligned frame sets",
            segment_ms=5 * MINUTE_MS,
        ),
        TopicSpec(
            prefix + OBSERVATIONS,
            partitions,
            60 * MINUTE_MS,
            description="per-student keypoints + features",
            segment_ms=15 * MINUTE_MS,
        ),
        TopicSpec(prefix + BEHAVIOURS, partitions, 7 * 24 * 60 * MINUTE_MS, description="behaviour events"),
        TopicSpec(
            prefix + DEAD_LETTER,
            max(1, partitions // 4),
            24 * 60 * MINUTE_MS,
            description="dead letters",
            segment_ms=60 * MINUTE_MS,
        ),
        # Same partition count as observations: faust co-partitions a table with its source.
        TopicSpec(
            prefix + RECOGNITION_STATE, partitions, 0, compacted=True, description="recognition windows"
        ),
    ]


def ensure_topics(
    bootstrap: str, specs: list[TopicSpec], *, timeout_s: float = 30.0, security: KafkaSecurity | None = None
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Topics are created explicitly rather than auto-created: an auto-created topic gets the
    broker's default partition count, which faust refuses for its changelogs (DESIGN.md).
    Waits for the broker to answer up to ``timeout_s``.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                **client_kwargs(bootstrap, client_id="classroom-topics", security=security),
                request_timeout_ms=10_000,
                bootstrap_timeout_ms=int(max(1.0, min(5.0, deadline - time.monotonic())) * 1000),
            )
            break
        except (KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise ConnectionError(
                    f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s: {exc}"
                ) from exc
            time.sleep(0.5)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.configs())])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
