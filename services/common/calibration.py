"""Camera calibration: how the depth and thermal sensors map onto the colour sensor.

The simulator writes it, real rigs get it from a calibration session (Kinect factory
calibration for depth, a heated checkerboard for thermal), the campus file and the
data-set format both carry it, and enhancement uses it to register depth and thermal
to colour at the analysis resolution (section 3.2, pixel-coordinate calibration).

Conventions: pinhole intrinsics with OpenCV's distortion model (k1, k2, p1, p2, k3);
``to_rgb`` maps a 3-D point from the sensor's own frame (millimetres) into the colour
camera's frame: X_rgb = R @ X_sensor + t.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Intrinsics(BaseModel):
    model_config = ConfigDict(frozen=True)

    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same sensor resampled to another resolution (pixel centres kept consistent)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            width=width,
            height=height,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            distortion=self.distortion,
        )


class Extrinsics(BaseModel):
    model_config = ConfigDict(frozen=True)

    rotation: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] = (
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.0, 0.0, 1.0),
    )
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @field_validator("rotation")
    @classmethod
    def _orthonormal(cls, rotation: tuple) -> tuple:
        r = np.asarray(rotation, dtype=np.float64)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or not np.isclose(np.linalg.det(r), 1.0, atol=1e-4):
            raise ValueError("rotation must be a proper 3x3 rotation matrix")
        return rotation

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.rotation, dtype=np.float64), np.asarray(self.translation_mm, dtype=np.float64)


class SensorCalibration(BaseModel):
    """A depth or thermal sensor relative to the colour sensor."""

    model_config = ConfigDict(frozen=True)

    intrinsics: Intrinsics
    to_rgb: Extrinsics = Extrinsics()
    # Sensor clock minus colour clock; a positive value means this sensor's frames are late.
    time_offset_us: int = 0


class CameraCalibration(BaseModel):
    """One trimodal camera position: colour intrinsics, depth and thermal relative to colour."""

    model_config = ConfigDict(frozen=True)

    rgb: Intrinsics
    depth: SensorCalibration
    thermal: SensorCalibration
    # Typical distance from the camera to the students; thermal has no depth of its own,
    # so where registered depth is missing it is mapped through this plane.
    working_distance_mm: float = Field(default=4000.0, gt=100)
    version: str = "1"
