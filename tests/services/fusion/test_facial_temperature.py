"""A facial temperature the thermal camera did not see is absent on the wire, never a fill."""

from __future__ import annotations

import numpy as np

from models.serving.inference import FusionOutput
from services.common.campus import Campus
from services.common.pb.classroom.v1 import frames_pb2, inference_pb2, observations_pb2
from services.common.vocabulary import NUM_KEYPOINTS
from services.fusion.observations import observation_set
from services.modelserver.server import _fusion_result
from services.simulator.live import SimulatedCamera


def test_a_face_without_a_reading_stays_unset_from_model_server_to_observation():
    sim = SimulatedCamera(seed=1, students=2, fps=8.0)
    classroom, course = sim.campus_classroom("room-1", "front", "course-1")
    campus = Campus(classrooms=(classroom,), courses=(course,))
    seat_ids = [s.id for s in classroom.cameras[0].seats][:2]
    item = inference_pb2.FusionItem(
        request_id="0:1",
        seats=[
            inference_pb2.SeatRegion(seat_id=s, box=observations_pb2.Box(x0=0, y0=0, x1=10, y1=10))
            for s in seat_ids
        ],
    )
    out = FusionOutput(
        keypoints=np.zeros((2, NUM_KEYPOINTS, 3), np.float32),
        node_features=np.zeros((2, NUM_KEYPOINTS, 4), np.float16),
        occupancy=np.ones(2, np.float32),
        facial_temperature_c=np.array([34.25, np.nan], np.float32),
        mean_depth_mm=np.full(2, 2000.0, np.float32),
        gates=None,
    )
    result = _fusion_result(item, out)
    seen, unseen = result.seats
    assert seen.HasField("facial_temperature_c") and seen.facial_temperature_c == 34.25
    assert not unseen.HasField("facial_temperature_c")

    frame_set = frames_pb2.EnhancedFrameSet(
        classroom_id="room-1", session_id="s", camera_id="front", course_id="course-1"
    )
    observations = observation_set(
        frame_set,
        result,
        campus=campus,
        model_version="test",
        min_occupancy=0.5,
        published_ts_us=0,
        frame_published_ts_us=0,
    )
    by_seat = {o.seat_id: o for o in observations.students}
    assert by_seat[seat_ids[0]].facial_temperature_c == 34.25
    assert not by_seat[seat_ids[1]].HasField("facial_temperature_c")
    # and on the bytes a consumer reads
    again = observations_pb2.ObservationSet.FromString(observations.SerializeToString())
    assert [o.HasField("facial_temperature_c") for o in again.students] == [True, False]
