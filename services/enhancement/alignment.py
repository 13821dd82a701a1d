"""Cross-modal alignment of section 3.2: scale normalisation and pixel-coordinate calibration.

Everything is brought onto the colour camera's pixel grid at the analysis resolution (the
colour image stays as captured, lens distortion included; the other sensors are mapped
into its distorted pixel coordinates):

- colour: resampled to the analysis size (area averaging when shrinking);
- depth: registered by reprojection. Each restored depth pixel is back-projected through the
  depth intrinsics (undistorted ray × measured Z), moved into the colour frame
  (X_rgb = R·X + t from the calibration) and projected through the colour intrinsics; the
  nearest surface wins where several land on one pixel (a z-buffer). Divided by Z, a depth
  pixel's colour-frame point is R·ray + q·t with q = 1/Z, so where it lands is a function of
  q alone: it is interpolated between two precomputed projections, as for thermal below.
  The output value is Z in the colour camera's frame. Depth is splatted onto a grid no finer
  than the depth sensor samples the scene (the analysis grid divided by an integer
  ``splat_factor``), so a surface lands without gaps, small parallax holes are closed, and
  the grid is upsampled to the analysis size by nearest neighbour (no depth is invented
  between a student and the wall);
- thermal: each analysis pixel's colour ray, at the registered depth, is projected into the
  thermal camera; where no depth was measured, at the working-distance plane. The mapping
  of one pixel is a function of inverse depth q = 1/Z only, and is interpolated per pixel
  between two precomputed maps (q = 0 and q = 1/working distance). This is exact for a
  thermal camera whose translation has no component along its own optical axis and no lens
  distortion, and otherwise off by a second-order term (``thermal_map_error`` measures it;
  tests bound it).

Everything that depends only on the calibration and the analysis size is a table computed
once per camera and cached (``registration_tables``), including the differences between the
two projections that each frame interpolates between.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from services.common.calibration import CameraCalibration, Intrinsics
from services.common.errors import InvalidCalibration

# Depth nearer than this in the colour frame is behind or on the colour camera: not projected.
_MIN_Z_MM = 1.0


def undistorted_rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Normalised, undistorted image coordinates (x/z, y/z) of every pixel centre (HxW float64 each)."""
    h, w = intrinsics.height, intrinsics.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    if any(intrinsics.distortion):
        points = cv2.undistortPoints(
            pixels, intrinsics.matrix(), np.asarray(intrinsics.distortion, np.float64)
        )
    else:
        points = (pixels - [intrinsics.cx, intrinsics.cy]) / [intrinsics.fx, intrinsics.fy]
    points = points.reshape(h, w, 2)
    return points[..., 0], points[..., 1]


def project(points: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) of 3-D points (..., 3) in a camera's frame, with its lens distortion.

    Points at or behind the camera (Z <= 0) get NaN.
    """
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(z > 0, points[..., 0] / z, np.nan)
        y = np.where(z > 0, points[..., 1] / z, np.nan)
    k1, k2, p1, p2, k3 = intrinsics.distortion
    if any(intrinsics.distortion):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        x, y = (
            x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
        )
    return intrinsics.fx * x + intrinsics.cx, intrinsics.fy * y + intrinsics.cy


@dataclass(frozen=True)
class RegistrationTables:
    """Per-camera, per-analysis-size tables (computed once, cached)."""

    analysis_size: tuple[int, int]  # (width, height)
    analysis: Intrinsics  # colour intrinsics at the analysis size
    splat_factor: int
    grid: Intrinsics  # colour intrinsics on the splat grid
    # Per depth pixel: colour-frame Z = z·depth_ray_z + depth_t_z, and splat-grid coordinates at
    # inverse depth 0 and at 1/working distance (interpolated in q like the thermal maps).
    depth_ray_z: np.ndarray
    depth_t_z: float
    depth_grid0_x: np.ndarray
    depth_grid0_y: np.ndarray
    depth_grid1_x: np.ndarray
    depth_grid1_y: np.ndarray
    depth_grid_dx: np.ndarray  # depth_grid1_x − depth_grid0_x
    depth_grid_dy: np.ndarray
    # Thermal maps (analysis HxW float32) at inverse depth 0 and at 1/working distance.
    thermal_map0_x: np.ndarray
    thermal_map0_y: np.ndarray
    thermal_map1_x: np.ndarray
    thermal_map1_y: np.ndarray
    thermal_map_dx: np.ndarray  # thermal_map1_x − thermal_map0_x
    thermal_map_dy: np.ndarray
    inverse_working_distance: float
    depth_field_of_view: np.ndarray  # analysis HxW bool: where the depth sensor sees at working distance
    depth_field_of_view_grid: np.ndarray  # the same on the splat grid


def _check_calibration(calibration: CameraCalibration, analysis_size: tuple[int, int]) -> None:
    aw, ah = analysis_size
    if aw <= 0 or ah <= 0 or aw > 8192 or ah > 8192:
        raise InvalidCalibration(f"analysis size {aw}x{ah} is out of range")
    rgb = calibration.rgb
    if abs(aw / ah - rgb.width / rgb.height) > 0.02 * rgb.width / rgb.height:
        raise InvalidCalibration(
            f"analysis size {aw}x{ah} does not have the colour camera's aspect ratio "
            f"({rgb.width}x{rgb.height})"
        )


def _thermal_map(calibration: CameraCalibration, analysis: Intrinsics, rays, inverse_depth: float):
    """Thermal pixel coordinates of each analysis pixel's colour ray at inverse depth q (0: infinity)."""
    rx, ry = rays
    rotation, translation = calibration.thermal.to_rgb.matrix()
    # X_rgb = Z·(x, y, 1); X_thermal = Rᵀ(X_rgb − t). Scaled by q = 1/Z: Rᵀ(x, y, 1) − q·Rᵀt,
    # the same ray direction, which projects to the same pixel.
    direction = np.stack([rx, ry, np.ones_like(rx)], axis=-1) @ rotation  # row-vector form of Rᵀ·d
    point = direction - inverse_depth * (rotation.T @ translation)
    u, v = project(point, calibration.thermal.intrinsics)
    # Points behind the thermal camera map far outside its image (read as border).
    u, v = np.nan_to_num(u, nan=-1e6), np.nan_to_num(v, nan=-1e6)
    return u.astype(np.float32), v.astype(np.float32)


@lru_cache(maxsize=64)
def registration_tables(calibration: CameraCalibration, analysis_size: tuple[int, int]) -> RegistrationTables:
    """The cached tables of one camera at one analysis size (calibration is fixed per camera)."""
    _check_calibration(calibration, analysis_size)
    aw, ah = analysis_size
    analysis = calibration.rgb.scaled(aw, ah)
    depth_intr = calibration.depth.intrinsics
    # A grid no finer than the depth sensor samples: its focal length at most ~the depth camera's.
    splat_factor = max(1, int(min(analysis.fx / depth_intr.fx, analysis.fy / depth_intr.fy)))
    grid = analysis.scaled(max(1, aw // splat_factor), max(1, ah // splat_factor))

    rotation, translation = calibration.depth.to_rgb.matrix()
    dx, dy = undistorted_rays(depth_intr)
    rays = np.stack([dx, dy, np.ones_like(dx)], axis=-1) @ rotation.T  # R·(x, y, 1) per pixel
    inverse_wd = 1.0 / calibration.working_distance_mm
    # X_rgb = z·ray + t; divided by z: ray + q·t, which projects to the same pixel.
    grid0 = [np.nan_to_num(c.astype(np.float32), nan=-1e6) for c in project(rays, grid)]
    grid1 = [
        np.nan_to_num(c.astype(np.float32), nan=-1e6) for c in project(rays + inverse_wd * translation, grid)
    ]

    colour_rays = undistorted_rays(analysis)
    map0 = _thermal_map(calibration, analysis, colour_rays, 0.0)
    map1 = _thermal_map(calibration, analysis, colour_rays, inverse_wd)

    tables = RegistrationTables(
        analysis_size=(aw, ah),
        analysis=analysis,
        splat_factor=splat_factor,
        grid=grid,
        depth_ray_z=np.ascontiguousarray(rays[..., 2], dtype=np.float32),
        depth_t_z=float(translation[2]),
        depth_grid0_x=grid0[0],
        depth_grid0_y=grid0[1],
        depth_grid1_x=grid1[0],
        depth_grid1_y=grid1[1],
        depth_grid_dx=grid1[0] - grid0[0],
        depth_grid_dy=grid1[1] - grid0[1],
        thermal_map0_x=map0[0],
        thermal_map0_y=map0[1],
        thermal_map1_x=map1[0],
        thermal_map1_y=map1[1],
        thermal_map_dx=map1[0] - map0[0],
        thermal_map_dy=map1[1] - map0[1],
        inverse_working_distance=inverse_wd,
        depth_field_of_view=np.zeros((ah, aw), bool),
        depth_field_of_view_grid=np.zeros((grid.height, grid.width), bool),
    )
    # The depth sensor's footprint: its whole image at the working distance, splatted and closed.
    plane = np.full((depth_intr.height, depth_intr.width), calibration.working_distance_mm, np.float32)
    splatted = splat_depth(plane, np.ones_like(plane, bool), tables)[0] > 0
    footprint = cv2.morphologyEx(splatted.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    fov = cv2.resize(footprint, (aw, ah), interpolation=cv2.INTER_NEAREST).astype(bool)
    if not fov.any():
        raise InvalidCalibration(
            "the depth camera's image does not land in the colour image at the working distance"
        )
    return replace(tables, depth_field_of_view=fov, depth_field_of_view_grid=footprint.astype(bool))


def splat_depth(
    depth_mm: np.ndarray, valid: np.ndarray, tables: RegistrationTables, *, carry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered forward projection of depth (float32 mm, sensor frame) onto the colour splat grid.

    Returns the grid (float32, colour-frame Z in mm, 0 where nothing landed) and, on the same
    grid, the boolean ``carry`` flag of the depth pixel that won each grid cell (False if none).
    """
    gw, gh = tables.grid.width, tables.grid.height
    z_rgb = depth_mm * tables.depth_ray_z + np.float32(tables.depth_t_z)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.float32(1.0 / tables.inverse_working_distance) / depth_mm  # q / q_wd
        u = np.floor(tables.depth_grid0_x + t * tables.depth_grid_dx + np.float32(0.5))
        v = np.floor(tables.depth_grid0_y + t * tables.depth_grid_dy + np.float32(0.5))
    lands = valid & (z_rgb > _MIN_Z_MM) & (depth_mm > 0) & (u >= 0) & (u < gw) & (v >= 0) & (v < gh)
    # Every pixel that does not land votes for one extra cell past the grid, dropped at the end.
    # Cell numbers are whole numbers, exact in float32 below 2**24 (a 4096×4096 grid).
    exact = np.float32 if gh * gw < 2**24 else np.float64
    with np.errstate(invalid="ignore"):  # inf − inf where a pixel does not land
        cells = np.where(lands, v.astype(exact, copy=False) * gw + u, gh * gw).astype(np.intp)
    zbuffer = np.full(gh * gw + 1, np.inf, np.float32)
    np.minimum.at(zbuffer, cells.ravel(), z_rgb.ravel())
    carried = np.zeros(gh * gw + 1, bool)
    if carry is not None:
        winners = lands & (zbuffer[cells] == z_rgb)
        carried[cells[winners]] = carry[winners]
    # Cells nothing landed on (still +inf) become 0: "to zero above the largest float".
    grid = cv2.threshold(
        zbuffer[:-1].reshape(gh, gw), float(np.finfo(np.float32).max), 0.0, cv2.THRESH_TOZERO_INV
    )[1]
    return grid, carried[:-1].reshape(gh, gw)


def thermal_maps(depth_rgb_mm: np.ndarray, tables: RegistrationTables) -> tuple[np.ndarray, np.ndarray]:
    """remap() maps from analysis pixels to thermal pixels through registered depth (0: working distance).

    ``depth_rgb_mm`` is the registered depth at the analysis size or on the splat grid; on the
    grid, inverse depth is computed there and upsampled by nearest neighbour, which is what it
    would be on the grid's nearest-neighbour upsampling (``resize_to(..., nearest=True)``).
    """
    q = np.full(depth_rgb_mm.shape, tables.inverse_working_distance, np.float32)
    np.divide(np.float32(1.0), depth_rgb_mm, out=q, where=depth_rgb_mm > 0)
    t = q * np.float32(1.0 / tables.inverse_working_distance)
    t = resize_to(t, tables.analysis_size, nearest=True)
    map_x = tables.thermal_map0_x + t * tables.thermal_map_dx
    map_y = tables.thermal_map0_y + t * tables.thermal_map_dy
    return map_x, map_y


def thermal_map_error(
    calibration: CameraCalibration, analysis_size: tuple[int, int], depth_mm: float
) -> float:
    """Largest distance (thermal pixels) between the interpolated and the exact thermal map at one depth."""
    tables = registration_tables(calibration, analysis_size)
    plane = np.full((tables.analysis.height, tables.analysis.width), depth_mm, np.float32)
    approx_x, approx_y = thermal_maps(plane, tables)
    exact_x, exact_y = _thermal_map(
        calibration, tables.analysis, undistorted_rays(tables.analysis), 1.0 / depth_mm
    )
    inside = (
        (exact_x >= 0)
        & (exact_x < calibration.thermal.intrinsics.width)
        & (exact_y >= 0)
        & (exact_y < calibration.thermal.intrinsics.height)
    )
    if not inside.any():
        return 0.0
    return float(np.hypot(approx_x - exact_x, approx_y - exact_y)[inside].max())


def resize_to(image: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Scale normalisation to (width, height): area averaging when shrinking, bilinear when enlarging."""
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif w < image.shape[1] and h < image.shape[0]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)
