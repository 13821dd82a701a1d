"""One dead-letter envelope for every service: the reason always, the payload only when kept."""

from __future__ import annotations

from services.capture.service import CapturedRecord
from services.common.bus import dead_letter
from services.common.errors import CorruptImage, OversizedMessage
from services.recognition.ordering import Record


def test_a_kafka_record_is_described_and_its_payload_dropped_by_default():
    record = Record("frames.enhanced.v1", 3, 41, 0, b"room-1", b"\x00" * 100)
    envelope = dead_letter(
        service="fusion",
        record=record,
        error=CorruptImage("rgb: not a JPEG"),
        keep_payload=False,
        max_payload=1000,
    )
    assert (envelope.source_topic, envelope.source_partition, envelope.source_offset) == (
        "frames.enhanced.v1",
        3,
        41,
    )
    assert envelope.reason_code == "corrupt_image" and envelope.reason == "rgb: not a JPEG"
    assert envelope.payload == b"" and envelope.payload_dropped and envelope.payload_size == 100
    kept = dead_letter(
        service="fusion", record=record, error=CorruptImage("x"), keep_payload=True, max_payload=1000
    )
    assert kept.payload == record.value and not kept.payload_dropped
    too_big = dead_letter(
        service="fusion", record=record, error=CorruptImage("x"), keep_payload=True, max_payload=10
    )
    assert too_big.payload == b"" and too_big.payload_dropped


def test_a_frame_set_capture_could_not_publish():
    source = CapturedRecord("frames.raw.v1", -1, 77, b"room-1", b"\x01" * 5000)
    envelope = dead_letter(
        service="capture",
        record=source,
        error=OversizedMessage("5000 bytes, the campus limit is 4000"),
        keep_payload=False,
        max_payload=0,
        advice="lower resolution/quality",
    )
    assert envelope.source_partition == -1 and envelope.source_offset == 77 and envelope.key == b"room-1"
    assert envelope.reason == "5000 bytes, the campus limit is 4000 (lower resolution/quality)"
    assert envelope.payload_dropped and envelope.payload_size == 5000


def test_a_refused_message_is_counted_logged_without_its_payload_and_enveloped(caplog):
    import logging

    from services.common.bus import refuse
    from services.common.metrics import ServiceMetrics
    from services.common.pb.classroom.v1 import deadletter_pb2

    metrics = ServiceMetrics("fusion")
    record = Record("frames.enhanced.v1", 3, 41, 0, b"room-1", b"SECRET-PIXELS" * 10)
    with caplog.at_level(logging.WARNING, logger="test-refuse"):
        sent = refuse(
            record,
            CorruptImage("rgb: not a JPEG"),
            service="fusion",
            metrics=metrics,
            log=logging.getLogger("test-refuse"),
            keep_payload=False,
            max_payload=1000,
        )
    envelope = deadletter_pb2.DeadLetter.FromString(sent)
    assert envelope.service == "fusion" and envelope.reason_code == "corrupt_image"
    assert envelope.source_offset == 41 and envelope.payload == b"" and envelope.payload_size == 130
    assert metrics.dead_letters.labels("fusion", "corrupt_image")._value.get() == 1
    (line,) = caplog.records
    assert line.getMessage() == "dead letter" and line.offset == 41 and line.reason_code == "corrupt_image"
    assert "SECRET" not in repr(line.__dict__)
