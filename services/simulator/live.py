"""SimulatedCamera: SmartClass-Sim as a live trimodal camera for the capture service.

Iterating yields ``RenderedFrame``s (captured frame sets) at ``fps`` (paced to the wall clock
with ``realtime=True``), each with the exact ground truth of that frame in ``annotations``
(per student: id, seat, behaviour, 17 keypoints in analysis pixels, box, facial
temperature, condition tags). Students switch behaviours on their own with realistic
dwell times; under ``conditions="mixed"`` the acquisition conditions change every minute
or two. Timestamps are per sensor: colour at the frame's time, depth and thermal later by
their capture lag and shifted by their clock offset (``calibration.*.time_offset_us``).
With ``references=True`` each also carries the clean references (``RenderedFrame.reference_*``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import numpy as np

from services.common.calibration import CameraCalibration
from services.common.campus import Camera, Classroom, Course, RosterEntry, Seat
from services.simulator.classroom import ROOMS, room_for, room_seats
from services.simulator.config import Conditions, SimConfig, parse_conditions
from services.simulator.rig import build_rig
from services.simulator.scene import RenderedFrame
from services.simulator.session import build_live_scene


class SimulatedCamera:
    """A simulated classroom camera rig (colour + depth + thermal) with exact ground truth."""

    def __init__(
        self,
        *,
        seed: int,
        students: int = 20,
        fps: float = 15.0,
        rgb_size: tuple[int, int] = (640, 360),
        conditions: str | Conditions | None = "mixed",
        start_time_us: int | None = None,
        realtime: bool = False,
        duration_s: float | None = None,
        max_frames: int | None = None,
        room: str | None = None,
        config: SimConfig | None = None,
        references: bool = False,
    ) -> None:
        if not 1 <= students <= 40:
            raise ValueError(f"students must be 1..40, got {students}")
        if not 0.5 <= fps <= 60.0:
            raise ValueError(f"fps must be 0.5..60, got {fps}")
        width, height = rgb_size
        if width < 64 or height < 36 or width > 4096 or height > 3072:
            raise ValueError(f"rgb_size {rgb_size} is out of range (64x36 .. 4096x3072)")
        if room is not None and room not in ROOMS:
            raise ValueError(f"unknown room {room!r}; rooms: {', '.join(ROOMS)}")
        if duration_s is not None and duration_s <= 0:
            raise ValueError("duration_s must be positive")
        self.seed = seed
        self.frame_rate = float(fps)
        self.realtime = realtime
        self.references = references
        self.config = (config or SimConfig()).model_copy(update={"rgb_size": (int(width), int(height))})
        self.room = ROOMS[room] if room else room_for(students)
        if self.room.seats < students:
            raise ValueError(f"room {self.room.name} has {self.room.seats} seats, not enough for {students}")
        self._fixed = parse_conditions(conditions)
        self._mixed_rng_seed = (seed, 17)
        first = self._fixed if self._fixed is not None else self._draw_conditions(0)
        self._scene = build_live_scene(
            seed=seed, students=students, config=self.config, conditions=first, room=self.room
        )
        self._epoch = 0
        self.calibration: CameraCalibration = self._scene.rig.calibration
        self.start_time_us = int(time.time() * 1e6) if start_time_us is None else int(start_time_us)
        limits = []
        if duration_s is not None:
            limits.append(int(np.ceil(duration_s * fps)))
        if max_frames is not None:
            limits.append(int(max_frames))
        self.max_frames = min(limits) if limits else None

    def _draw_conditions(self, epoch: int) -> Conditions:
        return self.config.condition_mix.sample(np.random.default_rng([*self._mixed_rng_seed, epoch]))

    @property
    def conditions(self) -> Conditions:
        return self._scene.conditions

    def _update_conditions(self, t: float) -> None:
        if self._fixed is not None:
            return
        epoch = int(t // self.config.condition_period_s)
        if epoch == self._epoch:
            return
        self._epoch = epoch
        conditions = self._draw_conditions(epoch)
        scene = self._scene
        scene.set_conditions(conditions, epoch)
        if conditions.temporal_offset != (scene.rig.thermal_lag_us > 40_000):
            lagged = build_rig(
                np.random.default_rng([self.seed, 5]),
                self.room,
                self.config,
                temporal_offset=conditions.temporal_offset,
            )
            # Same mounting and clocks; only the capture lags change with the condition.
            scene.rig = dataclasses.replace(
                scene.rig, depth_lag_us=lagged.depth_lag_us, thermal_lag_us=lagged.thermal_lag_us
            )

    def frame_at(self, sequence: int) -> RenderedFrame:
        """Frame set number ``sequence`` (deterministic when a session is iterated in order)."""
        t = sequence / self.frame_rate
        self._update_conditions(t)
        rng = np.random.default_rng([self.seed, 23, sequence])
        frame = self._scene.render(
            t,
            rng,
            sequence=sequence,
            rgb_ts_us=self.start_time_us + round(t * 1e6),
            references=self.references,
        )
        frame.annotations["session_time_s"] = round(t, 6)
        return frame

    def __iter__(self) -> Iterator[RenderedFrame]:
        started = time.monotonic()
        sequence = 0
        while self.max_frames is None or sequence < self.max_frames:
            frame = self.frame_at(sequence)
            if self.realtime:
                delay = started + sequence / self.frame_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield frame
            sequence += 1

    def campus_classroom(self, classroom_id: str, camera_id: str, course_id: str) -> tuple[Classroom, Course]:
        """The campus objects for this camera: seat map (analysis pixels) and the course roster."""
        boxes = self._scene.seat_boxes(room_seats(self.room))
        camera = Camera(
            id=camera_id,
            analysis_width=self.config.analysis_size[0],
            analysis_height=self.config.analysis_size[1],
            calibration=self.calibration,
            seats=tuple(Seat(id=seat_id, box=box) for seat_id, box in boxes.items()),
        )
        classroom = Classroom(
            id=classroom_id,
            name=f"Simulated {self.room.name} classroom",
            building="SmartClass-Sim",
            cameras=(camera,),
        )
        roster = tuple(
            RosterEntry(student=s.profile.student_id, seat=s.seat.seat_id)
            for s in sorted(self._scene.students, key=lambda s: s.profile.student_id)
        )
        course = Course(id=course_id, name="Simulated lecture", classroom=classroom_id, roster=roster)
        return classroom, course
