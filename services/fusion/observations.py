"""Turn the model server's per-seat results into per-student observations using the campus roster."""

from __future__ import annotations

from services.common.campus import Camera, Campus
from services.common.pb.classroom.v1 import frames_pb2, inference_pb2, observations_pb2


def seat_regions(camera: Camera) -> list[inference_pb2.SeatRegion]:
    return [
        inference_pb2.SeatRegion(
            seat_id=s.id, box=observations_pb2.Box(x0=s.box[0], y0=s.box[1], x1=s.box[2], y1=s.box[3])
        )
        for s in camera.seats
    ]


def observation_set(
    frame_set: frames_pb2.EnhancedFrameSet,
    result: inference_pb2.FusionResult,
    *,
    campus: Campus,
    model_version: str,
    min_occupancy: float,
    published_ts_us: int,
    frame_published_ts_us: int,
) -> observations_pb2.ObservationSet:
    """One student observation per occupied seat (occupancy >= ``min_occupancy``); empty seats are dropped.

    The student id is the roster's student for the seat in the frame set's course; an occupied
    seat the roster assigns to nobody (a visitor, an unassigned seat, no roster, or an empty seat
    the occupancy estimate takes for occupied) is observed as ``seat:<seat_id>``, so the
    occupant's behaviour is still recognised and stored without guessing a name
    (docs/contracts.md, "Ids").
    """
    students = []
    for seat in result.seats:
        if seat.occupancy < min_occupancy:
            continue
        student_id = campus.student_in_seat(frame_set.course_id, seat.seat_id)
        if student_id is None:
            # Seat occupied by someone not on this course's roster: observe them under the seat id,
            # never guess a name.
            student_id = f"seat:{seat.seat_id}"
        students.append(
            observations_pb2.StudentObservation(
                student_id=student_id,
                seat_id=seat.seat_id,
                box=seat.box,
                keypoints=seat.keypoints,
                node_features=seat.node_features,
                feature_dim=seat.feature_dim,
                facial_temperature_c=(
                    seat.facial_temperature_c if seat.HasField("facial_temperature_c") else None
                ),
                mean_depth_mm=seat.mean_depth_mm,
            )
        )
    return observations_pb2.ObservationSet(
        classroom_id=frame_set.classroom_id,
        session_id=frame_set.session_id,
        camera_id=frame_set.camera_id,
        course_id=frame_set.course_id,
        sequence=frame_set.sequence,
        capture_ts_us=frame_set.capture_ts_us,
        students=students,
        model_version=model_version,
        gates=result.gates,
        published_ts_us=published_ts_us,
        frame_rate=frame_set.frame_rate,
        frame_published_ts_us=frame_published_ts_us,
    )
