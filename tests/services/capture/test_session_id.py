"""Session ids are unique across restarts and machines: two captures of one course (or one
classroom) that start within the same second get two sessions."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from services.capture.config import CaptureSettings
from services.capture.service import default_session_id


def test_two_captures_in_one_second_get_two_sessions() -> None:
    started = datetime(2026, 12, 7, 9, 0, 0, 250_000, tzinfo=UTC)
    course = CaptureSettings(
        kafka_bootstrap="127.0.0.1:9092", classroom_id="room-101", camera_id="front", course_id="CS101"
    )
    ids = {default_session_id(course, started) for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"CS101-20261207T090000Z-[0-9a-f]{8}", i) for i in ids)
    room = CaptureSettings(kafka_bootstrap="127.0.0.1:9092", classroom_id="room-101", camera_id="front")
    assert default_session_id(room, started).startswith("room-101-20261207T090000Z-")
