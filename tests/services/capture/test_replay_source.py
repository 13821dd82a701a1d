"""The replay camera: frame sets recorded once (images included) are published again at the
camera rate without decoding or encoding, with this agent's ids, sequence and timestamps."""

from __future__ import annotations

from itertools import pairwise

import pytest

from services.capture.config import CaptureSettings
from services.capture.service import CaptureService
from services.capture.sources import CameraUnavailable
from services.capture.sources.replay import ReplaySource, read_recording
from services.common.errors import BadInput
from services.common.pb.classroom.v1 import frames_pb2
from services.common.topics import FRAMES_RAW
from tests.fixtures import ServiceThread
from tests.kafka_helpers import consume_all


def capture(broker, prefix: str, room: str, **settings) -> None:
    agent = CaptureService(
        CaptureSettings(
            kafka_bootstrap=broker.bootstrap,
            topic_prefix=prefix,
            classroom_id=room,
            camera_id="front",
            fps=8.0,
            realtime=False,
            sim_students=2,
            sim_width=320,
            sim_height=180,
            **settings,
        )
    )
    thread = ServiceThread(agent).start()
    thread.thread.join(120)  # the source ends after max_frames and the agent stops by itself
    assert thread.stop() == 0


@pytest.mark.integration
def test_a_recording_replays_without_encoding_again(broker, topic_prefix, tmp_path) -> None:
    recording = tmp_path / "room.rec"
    capture(broker, topic_prefix, "room-1", max_frames=10, record_to=recording)
    recorded = list(read_recording(recording))
    assert len(recorded) == 10
    capture(broker, topic_prefix, "room-2", source="replay", replay_path=recording, max_frames=15)
    records = consume_all(broker.bootstrap, topic_prefix + FRAMES_RAW, expect=25, timeout=60)
    replayed = [frames_pb2.FrameSet.FromString(r.value) for r in records]
    replayed = [m for m in replayed if m.classroom_id == "room-2"]
    assert [m.sequence for m in replayed] == list(range(15))  # looped: 10, then 5 again
    assert all(m.source == "replay" and m.camera_id == "front" for m in replayed)
    for m, original in zip(replayed, recorded + recorded, strict=False):
        assert m.rgb.data == original.rgb.data and m.thermal.data == original.thermal.data  # not re-encoded
        assert (
            m.depth.capture_ts_us - m.capture_ts_us == original.depth.capture_ts_us - original.capture_ts_us
        )
    assert all(b.capture_ts_us > a.capture_ts_us for a, b in pairwise(replayed))  # on across the loop


def test_a_missing_or_damaged_recording_is_named(tmp_path) -> None:
    with pytest.raises(CameraUnavailable, match="no recording"):
        ReplaySource(tmp_path / "none.rec", fps=8.0)
    empty = tmp_path / "empty.rec"
    empty.write_bytes(b"")
    with pytest.raises(CameraUnavailable, match="holds no frame set"):
        ReplaySource(empty, fps=8.0)
    cut = tmp_path / "cut.rec"
    cut.write_bytes(b"\x00\x00\x01\x00" + b"\x0a\x01" * 10)
    with pytest.raises(BadInput, match="frame set 0 is cut short"):
        list(read_recording(cut))
    with pytest.raises(CameraUnavailable, match="frame set 0 is cut short"):
        ReplaySource(cut, fps=8.0)
    with pytest.raises(ValueError, match="CAPTURE_REPLAY_PATH"):
        CaptureSettings(kafka_bootstrap="x:1", classroom_id="r", camera_id="c", source="replay")
