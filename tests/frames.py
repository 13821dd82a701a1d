"""Synthetic frame-set messages for service tests (structure, not realism: the simulator makes realism)."""

from __future__ import annotations

import numpy as np

from services.common import codecs
from services.common.pb.classroom.v1 import frames_pb2

T0_US = 1_767_000_000_000_000


def enhanced_frame_set(
    sequence: int = 0,
    *,
    size: tuple[int, int] = (640, 360),
    classroom: str = "room-1",
    camera: str = "cam-1",
    session: str = "sess-1",
    course: str = "c-1",
    fps: float = 15.0,
    seed: int = 0,
) -> frames_pb2.EnhancedFrameSet:
    w, h = size
    rng = np.random.default_rng(seed + sequence)
    ts = T0_US + int(sequence * 1e6 / fps)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = rng.integers(800, 6000, (h, w), dtype=np.uint16)
    thermal = rng.uniform(20, 36, (h, w)).astype(np.float32)
    thermal_eq = rng.integers(0, 255, (h, w), dtype=np.uint8)
    return frames_pb2.EnhancedFrameSet(
        classroom_id=classroom,
        session_id=session,
        camera_id=camera,
        course_id=course,
        sequence=sequence,
        capture_ts_us=ts,
        rgb=codecs.encode_rgb(rgb, capture_ts_us=ts),
        depth=codecs.encode_depth(depth, capture_ts_us=ts),
        thermal_radiometric=codecs.encode_thermal(thermal, capture_ts_us=ts),
        thermal_equalised=codecs.encode_gray8(thermal_eq, capture_ts_us=ts),
        frame_rate=fps,
        published_ts_us=ts,
        capture_published_ts_us=ts,
    )
