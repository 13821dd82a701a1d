"""Capture timestamps say when the sensor captured the frame and only go forward per camera:
a reader that falls behind (CPU starvation) makes frames late, never restamped or out of order."""

from __future__ import annotations

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
