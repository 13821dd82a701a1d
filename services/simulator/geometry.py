"""Camera geometry for the simulator: sensor poses, OpenCV-model projection and per-pixel rays.

Conventions (the same as services/common/calibration.py):
- World frame: millimetres, Y up, Z from the front wall into the room.
- Camera frame: OpenCV (x right, y down, z forward). ``SensorPose`` holds the world-to-camera
  transform X_cam = R @ X_world + t.
- Pixel coordinates: OpenCV, the centre of pixel (row i, column j) is (x=j, y=i).
- Distortion: OpenCV's (k1, k2, p1, p2, k3) on normalised coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from services.common.calibration import Extrinsics, Intrinsics


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """World-to-camera rotation of an OpenCV camera at ``eye`` looking at ``target``."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    # OpenCV y points down, so the camera's right is forward x up (right-handed frame).
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def distort_normalised(
    x: np.ndarray, y: np.ndarray, distortion: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's forward lens model on normalised image coordinates."""
    k1, k2, p1, p2, k3 = distortion
    if not any(distortion):
        return x, y
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def undistort_normalised(
    xd: np.ndarray, yd: np.ndarray, distortion: tuple[float, ...], iterations: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Invert ``distort_normalised`` by fixed-point iteration (converges for lens-like distortion)."""
    k1, k2, p1, p2, k3 = distortion
    x, y = np.array(xd, float), np.array(yd, float)
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


@lru_cache(maxsize=32)
def _ray_map(intrinsics: Intrinsics) -> np.ndarray:
    """Undistorted normalised coordinates (x/z, y/z) of every pixel centre, HxWx2 float32."""
    w, h = intrinsics.width, intrinsics.height
    jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    if not any(intrinsics.distortion):
        rays = np.stack([(jj - intrinsics.cx) / intrinsics.fx, (ii - intrinsics.cy) / intrinsics.fy], axis=-1)
    else:
        xd = (jj - intrinsics.cx) / intrinsics.fx
        yd = (ii - intrinsics.cy) / intrinsics.fy
        rays = np.stack(undistort_normalised(xd, yd, intrinsics.distortion), axis=-1)
    rays = np.ascontiguousarray(rays, dtype=np.float32)
    rays.setflags(write=False)
    return rays


@dataclass(frozen=True)
class SensorPose:
    """One sensor: its intrinsics and where it sits in the world (X_cam = R @ X_world + t)."""

    intrinsics: Intrinsics
    rotation: np.ndarray  # 3x3 world -> camera
    translation: np.ndarray  # (3,) mm

    @property
    def size(self) -> tuple[int, int]:
        return self.intrinsics.width, self.intrinsics.height

    @property
    def rays(self) -> np.ndarray:
        return _ray_map(self.intrinsics)

    @property
    def centre(self) -> np.ndarray:
        """Optical centre in world coordinates."""
        return -self.rotation.T @ self.translation

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, float) @ self.rotation.T + self.translation

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points [..., 3] to pixels [..., 2] with the lens model (z must be > 0)."""
        pts = np.asarray(points_cam, float)
        z = pts[..., 2]
        x, y = distort_normalised(pts[..., 0] / z, pts[..., 1] / z, self.intrinsics.distortion)
        k = self.intrinsics
        return np.stack([k.fx * x + k.cx, k.fy * y + k.cy], axis=-1)

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points to (pixels [..., 2], depth z [...] in mm)."""
        cam = self.to_camera(points_world)
        return self.project_camera(cam), cam[..., 2]

    def scaled(self, width: int, height: int) -> SensorPose:
        return SensorPose(self.intrinsics.scaled(width, height), self.rotation, self.translation)

    def relative_to(self, reference: SensorPose) -> Extrinsics:
        """Extrinsics mapping this sensor's frame into ``reference``'s frame (X_ref = R X + t)."""
        r = reference.rotation @ self.rotation.T
        t = reference.translation - r @ self.translation
        # Re-orthonormalise: float64 products drift by ~1e-16, the validator allows 1e-4.
        u, _, vt = np.linalg.svd(r)
        r = u @ vt
        return Extrinsics(
            rotation=tuple(tuple(float(v) for v in row) for row in r),  # type: ignore[arg-type]
            translation_mm=(float(t[0]), float(t[1]), float(t[2])),
        )


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross costs ~20 us of overhead per call)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def orthonormal_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each (unit) direction [N, 3] and to each other."""
    d = np.asarray(direction, float)
    helper = np.zeros_like(d)
    # The helper axis is the one least aligned with d, so the cross product never vanishes.
    helper[np.arange(len(d)), np.argmin(np.abs(d), axis=1)] = 1.0
    a = cross(d, helper)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = cross(d, a)
    return a, b
