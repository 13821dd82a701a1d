"""A camera failure never stops the capture agent or the other camera of its classroom: the
agent runs against the embedded broker with a Kinect and a thermal camera faked
(hardware_fakes.py) and publishes on while one of them fails, saying why and counting it."""

from __future__ import annotations

import logging
from itertools import pairwise

import pytest

from services.capture import service as capture_service
from services.capture.config import CaptureSettings
from services.capture.service import CaptureService
from services.capture.sources import CameraUnavailable
from services.capture.sources.kinect import KinectSource
from services.common import codecs
from services.common.campus import CampusConfigError
from services.common.errors import MissingModality
from services.common.pb.classroom.v1 import frames_pb2
from services.common.topics import FRAMES_RAW
from tests.fixtures import ServiceThread
from tests.kafka_helpers import consume_all
from tests.services.capture.hardware_fakes import (
    THERMAL_CAL,
    THERMAL_URL,
    FakeThermalRig,
    fake_pyk4a,
    thermal_camera,
)


def kinect(rig: FakeThermalRig | None = None, *, reconnect_attempts: int = 2, **pyk4a) -> KinectSource:
    return KinectSource(
        thermal=thermal_camera(rig or FakeThermalRig(), reconnect_attempts=reconnect_attempts),
        thermal_calibration=THERMAL_CAL,
        thermal_retry_s=0,  # try the thermal camera again at each frame set while it is out
        pyk4a_module=fake_pyk4a(**pyk4a),
    )


def capture(
    broker, prefix: str, room: str, source: KinectSource | None, *, frames: int
) -> tuple[CaptureService, int | None]:
    """Run a capture agent until it has read ``frames`` frame sets (it stops by itself); the
    agent and its exit code."""
    agent = CaptureService(
        CaptureSettings(
            kafka_bootstrap=broker.bootstrap,
            topic_prefix=prefix,
            classroom_id=room,
            camera_id="front",
            source="kinect",
            thermal_device=THERMAL_URL,
            window_rate_only=False,  # every frame set, so each can be checked
            reconnect_s=0.05,
            max_frames=frames,
        ),
        source=source,
    )
    thread = ServiceThread(agent).start()
    thread.thread.join(60)
    return agent, thread.stop()


def published(broker, prefix: str, room: str, expect: int) -> list[frames_pb2.FrameSet]:
    records = consume_all(broker.bootstrap, prefix + FRAMES_RAW, expect=expect, timeout=60)
    messages = [frames_pb2.FrameSet.FromString(r.value) for r in records]
    return sorted((m for m in messages if m.classroom_id == room), key=lambda m: m.capture_ts_us)


def count(counter, *labels: str) -> float:
    return counter.labels("capture", *labels)._value.get()


@pytest.mark.integration
def test_a_lost_thermal_camera_leaves_the_kinect_publishing(broker, topic_prefix, caplog) -> None:
    rig = FakeThermalRig()
    # three frames, then the stream drops and the next three opens are refused: two reopen
    # attempts at the loss (then it is reported lost), one more at the next frame set, and the
    # fourth open brings it back
    rig.loss_at_read, rig.refused_opens_after_loss = 4, 3
    with caplog.at_level(logging.INFO):
        agent, exit_code = capture(broker, topic_prefix, "room-1", kinect(rig), frames=8)
    assert exit_code == 0 and agent.dropped == 0
    messages = published(broker, topic_prefix, "room-1", expect=8)
    assert [m.sequence for m in messages] == list(range(8))  # the Kinect never stopped
    assert all(m.rgb.data and m.depth.data for m in messages)
    assert [m.sequence for m in messages if not m.HasField("thermal")] == [3, 4]
    with pytest.raises(MissingModality, match="frame set 3 lacks thermal"):
        codecs.decode_frame_set(messages[3])  # what enhancement dead-letters as missing_modality
    assert codecs.decode_frame_set(messages[5]).thermal_c.shape == (24, 32)  # back, in °C
    assert count(agent.incomplete, "thermal") == 2
    assert count(agent.camera_failures, "thermal") == 1
    out = next(r for r in caplog.records if r.getMessage().startswith("thermal camera out"))
    assert "not found again after 2 reopen attempts" in out.error
    assert any(r.getMessage() == "thermal camera back, frame sets complete again" for r in caplog.records)
    assert agent.readiness() == (True, "ok")


@pytest.mark.integration
def test_a_kinect_unplugged_mid_run_is_reopened_and_its_frame_sets_resume(
    broker, topic_prefix, caplog, monkeypatch
) -> None:
    first_rig = FakeThermalRig()
    first = kinect(first_rig, lost_after=3)  # and stopping it fails: it is gone
    opened: list[KinectSource | None] = []

    def reopen(settings: CaptureSettings) -> KinectSource:
        if not opened:
            opened.append(None)
            raise CameraUnavailable("Azure Kinect device 0 cannot be opened: K4A device not found")
        source = kinect()
        opened.append(source)
        return source

    monkeypatch.setattr(capture_service, "open_source", reopen)
    with caplog.at_level(logging.INFO):
        agent, exit_code = capture(broker, topic_prefix, "room-2", first, frames=6)
    assert exit_code == 0
    messages = published(broker, topic_prefix, "room-2", expect=6)
    assert [m.sequence for m in messages] == [0, 1, 2, 0, 1, 2]  # the reopened Kinect counts afresh
    assert all(b.capture_ts_us > a.capture_ts_us for a, b in pairwise(messages))
    assert all(m.HasField("thermal") for m in messages)
    assert count(agent.camera_failures, "kinect") == 2  # lost once, then one open that failed
    errors = {r.getMessage(): r for r in caplog.records if r.levelno >= logging.WARNING}
    assert "stopped delivering frames: K4A_WAIT_RESULT_FAILED" in errors["camera lost"].error
    assert "device not connected" in errors["camera did not close cleanly"].error
    assert "K4A device not found" in errors["camera unavailable"].error
    assert first_rig.captures[0].released  # its thermal camera closed with it, free to reopen
    assert agent.readiness() == (True, "ok")


@pytest.mark.integration
def test_an_error_from_the_camera_library_is_a_lost_camera_not_a_stopped_agent(
    broker, topic_prefix, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(capture_service, "open_source", lambda settings: kinect())
    with caplog.at_level(logging.INFO):
        agent, exit_code = capture(broker, topic_prefix, "room-3", kinect(broken_at=2), frames=4)
    assert exit_code == 0
    assert [m.sequence for m in published(broker, topic_prefix, "room-3", expect=4)] == [0, 1, 0, 1]
    lost = next(r for r in caplog.records if r.getMessage() == "camera lost")
    assert lost.error.startswith("ValueError: cannot reshape array") and lost.exc_info is not None
    assert count(agent.camera_failures, "kinect") == 1


@pytest.mark.integration
def test_a_reader_failure_that_is_no_cameras_ends_the_agent_with_1(
    broker, topic_prefix, caplog, monkeypatch
) -> None:
    def unreadable_campus(settings: CaptureSettings) -> KinectSource:
        raise CampusConfigError("campus.yaml is not valid YAML")

    monkeypatch.setattr(capture_service, "open_source", unreadable_campus)
    agent, exit_code = capture(broker, topic_prefix, "room-4", None, frames=1)
    assert exit_code == 1
    assert agent.readiness() == (False, "CampusConfigError: campus.yaml is not valid YAML")
    assert any(r.getMessage() == "capture reader failed" for r in caplog.records)
