"""The "Topics" table of docs/contracts.md against the code and against the wire.

The table is parsed from the document, so it is the one statement of the contract: the fast
test compares it with the topic layout and settings in code; the slow one runs
``classroom demo --broker`` on a broker the test started, reads every topic of that run with a
plain kafka-python client, and checks each record against its row (message type, key,
headers, partition, size), plus the three points integrators disputed: the size of the
enhanced depth, event windows on slot boundaries, and ``seat:`` students.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import symbol_database, unknown_fields
from google.protobuf.message import Message

from services.common.pb.classroom.v1 import (  # noqa: F401 - registers the message types by name
    deadletter_pb2,
    events_pb2,
    frames_pb2,
    observations_pb2,
)
from services.common.settings import CAMPUS_MAX_MESSAGE_BYTES
from services.common.topics import FRAMES_RAW, topic_specs

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
PREFIX = "{prefix}"

# Partition counts as the table writes them, for N = `classroom topics --partitions`.
PARTITION_RULES: dict[str, Callable[[int], int]] = {
    "N": lambda n: n,
    "N / 4, at least 1": lambda n: max(1, n // 4),
}
RETENTION_UNITS_MS = {"min": 60_000, "h": 3_600_000, "days": 86_400_000}
# what the test puts on frames.raw for the run to dead-letter (a field 1 cut short): not the suite's
MALFORMED_FRAME_SET = b"\x0a\xff not a frame set"


@dataclass(frozen=True)
class TopicRow:
    """One row of the Topics table."""

    topic: str  # with "{prefix}"
    message: str  # full proto name, or "" for a topic that carries no protobuf
    key: str
    headers: str
    partitions: str
    cleanup: str
    max_bytes: int
    producer: str
    consumers: str

    def name(self, prefix: str = "") -> str:
        return self.topic.replace(PREFIX, prefix)

    def message_class(self) -> type[Message] | None:
        if not self.message:
            return None
        return symbol_database.Default().GetSymbol(self.message)

    def retention_ms(self) -> int | None:
        """None for a compacted topic."""
        if self.cleanup == "compact":
            return None
        match = re.fullmatch(r"delete after (\d+) (min|h|days)", self.cleanup)
        assert match, f"{self.topic}: cleanup {self.cleanup!r} is neither 'compact' nor 'delete after N unit'"
        return int(match[1]) * RETENTION_UNITS_MS[match[2]]


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


def documented_topics(text: str | None = None) -> list[TopicRow]:
    """The rows of the first table under "## Topics" in docs/contracts.md."""
    text = CONTRACTS.read_text() if text is None else text
    section = text.split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, _rule, *body = lines
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Topic",
        "Message (proto)",
        "Key (UTF-8)",
        "Headers",
        "Partitions",
        "Cleanup",
        "Max bytes",
        "Producer",
        "Consumers",
    ]
    rows = []
    for line in body:
        topic, message, key, headers, partitions, cleanup, max_bytes, producer, consumers = (
            c.strip() for c in line.strip("|").split("|")
        )
        rows.append(
            TopicRow(
                topic=unquote(topic),
                message=unquote(message) if message.startswith("`") else "",
                key=key,
                headers=headers,
                partitions=partitions,
                cleanup=cleanup,
                max_bytes=int(max_bytes),
                producer=producer,
                consumers=consumers,
            )
        )
    return rows


# -- the document against the code ---------------------------------------------------------------


def test_the_topic_table_is_the_layout_in_code():
    rows = {row.topic: row for row in documented_topics()}
    for prefix in ("", "campus-a."):
        for n in (2, 12):
            specs = {spec.name: spec for spec in topic_specs(prefix, partitions=n)}
            assert {row.name(prefix) for row in rows.values()} == set(specs), "every topic has one row"
            for row in rows.values():
                spec = specs[row.name(prefix)]
                assert row.partitions in PARTITION_RULES, f"{row.topic}: partitions {row.partitions!r}"
                assert PARTITION_RULES[row.partitions](n) == spec.partitions, row.topic
                assert spec.compacted == (row.retention_ms() is None), row.topic
                if not spec.compacted:
                    assert row.retention_ms() == spec.retention_ms, row.topic


def test_the_topic_table_names_real_message_types_and_the_configured_limit():
    from services.capture.config import CaptureSettings
    from services.enhancement.config import EnhancementSettings
    from services.fusion.config import FusionSettings
    from services.recognition.config import RecognitionSettings
    from services.store.config import StoreSettings

    for row in documented_topics():
        assert row.headers == "none", f"{row.topic}: the suite sets no headers"
        assert row.max_bytes == CAMPUS_MAX_MESSAGE_BYTES, row.topic
        cls = row.message_class()
        assert cls is None or cls.DESCRIPTOR.full_name == row.message, row.topic
        assert row.key in KEY_RULES, f"{row.topic}: no check for the key {row.key!r}: add one to KEY_RULES"
    for settings in (
        CaptureSettings,
        EnhancementSettings,
        FusionSettings,
        RecognitionSettings,
        StoreSettings,
    ):
        assert settings.model_fields["max_message_bytes"].default == CAMPUS_MAX_MESSAGE_BYTES, settings
        assert "topic_prefix" in settings.model_fields, settings


def test_the_table_parser_sees_a_changed_row():
    """The checks above can fail: a row that disagrees with the code is read as written."""
    text = CONTRACTS.read_text().replace(
        "| `{prefix}frames.raw.v1` | `classroom.v1.FrameSet` | classroom id | none | N | delete after 15 min |",
        "| `{prefix}frames.raw.v1` | `classroom.v1.EnhancedFrameSet` | classroom id | none | N | delete after 30 min |",
    )
    (raw,) = [row for row in documented_topics(text) if row.name() == FRAMES_RAW]
    assert raw.retention_ms() == 30 * 60_000
    assert raw.message_class() is frames_pb2.EnhancedFrameSet


# -- the document against the wire ---------------------------------------------------------------


def classroom_key(record, message: Message | None) -> str | None:
    """A key that should be the message's classroom id, or what is wrong with it."""
    assert message is not None
    return None if record.key == message.classroom_id.encode() else f"key {record.key!r}"


def refused_key(record, message: Message | None) -> str | None:
    assert isinstance(message, deadletter_pb2.DeadLetter)
    return None if record.key == message.key else f"key {record.key!r}, the letter names {message.key!r}"


WINDOW_TABLE_KEY = re.compile(r"(?P<classroom>[^|]+)\|[^|]+\|[^|]+\|[^|]+\|(\d+|meta)")


def window_table_key(record, message: Message | None) -> str | None:
    match = WINDOW_TABLE_KEY.fullmatch(record.key.decode())
    return None if match else f"key {record.key!r}"


# what each key description in the table means, checked per record
KEY_RULES: dict[str, Callable[..., str | None]] = {
    "classroom id": classroom_key,
    "the refused message's key, as received": refused_key,
    "window-table key": window_table_key,
}


def partition_key(row: TopicRow, record) -> bytes:
    """The bytes the producer's partitioner hashed: the key, or for the changelog (written to
    the partition of the observation set it came from) that set's key, the classroom id."""
    if row.key == "window-table key":
        match = WINDOW_TABLE_KEY.fullmatch(record.key.decode())
        assert match
        return match["classroom"].encode()
    return record.key


def unknown_field_paths(message: Message) -> list[str]:
    """Paths of fields the message type does not know: a sign of decoding as the wrong type."""
    found = [message.DESCRIPTOR.full_name] if len(unknown_fields.UnknownFieldSet(message)) else []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for child in value if field.is_repeated else [value]:
            found += unknown_field_paths(child)
    return found


def read_topic(bootstrap: str, topic: str) -> tuple[int, list]:
    """(partitions, every record) of a topic, from the beginning to its end now, without a group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=50_000_000,
        max_partition_fetch_bytes=20_000_000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return len(partitions), records
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def given_broker() -> Iterator:
    """A broker of the test's own (not the session's: the demo uses unprefixed topics and its
    services' fixed group names), standing for the one an integrator gives the demo."""
    from services.common.embedded_broker import EmbeddedBroker

    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def demo_run(given_broker, tmp_path_factory) -> dict:
    """A short headless demo on ``given_broker``, one malformed frame set on frames.raw first
    (so the dead-letter topic has a letter); returns the demo's --json summary."""
    from services.common.topics import ensure_topics
    from tests.kafka_helpers import produce
    from tests.services.cli.test_demo import run_demo

    ensure_topics(given_broker.bootstrap, [s for s in topic_specs(partitions=2) if s.name == FRAMES_RAW])
    produce(given_broker.bootstrap, FRAMES_RAW, [(b"room-101", MALFORMED_FRAME_SET)])
    tmp_path = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as env:
        # The letter waits on frames.raw while the demo starts; on a loaded machine that takes
        # longer than the stages' shedding age (30 s), and a shed frame set is never parsed.
        env.setenv("ENHANCE_SHED_AFTER_S", "0")
        summary = run_demo(tmp_path, "--broker", given_broker.bootstrap)  # no process is left behind
    summary["workdir"] = str(tmp_path / "demo")
    return summary


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_runs_on_the_broker_it_is_given(demo_run, given_broker):
    assert demo_run["broker"] == {"bootstrap": given_broker.bootstrap, "embedded": False}
    assert given_broker.process is not None and given_broker.process.poll() is None, "left running"
    assert demo_run["stages"]["store"]["total"] > 0, "the run went end to end on the given broker"
    assert demo_run["stages"]["enhancement"]["dead_letters"] == 1  # the malformed frame set


@pytest.mark.integration
@pytest.mark.slow
def test_a_given_broker_that_does_not_answer_fails_the_demo_by_name(tmp_path):
    from services.common.ports import bind_free_port

    address = f"127.0.0.1:{bind_free_port()}"  # nothing listens there
    done = subprocess.run(
        [
            *(sys.executable, "-m", "services.cli.main", "demo", "--headless", "--seconds", "5"),
            *("--broker", address, "--workdir", str(tmp_path / "demo")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"demo failed: Kafka at {address} did not answer" in done.stderr


def test_broker_option_refuses_what_is_not_host_port():
    from services.cli.demo import bootstrap_servers

    assert bootstrap_servers("127.0.0.1:9092,kafka-1:9093") == "127.0.0.1:9092,kafka-1:9093"
    for bad in ("127.0.0.1", "kafka:x", ":9092", "kafka:0", "a:1,b"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not host:port"):
            bootstrap_servers(bad)


@pytest.mark.integration
@pytest.mark.slow
def test_every_message_of_a_run_is_what_the_topic_table_says(demo_run, given_broker):
    from kafka.admin import KafkaAdminClient
    from kafka.partitioner.default import murmur2

    rows = {row.name(): row for row in documented_topics()}
    admin = KafkaAdminClient(bootstrap_servers=given_broker.bootstrap)
    try:
        on_broker = {t for t in admin.list_topics() if not t.startswith("__")}
    finally:
        admin.close()
    assert on_broker == set(rows), "the run used exactly the documented topics"
    decoded: dict[str, list[Message]] = {}
    for name, row in rows.items():
        partitions, records = read_topic(given_broker.bootstrap, name)
        assert records, f"{name}: no messages in the run"
        cls = row.message_class()
        decoded[name] = []
        for record in records:
            if name == FRAMES_RAW and record.value == MALFORMED_FRAME_SET:
                continue
            where = f"{name}[{record.partition}]@{record.offset}"
            assert not record.headers, f"{where}: headers {record.headers}"
            assert len(record.key) + len(record.value) <= row.max_bytes, where
            record.key.decode("utf-8")  # keys are UTF-8 text
            message = cls.FromString(record.value) if cls is not None else None
            if message is not None:
                assert not unknown_field_paths(message), f"{where}: not a clean {row.message}"
                decoded[name].append(message)
            assert (problem := KEY_RULES[row.key](record, message)) is None, f"{where}: {problem}"
            expected = (murmur2(partition_key(row, record)) & 0x7FFFFFFF) % partitions
            assert record.partition == expected, f"{where}: not the default partitioner's partition"
            if name in ("frames.raw.v1", "frames.enhanced.v1", "observations.v1"):
                assert record.timestamp == message.capture_ts_us // 1000, f"{where}: record timestamp"
    check_enhanced_depth(decoded["frames.enhanced.v1"], Path(demo_run["workdir"]))
    check_event_windows(decoded["behaviours.v1"])
    check_students(decoded["observations.v1"], Path(demo_run["workdir"]))
    (letter,) = decoded["deadletter.v1"]
    assert (letter.service, letter.source_topic, letter.reason_code) == (
        "enhancement",
        FRAMES_RAW,
        "malformed_message",
    )


def check_enhanced_depth(frame_sets: list, workdir: Path) -> None:
    """docs/contracts.md, "Enhancement": depth travels on the registration grid, analysis size // k;
    at the demo's 640×360 with the simulated Kinect NFOV depth k is 1, the full colour size."""
    from services.common.campus import load_campus
    from services.common.codecs import decode_image, registered_depth_at
    from services.enhancement.alignment import registration_tables

    campus = load_campus(workdir / "campus.yaml")
    for frame_set in frame_sets:
        camera = campus.camera(frame_set.classroom_id, frame_set.camera_id)
        size = (camera.analysis_width, camera.analysis_height)
        k = registration_tables(camera.calibration, size).splat_factor
        assert (frame_set.rgb.width, frame_set.rgb.height) == size
        assert (frame_set.depth.width, frame_set.depth.height) == (size[0] // k, size[1] // k)
        assert (k, frame_set.depth.width, frame_set.depth.height) == (1, 640, 360)
    depth = decode_image(frame_sets[-1].depth, name="depth")
    assert registered_depth_at(depth, (360, 640)).shape == (360, 640)


def check_event_windows(events: list) -> None:
    """docs/contracts.md, "Resolutions and timing": window and segment bounds are 8 fps slot
    boundaries, the window 16 slots long, not the capture times of its first and last frames."""
    from services.common.vocabulary import WINDOW_FPS, WINDOW_FRAMES

    slot_us = round(1e6 / WINDOW_FPS)
    assert slot_us == 125_000
    for event in events:
        bounds = (event.window_start_us, event.window_end_us, event.segment_start_us, event.segment_end_us)
        assert all(b % slot_us == 0 for b in bounds), event.event_id
        assert event.window_end_us - event.window_start_us == WINDOW_FRAMES * slot_us
        assert event.window_start_us <= event.segment_start_us < event.segment_end_us == event.window_end_us


def check_students(observation_sets: list, workdir: Path) -> None:
    """docs/contracts.md, "Ids": a rostered seat's student id, else ``seat:<seat_id>``."""
    from services.common.campus import load_campus

    campus = load_campus(workdir / "campus.yaml")
    students = [(o.course_id, s) for o in observation_sets for s in o.students]
    assert students, "fusion observed somebody"
    for course_id, student in students:
        rostered = campus.student_in_seat(course_id, student.seat_id)
        assert student.student_id == (rostered or f"seat:{student.seat_id}"), student.student_id
