"""Synthetic degradations with clean references, for tests and for the bench when no data set is given.

Each function turns a clean image into the degraded one section 3.2 has to repair, with a
seeded generator, so a test or a bench row can compare the repair with the truth:

- low light: the clean sRGB frame is taken back to linear light, dimmed by a global exposure
  times a smooth spatial illumination falloff (a lamp or window on one side of the room),
  photon shot noise (Poisson, ``full_well`` electrons at full exposure) and Gaussian read
  noise are added, and the camera's gamma encodes it back to uint8;
- depth holes: invalid (0) pixels as a sensor produces them: shadow bands beside depth edges,
  scattered dropouts, and a few large occlusion blobs;
- low thermal contrast: temperatures squeezed towards the ambient and shifted by a drift.

These are not the simulator (``services/simulator``): they act on any image, such as the
scikit-image sample photographs the unit tests use. ``render_box_scene`` ray-casts a small
scene of fronto-parallel boards (stand-ins for students) in front of a wall into all three
sensors of a calibration, so registration can be checked against exact geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.calibration import CameraCalibration, Extrinsics, Intrinsics, SensorCalibration
from services.enhancement.alignment import undistorted_rays

_GAMMA = 2.2


def srgb_to_linear(image_u8: np.ndarray) -> np.ndarray:
    return (image_u8.astype(np.float32) / 255.0) ** _GAMMA


def linear_to_srgb_u8(linear: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.clip(linear, 0.0, 1.0) ** (1.0 / _GAMMA) * 255.0), 0, 255).astype(np.uint8)


def illumination_falloff(height: int, width: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth HxW illumination in (1-strength, 1]: brightest near a random point, falling off from it."""
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.hypot((yy - cy) / height, (xx - cx) / width) / np.sqrt(2.0)
    return (1.0 - strength * np.clip(dist, 0.0, 1.0) ** 0.8).astype(np.float32)


def low_light(
    clean_bgr: np.ndarray,
    rng: np.random.Generator,
    *,
    exposure: float = 0.12,
    falloff: float = 0.5,
    full_well: float = 2000.0,
    read_noise: float = 3.0,
) -> np.ndarray:
    """A dim, noisy capture of ``clean_bgr`` (uint8 BGR): exposure × falloff, shot + read noise, gamma."""
    if clean_bgr.dtype != np.uint8 or clean_bgr.ndim != 3:
        raise ValueError("clean_bgr must be HxWx3 uint8")
    linear = srgb_to_linear(clean_bgr)
    light = exposure * illumination_falloff(clean_bgr.shape[0], clean_bgr.shape[1], rng, falloff)
    electrons = linear * light[..., None] * full_well
    noisy = rng.poisson(electrons).astype(np.float32) + rng.normal(0.0, read_noise, electrons.shape)
    return linear_to_srgb_u8(noisy / full_well)


def depth_holes(
    depth_mm: np.ndarray,
    rng: np.random.Generator,
    *,
    dropout: float = 0.02,
    blobs: int = 4,
    blob_radius: tuple[int, int] = (6, 20),
    shadow_px: int = 4,
) -> np.ndarray:
    """``depth_mm`` (uint16) with invalid pixels: edge shadows, scattered dropouts and large blobs."""
    out = depth_mm.copy()
    h, w = out.shape
    # Shadow: the side of a depth discontinuity the emitter cannot see (right of near edges).
    grad = cv2.Sobel(depth_mm.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3)
    edges: np.ndarray = (grad > 200.0).astype(np.uint8)
    if shadow_px > 0:
        kernel = np.ones((1, 2 * shadow_px + 1), np.uint8)
        kernel[:, :shadow_px] = 0
        edges = cv2.dilate(edges, kernel)
    out[edges.astype(bool)] = 0
    out[rng.random((h, w)) < dropout] = 0
    mask = np.zeros((h, w), np.uint8)
    for _ in range(blobs):
        r = int(rng.integers(blob_radius[0], blob_radius[1] + 1))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (r, max(2, int(r * rng.uniform(0.4, 1.0))))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    out[mask.astype(bool)] = 0
    return out


def low_thermal_contrast(
    thermal_c: np.ndarray, rng: np.random.Generator, *, squeeze: float = 0.35, drift_c: float = 1.5
) -> np.ndarray:
    """Temperatures pulled towards their median by ``squeeze``, offset by a random drift, plus NETD noise."""
    median = np.float32(np.median(thermal_c))
    squeezed = median + (thermal_c - median) * np.float32(squeeze)
    drift = np.float32(rng.uniform(-drift_c, drift_c))
    noise = rng.normal(0.0, 0.05, thermal_c.shape).astype(np.float32)  # ~50 mK NETD
    return (squeezed + drift + noise).astype(np.float32)


def _rotation(tilt_deg: float, pan_deg: float) -> tuple:
    ax, ay = math.radians(tilt_deg), math.radians(pan_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    return tuple(tuple(float(v) for v in row) for row in rx @ ry)


def example_calibration(colour_width: int = 640, colour_height: int = 360) -> CameraCalibration:
    """A Kinect-like rig: 90° colour; 320×288 binned NFOV depth 32 mm aside, tilted 6°; 320×240 thermal."""
    f = 306.0 * colour_width / 640.0
    return CameraCalibration(
        rgb=Intrinsics(
            width=colour_width,
            height=colour_height,
            fx=f,
            fy=f,
            cx=colour_width / 2 - 0.5,
            cy=colour_height / 2 - 0.5,
            distortion=(0.04, -0.02, 0.0, 0.0, 0.0),
        ),
        depth=SensorCalibration(
            intrinsics=Intrinsics(width=320, height=288, fx=252.0, fy=252.0, cx=159.5, cy=143.5),
            to_rgb=Extrinsics(rotation=_rotation(-6.0, 0.0), translation_mm=(32.0, -2.0, 4.0)),
        ),
        thermal=SensorCalibration(
            intrinsics=Intrinsics(width=320, height=240, fx=300.0, fy=300.0, cx=159.5, cy=119.5),
            to_rgb=Extrinsics(rotation=_rotation(0.5, -1.0), translation_mm=(-60.0, 10.0, 0.0)),
        ),
        working_distance_mm=4000.0,
    )


@dataclass(frozen=True)
class Board:
    """A fronto-parallel rectangle in the colour camera's frame (mm), with a temperature."""

    x0: float
    y0: float
    x1: float
    y1: float
    z: float
    temperature_c: float


@dataclass(frozen=True)
class BoxScene:
    """Clean images of one scene in every sensor, and its depth seen from colour."""

    rgb: np.ndarray  # colour sensor, uint8 BGR
    depth_mm: np.ndarray  # depth sensor, uint16, complete
    thermal_c: np.ndarray  # thermal sensor, float32
    colour_depth_mm: np.ndarray  # colour sensor, float32 Z (colour frame) of what each pixel sees


def random_boards(rng: np.random.Generator, count: int = 5) -> list[Board]:
    boards = []
    for _ in range(count):
        z = float(rng.uniform(2200, 4800))
        cx, cy = float(rng.uniform(-0.5, 0.5) * z), float(rng.uniform(-0.25, 0.3) * z)
        w, h = float(rng.uniform(350, 700)), float(rng.uniform(500, 900))
        boards.append(
            Board(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, z, float(rng.uniform(29.0, 35.0)))
        )
    return boards


def _cast(
    intrinsics: Intrinsics, to_rgb: Extrinsics, boards: list[Board], wall_z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast each pixel of a sensor: (hit index, −1 = wall; X, Y in the colour frame; ray parameter)."""
    rotation, origin = to_rgb.matrix()
    rx, ry = undistorted_rays(intrinsics)
    direction = np.stack([rx, ry, np.ones_like(rx)], axis=-1) @ rotation.T
    dz = direction[..., 2]
    best_s = (wall_z - origin[2]) / dz
    hit = np.full(rx.shape, -1, np.int32)
    for index, board in enumerate(boards):
        s = (board.z - origin[2]) / dz
        x = origin[0] + s * direction[..., 0]
        y = origin[1] + s * direction[..., 1]
        inside = (
            (s > 0) & (s < best_s) & (x >= board.x0) & (x <= board.x1) & (y >= board.y0) & (y <= board.y1)
        )
        best_s = np.where(inside, s, best_s)
        hit[inside] = index
    points = origin + best_s[..., None] * direction
    return hit, points[..., 0], points[..., 1], best_s


def render_box_scene(
    calibration: CameraCalibration, texture_bgr: np.ndarray, boards: list[Board], *, wall_z: float = 6000.0
) -> BoxScene:
    """Ray-cast ``boards`` before a wall at ``wall_z`` into the colour, depth and thermal sensors.

    Colour: the wall and each board show ``texture_bgr`` (1 px = 4 mm on the wall, boards offset
    so their texture differs from the wall's behind them). Depth: the depth sensor's own Z.
    Thermal: 22 °C wall, each board its temperature, with a faint texture of ±0.3 °C.
    """
    tex = texture_bgr
    th, tw = tex.shape[:2]

    def texture_at(hit, x, y):
        shift = np.where(hit >= 0, 0.37 * (hit + 1), 0.0)
        u = ((x / 4.0 + tw * (0.5 + shift)) % tw).astype(np.float32)
        v = ((y / 4.0 + th * (0.5 + shift)) % th).astype(np.float32)
        return u, v

    rgb_intr = calibration.rgb
    hit, x, y, _ = _cast(rgb_intr, Extrinsics(), boards, wall_z)
    u, v = texture_at(hit, x, y)
    rgb = cv2.remap(tex, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    colour_z = np.where(hit >= 0, np.array([b.z for b in boards] + [wall_z])[hit], wall_z).astype(np.float32)

    _, _, _, d_range = _cast(calibration.depth.intrinsics, calibration.depth.to_rgb, boards, wall_z)
    # The depth camera reports Z along its own axis: the ray parameter s is exactly that (ray z = 1).
    depth = np.clip(np.rint(d_range), 0, 65535).astype(np.uint16)

    t_hit, tx, ty, _ = _cast(calibration.thermal.intrinsics, calibration.thermal.to_rgb, boards, wall_z)
    temps = np.array([b.temperature_c for b in boards] + [22.0], np.float32)
    grey = cv2.cvtColor(tex, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    tu, tv = texture_at(t_hit, tx, ty)
    detail = cv2.remap(grey, tu, tv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    thermal = (temps[t_hit] + 0.6 * (detail - 0.5)).astype(np.float32)
    return BoxScene(rgb, depth, thermal, colour_z)
