"""The trimodal camera rig: colour, depth and thermal sensors with their own poses and lenses.

Modelled on an Azure Kinect (colour 16:9 with a 90 degree field of view; depth NFOV 2x2
binned, 320x288, tilted 6 degrees down from colour, 32 mm beside it, range 0.5-5.46 m)
with a 320x240 radiometric thermal camera bolted 5-9 cm beside it with a small mounting
error and a barrel-distorted lens. Every rig is drawn from a seed, so raw modalities are
misaligned the way real ones are, and ``Rig.calibration`` writes the exact truth out in
the suite's ``CameraCalibration`` form (services/common/calibration.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.common.calibration import CameraCalibration, Intrinsics, SensorCalibration
from services.simulator.classroom import RoomLayout, room_seats
from services.simulator.config import SimConfig
from services.simulator.geometry import SensorPose, look_at, rotation_x, rotation_y, rotation_z

DEPTH_RANGE_MM = (500.0, 5460.0)  # Azure Kinect NFOV 2x2 binned operating range


@dataclass(frozen=True)
class Rig:
    colour: SensorPose
    depth: SensorPose
    thermal: SensorPose
    analysis: SensorPose  # the colour sensor resampled to the analysis resolution
    # Capture lag of each sensor behind the colour exposure (scene time), microseconds.
    depth_lag_us: int
    thermal_lag_us: int
    # Clock offsets written to the calibration (sensor clock - colour clock).
    depth_clock_offset_us: int
    thermal_clock_offset_us: int
    working_distance_mm: float

    @property
    def calibration(self) -> CameraCalibration:
        return CameraCalibration(
            rgb=self.colour.intrinsics,
            depth=SensorCalibration(
                intrinsics=self.depth.intrinsics,
                to_rgb=self.depth.relative_to(self.colour),
                time_offset_us=self.depth_clock_offset_us,
            ),
            thermal=SensorCalibration(
                intrinsics=self.thermal.intrinsics,
                to_rgb=self.thermal.relative_to(self.colour),
                time_offset_us=self.thermal_clock_offset_us,
            ),
            working_distance_mm=self.working_distance_mm,
        )

    def timestamps_us(self, rgb_ts_us: int) -> tuple[int, int, int]:
        """Colour, depth and thermal capture times of the frame set whose colour is stamped
        ``rgb_ts_us``: each sensor later by its capture lag, on its own clock."""
        return (
            rgb_ts_us,
            rgb_ts_us + self.depth_lag_us + self.depth_clock_offset_us,
            rgb_ts_us + self.thermal_lag_us + self.thermal_clock_offset_us,
        )


def _mounted(
    colour: SensorPose, intrinsics: Intrinsics, rotation_rel: np.ndarray, position_in_colour: np.ndarray
) -> SensorPose:
    """A sensor rigidly mounted on the colour camera: rotation (colour -> sensor) and its origin."""
    # X_s = R_rel (X_c - p)  and  X_c = R_c X_w + t_c
    rotation = rotation_rel @ colour.rotation
    translation = rotation_rel @ (colour.translation - position_in_colour)
    return SensorPose(intrinsics, rotation, translation)


def build_rig(
    rng: np.random.Generator, room: RoomLayout, config: SimConfig, *, temporal_offset: bool = False
) -> Rig:
    """A rig drawn from ``rng`` above the front of ``room``, aimed at its seats.

    The draws happen in a fixed order (colour, depth, thermal, lags, clock offset): a seed
    names one rig.
    """
    colour_k = _colour_intrinsics(rng, config.rgb_size)
    hips = np.array([s.hip for s in room_seats(room)])
    colour, eye = _colour_pose(rng, colour_k, hips)
    depth = _depth_sensor(rng, colour, config.depth_size)
    thermal = _thermal_sensor(rng, colour, config.thermal_size)
    aw, ah = config.analysis_size
    depth_lag, thermal_lag = _capture_lags(rng, temporal_offset)
    working = float(np.median(np.linalg.norm(hips + np.array([0.0, 500.0, 0.0]) - eye, axis=1)))
    return Rig(
        colour=colour,
        depth=depth,
        thermal=thermal,
        analysis=colour.scaled(aw, ah),
        depth_lag_us=depth_lag,
        thermal_lag_us=thermal_lag,
        depth_clock_offset_us=0,
        thermal_clock_offset_us=int(rng.uniform(-40_000, 40_000)),
        working_distance_mm=working,
    )


def _colour_intrinsics(rng: np.random.Generator, size: tuple[int, int]) -> Intrinsics:
    """Colour: 90 x 59 degrees at 16:9, slight principal-point offset and lens distortion."""
    w, h = size
    f = (w / 2.0) / math.tan(math.radians(45.0)) * rng.uniform(0.985, 1.015)
    return Intrinsics(
        width=w,
        height=h,
        fx=f,
        fy=f * rng.uniform(0.998, 1.002),
        cx=(w - 1) / 2.0 + rng.uniform(-0.01, 0.01) * w,
        cy=(h - 1) / 2.0 + rng.uniform(-0.01, 0.01) * h,
        distortion=(float(rng.uniform(0.0, 0.06)), float(rng.uniform(-0.04, 0.0)), 0.0, 0.0, 0.0),
    )


def _colour_pose(
    rng: np.random.Generator, intrinsics: Intrinsics, hips: np.ndarray
) -> tuple[SensorPose, np.ndarray]:
    """The colour camera above the front of the room, and its eye point (world, mm)."""
    eye = np.array([rng.uniform(-150.0, 150.0), rng.uniform(2550.0, 2850.0), rng.uniform(600.0, 950.0)])
    first, last = hips[:, 2].min(), hips[:, 2].max()
    # Aim between the first row's desks and the last row's heads.
    ang_first = math.atan2(eye[1] - 700.0, first - 700.0 - eye[2])
    ang_last = math.atan2(eye[1] - 1350.0, last - eye[2])
    pitch = (ang_first + ang_last) / 2.0 + rng.uniform(-0.02, 0.02)
    target = eye + np.array([rng.uniform(-0.03, 0.03), -math.sin(pitch), math.cos(pitch)])
    rotation = rotation_z(rng.uniform(-0.015, 0.015)) @ look_at(eye, target)
    return SensorPose(intrinsics, rotation, -rotation @ eye), eye


def _depth_sensor(rng: np.random.Generator, colour: SensorPose, size: tuple[int, int]) -> SensorPose:
    """Depth NFOV 2x2 binned: tilted 6 degrees down from colour, 32 mm beside it."""
    dw, dh = size
    fd = 252.0 * (dw / 320.0) * rng.uniform(0.99, 1.01)
    depth_k = Intrinsics(
        width=dw,
        height=dh,
        fx=fd,
        fy=fd * rng.uniform(0.998, 1.002),
        cx=(dw - 1) / 2.0 + rng.uniform(-2.0, 2.0),
        cy=(dh - 1) / 2.0 + 20.0 * (dh / 288.0) + rng.uniform(-2.0, 2.0),
        distortion=(float(rng.uniform(0.02, 0.08)), float(rng.uniform(-0.05, 0.0)), 0.0, 0.0, 0.0),
    )
    depth_rot = rotation_x(math.radians(6.0) + rng.uniform(-0.004, 0.004)) @ rotation_y(
        rng.uniform(-0.004, 0.004)
    )
    return _mounted(colour, depth_k, depth_rot, np.array([-32.0, 2.0, -4.0]) + rng.uniform(-1.5, 1.5, 3))


def _thermal_sensor(rng: np.random.Generator, colour: SensorPose, size: tuple[int, int]) -> SensorPose:
    """Thermal: 5-9 cm to either side of colour, a small mounting error, a barrel-distorted lens."""
    tw, th = size
    ft = (tw / 2.0) / math.tan(math.radians(rng.uniform(25.0, 28.5)))
    thermal_k = Intrinsics(
        width=tw,
        height=th,
        fx=ft,
        fy=ft * rng.uniform(0.995, 1.005),
        cx=(tw - 1) / 2.0 + rng.uniform(-3.0, 3.0),
        cy=(th - 1) / 2.0 + rng.uniform(-3.0, 3.0),
        distortion=(float(rng.uniform(-0.14, -0.05)), float(rng.uniform(0.0, 0.05)), 0.0, 0.0, 0.0),
    )
    side = 1.0 if rng.random() < 0.5 else -1.0
    thermal_rot = (
        rotation_x(math.radians(rng.uniform(-1.5, 1.5)))
        @ rotation_y(math.radians(rng.uniform(-1.5, 1.5)))
        @ rotation_z(math.radians(rng.uniform(-1.0, 1.0)))
    )
    thermal_pos = np.array(
        [side * rng.uniform(50.0, 90.0), rng.uniform(-40.0, 40.0), rng.uniform(-10.0, 10.0)]
    )
    return _mounted(colour, thermal_k, thermal_rot, thermal_pos)


def _capture_lags(rng: np.random.Generator, temporal_offset: bool) -> tuple[int, int]:
    """Depth and thermal capture lags behind the colour exposure (microseconds); large with ``temporal_offset``."""
    if temporal_offset:
        depth_lag = int(rng.uniform(10_000, 35_000))
        thermal_lag = int(rng.uniform(60_000, 160_000))
    else:
        depth_lag = 0
        thermal_lag = int(rng.uniform(0, 15_000))
    return depth_lag, thermal_lag
