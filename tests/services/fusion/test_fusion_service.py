"""Fusion against the embedded broker and a real model server: observations per student, dead letters
for bad frame sets, and a model server that is down at first costs latency, never messages."""

from __future__ import annotations

import pytest

from services.common.campus import Camera, Campus, Classroom, Course, RosterEntry, Seat, dump_campus
from services.common.pb.classroom.v1 import deadletter_pb2, observations_pb2
from services.common.ports import bind_free_port
from services.common.topics import DEAD_LETTER, FRAMES_ENHANCED, OBSERVATIONS
from services.fusion.config import FusionSettings
from services.fusion.service import FusionService
from tests.fixtures import ModelServerThread, ServiceThread, wait_for
from tests.frames import enhanced_frame_set
from tests.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.integration


def campus_file(tmp_path):
    seats = tuple(Seat(id=f"A{i}", box=(20 + 150 * i, 120, 150 + 150 * i, 300)) for i in range(3))
    campus = Campus(
        classrooms=(Classroom(id="room-1", cameras=(Camera(id="cam-1", seats=seats),)),),
        courses=(
            Course(
                id="c-1",
                classroom="room-1",
                roster=(RosterEntry(student="s-ana", seat="A0"), RosterEntry(student="s-bo", seat="A1")),
            ),
        ),
    )
    path = tmp_path / "campus.yaml"
    dump_campus(campus, path)
    return path


def test_fusion_waits_for_the_model_server_and_dead_letters_bad_frames(
    broker, topic_prefix, tmp_path
) -> None:
    port = bind_free_port()
    settings = FusionSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=topic_prefix,
        campus_file=campus_file(tmp_path),
        model_server=f"127.0.0.1:{port}",
        model_timeout_s=5,
        session_timeout_ms=6000,
        min_occupancy=0.0,
    )
    corrupt = enhanced_frame_set(2)
    corrupt.depth.data = corrupt.depth.data[:64]
    unknown = enhanced_frame_set(3, camera="cam-9")
    messages = [
        (b"room-1", enhanced_frame_set(0).SerializeToString()),
        (b"room-1", enhanced_frame_set(1).SerializeToString()),
        (b"room-1", corrupt.SerializeToString()),
        (b"room-1", unknown.SerializeToString()),
        (b"room-1", b"\x12\x04junk"),
        (b"room-1", b"\x0a" * 1_200_000),  # above the campus limit: Apache Kafka would refuse it
        (b"room-1", enhanced_frame_set(4).SerializeToString()),
    ]
    produce(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, messages)
    fusion = ServiceThread(FusionService(settings)).start()
    model = None
    try:
        # No model server yet: fusion retries and is not ready; nothing is committed or lost.
        wait_for(
            lambda: fusion.service.metrics.retries.labels("fusion", "model_server")._value.get() >= 2,
            what="fusion to retry against the missing model server",
        )
        assert fusion.service.readiness()[0] is False
        model = ModelServerThread(port).start()
        observations = consume_all(broker.bootstrap, topic_prefix + OBSERVATIONS, expect=3, timeout=90)
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=4, timeout=30)
    finally:
        fusion.stop()
        if model is not None:
            model.stop()
    parsed = [observations_pb2.ObservationSet.FromString(r.value) for r in observations]
    assert sorted(o.sequence for o in parsed) == [0, 1, 4]
    first = parsed[0]
    assert {s.student_id for s in first.students} == {
        "s-ana",
        "s-bo",
        "seat:A2",
    }  # unrostered seat: no name guessed
    assert all(len(s.keypoints) == 17 for s in first.students)
    assert "untrained" in first.model_version
    reasons = sorted(deadletter_pb2.DeadLetter.FromString(r.value).reason_code for r in letters)
    assert reasons == ["corrupt_image", "malformed_message", "oversized_message", "unknown_camera"]
    oversized = next(
        d
        for d in (deadletter_pb2.DeadLetter.FromString(r.value) for r in letters)
        if d.reason_code == "oversized_message"
    )
    assert oversized.payload_dropped and oversized.payload_size == 1_200_000
