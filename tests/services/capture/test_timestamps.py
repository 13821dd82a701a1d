"""Capture timestamps say when the sensor captured the frame and only go forward per camera:
a reader that falls behind (CPU starvation) makes frames late, never restamped or out of order."""

from __future__ import annotations

import logging
from itertools import pairwise

import numpy as np
import pytest

from services.capture import service as capture_service
from services.capture.config import CaptureSettings
from services.capture.service import CaptureService
from services.common.frames import CapturedFrameSet

FRAME_US = 66_667  # 15 fps


def frame_set(sequence: int, ts_us: int) -> CapturedFrameSet:
    tiny = np.zeros((2, 2), np.uint16)
    return CapturedFrameSet(
        sequence=sequence,
        rgb=np.zeros((2, 2, 3), np.uint8),
        depth_mm=tiny,
        thermal_c=tiny.astype(np.float32),
        rgb_ts_us=ts_us,
        depth_ts_us=ts_us + 300,
        thermal_ts_us=ts_us - 500,
    )


@pytest.fixture()
def agent() -> CaptureService:
    settings = CaptureSettings(
        kafka_bootstrap="127.0.0.1:9", classroom_id="room-1", camera_id="front", fps=15
    )
    return CaptureService(settings)


def test_a_late_reader_keeps_the_sensor_timeline(agent, monkeypatch) -> None:
    wall = 1_767_000_000_000_000
    # the reader gets to each frame later and later: 0 s, 1.9 s, 2.1 s, 1.9 s, 5 s behind
    lags = [0, 1_900_000, 2_100_000, 1_900_000, 5_000_000]
    stamps = []
    for k, lag in enumerate(lags):
        monkeypatch.setattr(capture_service, "now_us", lambda k=k, lag=lag: wall + k * FRAME_US + lag)
        f = agent._restamp(frame_set(k, 1_000 + k * FRAME_US))  # a simulated source's own timeline
        stamps.append((f.rgb_ts_us, f.depth_ts_us - f.rgb_ts_us, f.thermal_ts_us - f.rgb_ts_us))
    assert [s[0] - stamps[0][0] for s in stamps] == [k * FRAME_US for k in range(len(lags))]
    assert all(s[1:] == (300, -500) for s in stamps)  # each sensor keeps its offset


def test_a_timeline_that_goes_back_continues_forward(agent, monkeypatch) -> None:
    monkeypatch.setattr(capture_service, "now_us", lambda: 1_767_000_000_000_000)
    first = [agent._restamp(frame_set(k, k * FRAME_US)).rgb_ts_us for k in range(3)]
    # the next clip of a recording starts its own timeline at 0 again
    second = [agent._restamp(frame_set(3 + k, k * FRAME_US)).rgb_ts_us for k in range(3)]
    stamps = first + second
    assert all(b > a for a, b in pairwise(stamps))
    assert second[0] - first[-1] == round(1e6 / 15)


def test_a_faster_camera_is_analysed_at_the_window_rate(agent, monkeypatch) -> None:
    """15 fps in, the first frame set of each 8 fps recognition slot out: every slot taken once,
    the others counted where they are dropped, before encoding and the model server."""
    monkeypatch.setattr(capture_service, "now_us", lambda: 1_767_000_000_000_000)
    kept = []
    for k in range(45):  # 3 s at 15 fps
        f = agent._restamp(frame_set(k, k * FRAME_US))
        if agent._takes_slot(f.rgb_ts_us):
            kept.append(f.rgb_ts_us)
    slots = [ts // 125_000 for ts in kept]
    assert slots == list(range(slots[0], slots[0] + len(slots)))  # one per slot, none missing
    assert len(kept) in (23, 24)  # 8 per second of 45 frames at 15 fps
    skipped = agent.metrics.skipped.labels("capture", "slot_taken")._value.get()
    assert skipped == 45 - len(kept)


def test_every_frame_set_is_published_when_asked(monkeypatch) -> None:
    settings = CaptureSettings(
        kafka_bootstrap="127.0.0.1:9",
        classroom_id="room-1",
        camera_id="front",
        fps=15,
        window_rate_only=False,
    )
    agent = CaptureService(settings)
    monkeypatch.setattr(capture_service, "now_us", lambda: 1_767_000_000_000_000)
    assert all(agent._takes_slot(agent._restamp(frame_set(k, k * FRAME_US)).rgb_ts_us) for k in range(15))


def live_run(agent, monkeypatch, camera_us, arrival_us, frames: int) -> list[tuple[int, int]]:
    """(published capture time, arrival time) of a live camera's frame sets: frame set k was
    stamped ``camera_us(k)`` by the camera and reached this host at ``arrival_us(k)``."""
    published = []
    for k in range(frames):
        monkeypatch.setattr(capture_service, "now_us", lambda k=k: arrival_us(k))
        f = agent._restamp(frame_set(k, camera_us(k)), live=True)
        if f is not None:
            published.append((f.rgb_ts_us, arrival_us(k)))
    return published


def clock_count(agent, direction: str) -> float:
    return agent.clock_corrections.labels("capture", "room-1", "front", direction)._value.get()


def test_a_live_camera_whose_clock_runs_ahead_is_put_back_on_the_host_clock(
    agent, monkeypatch, caplog
) -> None:
    """A camera clock that gains 50 % (3 s a minute would do, in time) reaches the 2 s tolerance
    every 4 s: each time its capture times are put back on the host's, counted, logged at most
    once a minute, and the frame sets that would go back in time are dropped, counted."""
    wall = 1_767_000_000_000_000
    with caplog.at_level(logging.WARNING, logger="capture"):
        published = live_run(
            agent,
            monkeypatch,
            camera_us=lambda k: wall + k * FRAME_US * 3 // 2,
            arrival_us=lambda k: wall + k * FRAME_US + 20_000,
            frames=300,  # 20 s
        )
    stamps = [stamp for stamp, _ in published]
    assert all(b > a for a, b in pairwise(stamps))  # stamps only go forward
    assert max(stamp - arrival for stamp, arrival in published) <= 2_000_000  # never past the tolerance
    assert clock_count(agent, "ahead") == 4 and clock_count(agent, "behind") == 0
    dropped = agent.metrics.skipped.labels("capture", "clock_step")._value.get()
    assert dropped == 300 - len(published) > 0
    lines = [r for r in caplog.records if "clock runs" in r.getMessage()]
    assert len(lines) == 1  # four steps, one line a minute
    assert lines[0].getMessage().startswith("camera room-1/front: its clock runs 2.0 s ahead of this host's;")
    assert (lines[0].classroom, lines[0].camera, lines[0].direction) == ("room-1", "front", "ahead")
    offset = agent.clock_offset.labels("capture", "room-1", "front")._value.get()
    assert 0 < offset <= 2.0


def test_a_live_camera_whose_clock_falls_behind_is_put_back_a_late_frame_is_not(agent, monkeypatch) -> None:
    """A reader that gets to a few frame sets 5 s late leaves their capture times alone (they are
    late, not wrong); a camera clock that loses a third falls 2 s behind within 6 s, and once a
    whole window of frame sets (16) arrived that far behind, its capture times are put forward."""
    wall = 1_767_000_000_000_000
    late = {20, 21, 22, 23}  # the reader starved for a moment
    published = live_run(
        agent,
        monkeypatch,
        camera_us=lambda k: wall + k * FRAME_US * 2 // 3,
        arrival_us=lambda k: wall + k * FRAME_US + (5_000_000 if k in late else 10_000),
        frames=150,  # 10 s
    )
    stamps = [stamp for stamp, _ in published]
    assert len(published) == 150 and all(b > a for a, b in pairwise(stamps))
    assert [stamp - wall for stamp in stamps[:40]] == [k * FRAME_US * 2 // 3 for k in range(40)]
    assert clock_count(agent, "behind") == 1 and clock_count(agent, "ahead") == 0
    offsets = [stamp - arrival for stamp, arrival in published]
    step = next(k for k in range(40, 150) if offsets[k] > offsets[k - 1])
    # 2 s behind from frame set 90 on (22 ms a frame set); put forward once 16 of them said so
    assert step == 105 and all(offset < -2_000_000 for offset in offsets[90:105])
    assert all(-2_000_000 < offset <= 0 for offset in offsets[step:])  # back on the host's clock
    gauge = agent.clock_offset.labels("capture", "room-1", "front")._value.get()
    assert -2.0 < gauge < 0
