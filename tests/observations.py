"""Synthetic observation sets for recognition tests."""

from __future__ import annotations

import numpy as np

from services.common.pb.classroom.v1 import observations_pb2
from tests.frames import T0_US


def observation_set(
    sequence: int,
    *,
    students: list[str],
    feature_dim: int,
    fps: float = 15.0,
    classroom: str = "room-1",
    session: str = "sess-1",
) -> observations_pb2.ObservationSet:
    rng = np.random.default_rng(sequence)
    ts = T0_US + int(sequence * 1e6 / fps)
    out = []
    for i, student in enumerate(students):
        box = observations_pb2.Box(x0=100 * i, y0=100, x1=100 * i + 90, y1=250)
        kps = [
            observations_pb2.Keypoint(
                x=box.x0 + 45 + 10 * np.sin(sequence / 5 + k), y=box.y0 + 8 * k, confidence=0.9
            )
            for k in range(17)
        ]
        out.append(
            observations_pb2.StudentObservation(
                student_id=student,
                seat_id=f"A{i}",
                box=box,
                keypoints=kps,
                node_features=rng.standard_normal((17, feature_dim)).astype("<f2").tobytes(),
                feature_dim=feature_dim,
            )
        )
    return observations_pb2.ObservationSet(
        classroom_id=classroom,
        session_id=session,
        camera_id="cam-1",
        course_id="c-1",
        sequence=sequence,
        capture_ts_us=ts,
        students=out,
        model_version="test",
        frame_rate=fps,
        frame_published_ts_us=ts,
    )
