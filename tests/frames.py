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
    # Smooth content with a little noise compresses like camera frames (pure noise would not).
    rng = np.random.default_rng(seed + sequence)
    ts = T0_US + int(sequence * 1e6 / fps)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = (np.sin(xx / 37.0 + sequence * 0.1) + np.cos(yy / 23.0)) * 40 + 120
    rgb = np.clip(
        np.stack([base, base * 0.9, base * 1.1], axis=2) + rng.normal(0, 2, (h, w, 3)), 0, 255
    ).astype(np.uint8)
    depth = (3000 + 800 * np.sin(xx / 80.0) + yy * 2).astype(np.uint16)
    thermal = (22 + 6 * np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (2 * 60.0**2))).astype(np.float32)
    thermal_eq = np.clip((thermal - 20) * 25, 0, 255).astype(np.uint8)
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
