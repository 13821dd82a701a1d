"""The enhancement service against the embedded broker: frame sets come out enhanced and aligned to
colour at the analysis size; every kind of bad input is dead-lettered with its reason and the
service keeps going."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from services.common import codecs
from services.common.calibration import CameraCalibration, Extrinsics, Intrinsics, SensorCalibration
from services.common.campus import Camera, Campus, Classroom, dump_campus
from services.common.pb.classroom.v1 import deadletter_pb2, frames_pb2
from services.common.topics import DEAD_LETTER, FRAMES_ENHANCED, FRAMES_RAW
from services.enhancement.config import EnhancementSettings
from services.enhancement.service import EnhancementService
from tests.fixtures import ServiceThread, wait_for
from tests.frames import T0_US
from tests.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.integration

CALIBRATION = CameraCalibration(
    rgb=Intrinsics(width=640, height=360, fx=520, fy=520, cx=319.5, cy=179.5),
    depth=SensorCalibration(
        intrinsics=Intrinsics(width=320, height=288, fx=252, fy=252, cx=159.5, cy=143.5),
        to_rgb=Extrinsics(translation_mm=(-32.0, -2.0, 4.0)),
    ),
    thermal=SensorCalibration(
        intrinsics=Intrinsics(width=320, height=240, fx=280, fy=280, cx=159.5, cy=119.5),
        to_rgb=Extrinsics(translation_mm=(60.0, 0.0, 0.0)),
        time_offset_us=20_000,
    ),
    working_distance_mm=4000,
)


def raw_frame_set(sequence: int, *, camera: str = "cam-1") -> frames_pb2.FrameSet:
    rng = np.random.default_rng(sequence)
    ts = T0_US + sequence * 66_666
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    dim = (np.sin(xx / 40) + np.cos(yy / 30)) * 10 + 30  # a dark room
    rgb = np.clip(np.stack([dim, dim * 0.9, dim * 1.1], 2) + rng.normal(0, 3, (360, 640, 3)), 0, 255).astype(
        np.uint8
    )
    dy, _dx = np.mgrid[0:288, 0:320]
    depth = (3500 + 5 * dy).astype(np.uint16)
    depth[100:140, 100:160] = 0  # a hole
    thermal = (22 + 10 * np.exp(-((np.mgrid[0:240, 0:320][1] - 160) ** 2) / 800.0)).astype(np.float32)
    return frames_pb2.FrameSet(
        classroom_id="room-1",
        session_id="sess-1",
        camera_id=camera,
        course_id="c-1",
        sequence=sequence,
        capture_ts_us=ts,
        rgb=codecs.encode_rgb(rgb, capture_ts_us=ts),
        depth=codecs.encode_depth(depth, capture_ts_us=ts + 5_000),
        thermal=codecs.encode_thermal(thermal, capture_ts_us=ts + 20_000),
        frame_rate=15.0,
        published_ts_us=ts,
    )


def write_campus(folder, *cameras: str, rooms: tuple[str, ...] = ("room-1",)) -> None:
    """room-1 (or ``rooms``) with these cameras, written as a new file renamed over the old (as a
    ConfigMap update does)."""
    campus = Campus(
        classrooms=tuple(
            Classroom(id=room, cameras=tuple(Camera(id=c, calibration=CALIBRATION) for c in cameras))
            for room in rooms
        )
    )
    dump_campus(campus, folder / "next.yaml")
    (folder / "next.yaml").replace(folder / "campus.yaml")


def settings_for(broker, prefix: str, folder, **extra) -> EnhancementSettings:
    return EnhancementSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=prefix,
        campus_file=folder / "campus.yaml",
        session_timeout_ms=6000,
        **extra,
    )


def test_enhanced_output_and_dead_letters(broker, topic_prefix, tmp_path) -> None:
    write_campus(tmp_path, "cam-1")
    settings = settings_for(broker, topic_prefix, tmp_path)
    corrupt = raw_frame_set(2)
    corrupt.rgb.data = corrupt.rgb.data[: len(corrupt.rgb.data) // 2]
    missing = raw_frame_set(3)
    missing.ClearField("depth")
    wrong_size = raw_frame_set(4)
    small = np.zeros((180, 320, 3), np.uint8)
    wrong_size.rgb.CopyFrom(codecs.encode_rgb(small, capture_ts_us=wrong_size.capture_ts_us))
    messages = [
        raw_frame_set(0).SerializeToString(),
        b"\x0a\x02\xff\xff\xff",  # malformed protobuf
        corrupt.SerializeToString(),
        missing.SerializeToString(),
        wrong_size.SerializeToString(),
        raw_frame_set(5, camera="cam-404").SerializeToString(),
        b"\x00" * 1_100_000,  # oversized
        raw_frame_set(6).SerializeToString(),
    ]
    produce(broker.bootstrap, topic_prefix + FRAMES_RAW, [(b"room-1", m) for m in messages])
    service = ServiceThread(EnhancementService(settings)).start()
    try:
        enhanced = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=2, timeout=90)
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=6, timeout=60)
    finally:
        service.stop()
    outputs = [frames_pb2.EnhancedFrameSet.FromString(r.value) for r in enhanced]
    assert sorted(o.sequence for o in outputs) == [0, 6]
    out = outputs[0]
    rgb = codecs.decode_image(out.rgb, name="rgb")
    depth_grid = codecs.decode_image(out.depth, name="depth")
    assert depth_grid.shape == (180, 320)  # sent on the registration grid (k = 2) ...
    depth = codecs.registered_depth_at(depth_grid, rgb.shape[:2])  # ... used at the colour size
    thermal = codecs.thermal16_to_celsius(codecs.decode_image(out.thermal_radiometric, name="thermal"))
    assert rgb.shape == (360, 640, 3) and depth.shape == (360, 640) and thermal.shape == (360, 640)
    assert rgb.mean() > 40  # a dark room comes out brighter
    assert out.report.rgb_mean_luma_out > out.report.rgb_mean_luma_in
    assert 15 < float(np.median(thermal)) < 40  # radiometric values kept in °C
    reasons = sorted(deadletter_pb2.DeadLetter.FromString(r.value).reason_code for r in letters)
    assert reasons == sorted(
        [
            "malformed_message",
            "corrupt_image",
            "missing_modality",
            "wrong_resolution",
            "unknown_camera",
            "oversized_message",
        ]
    )


def test_stale_frame_sets_are_shed_and_the_capture_time_travels_on(broker, topic_prefix, tmp_path) -> None:
    """A frame set older than shed_after_s (its record's timestamp is the capture time) is
    skipped and counted for its classroom; the others come out carrying their capture time."""
    from kafka import KafkaProducer

    from services.common.metrics import ServiceMetrics

    write_campus(tmp_path, "cam-1")
    settings = settings_for(broker, topic_prefix, tmp_path, shed_after_s=45.0)
    now_ms = time.time_ns() // 1_000_000
    stamps = {0: now_ms - 1_000, 1: now_ms - 120_000, 2: now_ms - 500, 3: now_ms - 600_000}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=20_000_000)
    for sequence, stamp in stamps.items():
        producer.send(
            topic_prefix + FRAMES_RAW,
            value=raw_frame_set(sequence).SerializeToString(),
            key=b"room-1",
            timestamp_ms=stamp,
        )
    producer.flush()
    producer.close()
    service = EnhancementService(settings)
    thread = ServiceThread(service).start()
    try:
        enhanced = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=2, timeout=90)
    finally:
        thread.stop()
    sequences = sorted(frames_pb2.EnhancedFrameSet.FromString(r.value).sequence for r in enhanced)
    assert sequences == [0, 2]
    assert sorted(r.timestamp for r in enhanced) == sorted([stamps[0], stamps[2]])
    metrics: ServiceMetrics = service.metrics
    assert metrics.shed.labels("enhancement", "room-1")._value.get() == 2


def produce_stamped(broker, topic: str, frame_sets: list[tuple[frames_pb2.FrameSet, int]]) -> None:
    """Frame sets with the record timestamps (capture times, ms) given, keyed by their classroom."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=20_000_000)
    for message, stamp_ms in frame_sets:
        key = message.classroom_id.encode()
        producer.send(topic, value=message.SerializeToString(), key=key, timestamp_ms=stamp_ms)
    producer.flush()
    producer.close()


def records_in(broker, topic: str) -> int:
    """Records on every partition of ``topic`` (its end offsets: nothing is deleted in a test)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_a_classroom_whose_frame_sets_all_arrive_late_is_named_in_the_log(
    broker, topic_prefix, tmp_path, caplog
) -> None:
    """room-1's frame sets all arrive 2 minutes old (its edge box's clock runs behind): each is
    shed and counted, and after shed_after_s of that one warning names the classroom and the
    cause. room-2's arrive 2 minutes ahead (its clock runs ahead): processed, counted, named."""
    write_campus(tmp_path, "cam-1", rooms=("room-1", "room-2"))
    service = EnhancementService(settings_for(broker, topic_prefix, tmp_path, shed_after_s=1.0))
    thread = ServiceThread(service).start()
    try:
        wait_for(lambda: service.readiness()[0], timeout=60, what="enhancement consuming")
        with caplog.at_level(logging.INFO, logger="enhancement"):
            for sequence in range(12):  # 2.4 s of frame sets, as they are captured
                ahead = raw_frame_set(sequence)
                ahead.classroom_id = "room-2"
                now_ms = time.time_ns() // 1_000_000
                produce_stamped(
                    broker,
                    topic_prefix + FRAMES_RAW,
                    [(raw_frame_set(sequence), now_ms - 120_000), (ahead, now_ms + 120_000)],
                )
                time.sleep(0.2)
            enhanced = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=12, timeout=90)
            wait_for(lambda: service.metrics.shed.labels("enhancement", "room-1")._value.get() == 12)
    finally:
        thread.stop()
    assert {frames_pb2.EnhancedFrameSet.FromString(r.value).classroom_id for r in enhanced} == {"room-2"}
    assert service.metrics.ahead.labels("enhancement", "room-2")._value.get() == 12
    assert 119 < service.metrics.frame_age.labels("enhancement", "room-1")._value.get() < 150
    lines = {
        r.classroom: r for r in caplog.records if r.levelno == logging.WARNING and hasattr(r, "classroom")
    }
    assert lines["room-1"].getMessage() == (
        "classroom room-1: all frame sets arrive older than 1 s and are shed — check the camera clock / the lag"
    )
    assert lines["room-1"].likely_cause.startswith("clock:")  # the stage kept up: they were old when written
    assert "ahead of this host's clock (processed)" in lines["room-2"].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # once per classroom


def test_a_stage_restarted_mid_class_resumes_at_its_committed_offset(
    broker, topic_prefix, tmp_path, caplog
) -> None:
    """Enhancement stops mid-class and comes back: it resumes where it committed (nothing
    enhanced twice), sheds and counts the part of its backlog that aged past shed_after_s,
    enhances the rest, and logs where it resumed and how far behind. (Recognition counts the
    windows such a gap costs: tests/services/recognition/test_windows.py.)"""
    write_campus(tmp_path, "cam-1")
    settings = settings_for(broker, topic_prefix, tmp_path, shed_after_s=45.0)
    topic = topic_prefix + FRAMES_RAW
    now_ms = time.time_ns() // 1_000_000
    produce_stamped(broker, topic, [(raw_frame_set(k), now_ms - 1_000 + k) for k in (0, 1)])
    thread = ServiceThread(EnhancementService(settings)).start()
    try:
        first = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=2, timeout=90)
    finally:
        thread.stop()
    # while it is down the camera keeps sending; the first of it is older than 45 s on return
    backlog = [(raw_frame_set(k), now_ms - 120_000 + k) for k in (2, 3, 4)]
    produce_stamped(broker, topic, backlog + [(raw_frame_set(k), now_ms + k) for k in (5, 6)])
    restarted = EnhancementService(settings)
    with caplog.at_level(logging.INFO, logger="enhancement"):
        thread = ServiceThread(restarted).start()
        try:
            wait_for(lambda: restarted.processed == 5, timeout=90, what="the backlog handled")
        finally:
            thread.stop()
    assert records_in(broker, topic_prefix + FRAMES_ENHANCED) == 4  # nothing enhanced twice
    enhanced = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=4, timeout=60)
    sequences = [frames_pb2.EnhancedFrameSet.FromString(r.value).sequence for r in enhanced]
    assert len(first) == 2 and sorted(sequences) == [0, 1, 5, 6]
    assert restarted.metrics.shed.labels("enhancement", "room-1")._value.get() == 3
    (resumed,) = [r for r in caplog.records if r.getMessage() == "resuming partition at the committed offset"]
    assert (resumed.offset, resumed.messages_behind) == (2, 5) and resumed.first_age_s >= 119


def test_a_camera_added_to_the_campus_file_is_served_without_a_restart(
    broker, topic_prefix, tmp_path
) -> None:
    write_campus(tmp_path, "cam-1")
    settings = settings_for(broker, topic_prefix, tmp_path, campus_reload_s=0.5)
    thread = ServiceThread(EnhancementService(settings)).start()
    try:
        produce(
            broker.bootstrap,
            topic_prefix + FRAMES_RAW,
            [(b"room-1", raw_frame_set(0, camera="cam-2").SerializeToString())],
        )
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=1, timeout=90)
        write_campus(tmp_path, "cam-1", "cam-2")
        time.sleep(2.0)  # a few reload intervals
        produce(
            broker.bootstrap,
            topic_prefix + FRAMES_RAW,
            [(b"room-1", raw_frame_set(1, camera="cam-2").SerializeToString())],
        )
        enhanced = consume_all(broker.bootstrap, topic_prefix + FRAMES_ENHANCED, expect=1, timeout=90)
    finally:
        thread.stop()
    letter = deadletter_pb2.DeadLetter.FromString(letters[0].value)
    assert letter.reason_code == "unknown_camera" and "no restart needed" in letter.reason
    assert [frames_pb2.EnhancedFrameSet.FromString(r.value).camera_id for r in enhanced] == ["cam-2"]
