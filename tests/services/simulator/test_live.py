"""SimulatedCamera: the capture service's live source (frames, timestamps, campus objects, schedule)."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.campus import Campus
from services.simulator.live import SimulatedCamera

START = 1_800_000_000_000_000


@pytest.fixture(scope="module")
def camera_frames():
    camera = SimulatedCamera(
        seed=4, students=12, fps=15.0, max_frames=4, conditions="normal", start_time_us=START
    )
    return camera, list(camera)


def test_frames_have_sensor_native_shapes_and_stamps(camera_frames):
    camera, frames = camera_frames
    assert [f.sequence for f in frames] == [0, 1, 2, 3]
    calib = camera.calibration
    for f in frames:
        assert f.rgb.shape == (360, 640, 3) and f.rgb.dtype == np.uint8
        assert f.depth_mm.shape == (288, 320) and f.depth_mm.dtype == np.uint16
        assert f.thermal_c.shape == (240, 320) and f.thermal_c.dtype == np.float32
        assert f.rgb_ts_us == START + round(f.sequence / 15.0 * 1e6)
        # Sensor clock minus colour clock is the calibration's offset; what is left is the capture lag.
        depth_lag = f.depth_ts_us - calib.depth.time_offset_us - f.rgb_ts_us
        thermal_lag = f.thermal_ts_us - calib.thermal.time_offset_us - f.rgb_ts_us
        assert depth_lag == 0 and 0 <= thermal_lag <= 15_000
        assert len(f.annotations["students"]) == 12


def test_campus_objects_validate_and_seat_boxes_hold_their_students(camera_frames):
    camera, frames = camera_frames
    classroom, course = camera.campus_classroom("room-101", "front", "course-7")
    campus = Campus(classrooms=(classroom,), courses=(course,))
    seats = {s.id: s.box for s in classroom.cameras[0].seats}
    assert len(seats) == camera.room.seats and len(course.roster) == 12
    inside = []
    for st in frames[0].annotations["students"]:
        assert campus.student_in_seat("course-7", st["seat_id"]) == st["student_id"]
        x0, y0, x1, y1 = seats[st["seat_id"]]
        kp = np.asarray(st["keypoints"])
        vis = kp[kp[:, 2] > 0]
        inside.append(((vis[:, 0] >= x0) & (vis[:, 0] <= x1) & (vis[:, 1] >= y0) & (vis[:, 1] <= y1)).mean())
    assert min(inside) == 1.0


def test_students_switch_behaviours_with_realistic_dwell_times():
    camera = SimulatedCamera(seed=9, students=20, fps=1.0, max_frames=1, conditions="normal")
    scene = camera._scene
    labels = np.array([scene.poses(float(t))[1] for t in np.arange(0.0, 900.0, 1.0)])
    switches = (labels[1:] != labels[:-1]).sum(axis=0)
    assert switches.min() >= 3, switches  # everyone changes what they do within 15 minutes
    runs = []
    for s in range(labels.shape[1]):
        change = np.flatnonzero(labels[1:, s] != labels[:-1, s])
        runs.extend(np.diff(change).tolist())
    assert min(runs) >= 2  # no flicker: episodes last seconds at least
    assert np.median(runs) >= 8 and max(runs) >= 60  # mostly tens of seconds, some minutes
    assert len(np.unique(labels)) == 10


def test_same_seed_same_frames():
    a = next(iter(SimulatedCamera(seed=2, students=4, max_frames=1, start_time_us=START)))
    b = next(iter(SimulatedCamera(seed=2, students=4, max_frames=1, start_time_us=START)))
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.thermal_c.tobytes() == b.thermal_c.tobytes()
    assert a.annotations == b.annotations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"students": 0}, "students"),
        ({"students": 41}, "students"),
        ({"fps": 0.0}, "fps"),
        ({"rgb_size": (10, 10)}, "rgb_size"),
        ({"room": "aula"}, "room"),
        ({"conditions": "foggy"}, "unknown condition"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatedCamera(seed=1, **kwargs)
