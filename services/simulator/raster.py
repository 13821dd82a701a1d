"""Vectorised ray casting of ellipsoids and boxes with a z-buffer: the simulator's only renderer.

Every sensor (colour, depth, thermal, and the clean references) is rendered by casting one
ray per pixel against the primitives of one 3-D scene; the static room is cast once per sensor
(scene.py) and each frame casts only the moving primitives against it. Rays are only cast
inside each primitive's screen-space bounding box: its exact box in undistorted normalised
coordinates (the dual conic of an ellipsoid, the projected corners of a box), mapped through
the lens model with a bounded margin, so that it holds every pixel whose ray can report a hit
and few others (seven candidates in ten hit in a classroom). All candidate pixels of all
primitives are intersected at once with NumPy in float32, then merged with ``np.minimum.at``
into the z-buffer. That keeps a 20-student classroom at about 3 ms per sensor on two cores.

Depth is the camera-frame z (millimetres along the optical axis), which is what a
Kinect-style depth map stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from services.common.calibration import Intrinsics
from services.simulator.geometry import SensorPose, distort_normalised

KIND_ELLIPSOID = 0
KIND_BOX = 1

_NEAR_MM = 20.0
_CHUNK_PIXELS = 3_000_000
_SLICE_CANDIDATES = 16_384


@dataclass
class Primitives:
    """Struct of arrays: P primitives in world coordinates.

    ``axes[p][:, k]`` is the k-th local axis of primitive p scaled by its half extent, so a
    point of the primitive is centre + axes @ u with |u| <= 1 (ellipsoid) or max|u_k| <= 1 (box).
    """

    kind: np.ndarray  # [P] int8
    centre: np.ndarray  # [P, 3] float64 mm
    axes: np.ndarray  # [P, 3, 3] float64 mm
    material: np.ndarray  # [P] int32, row of the material table
    owner: np.ndarray  # [P] int32, student index or -1
    part: np.ndarray  # [P] int16, body part or prop code

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls) -> Primitives:
        return cls(
            kind=np.zeros(0, np.int8),
            centre=np.zeros((0, 3)),
            axes=np.zeros((0, 3, 3)),
            material=np.zeros(0, np.int32),
            owner=np.zeros(0, np.int32),
            part=np.zeros(0, np.int16),
        )

    @classmethod
    def concat(cls, parts: Sequence[Primitives]) -> Primitives:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            kind=np.concatenate([p.kind for p in parts]),
            centre=np.concatenate([p.centre for p in parts]),
            axes=np.concatenate([p.axes for p in parts]),
            material=np.concatenate([p.material for p in parts]),
            owner=np.concatenate([p.owner for p in parts]),
            part=np.concatenate([p.part for p in parts]),
        )


def make_primitives(
    kind: int,
    centre: np.ndarray,
    axes: np.ndarray,
    material: np.ndarray | int,
    owner: np.ndarray | int = -1,
    part: np.ndarray | int = 0,
) -> Primitives:
    centre = np.asarray(centre, float).reshape(-1, 3)
    n = len(centre)
    return Primitives(
        kind=np.full(n, kind, np.int8),
        centre=centre,
        axes=np.asarray(axes, float).reshape(n, 3, 3),
        material=np.broadcast_to(np.asarray(material, np.int32), (n,)).copy(),
        owner=np.broadcast_to(np.asarray(owner, np.int32), (n,)).copy(),
        part=np.broadcast_to(np.asarray(part, np.int16), (n,)).copy(),
    )


def box_axes(rotation: np.ndarray, half_extent: np.ndarray) -> np.ndarray:
    """[N, 3, 3] axes from rotations [N, 3, 3] (columns = local axes) and half extents [N, 3]."""
    return np.asarray(rotation, float) * np.asarray(half_extent, float)[:, None, :]


@dataclass
class Raster:
    """What one sensor sees: z-buffer, primitive index per pixel, normals of the winning pixels."""

    depth: np.ndarray  # HxW float32, camera z in mm, inf where no primitive
    index: np.ndarray  # HxW int32, primitive index (offset applied) or -1
    # The pixels this pass won (flat indices) with their camera-frame unit normals and the
    # cosine between normal and the ray back to the camera (1 = facing the sensor).
    pixels: np.ndarray
    normal: np.ndarray
    view_cos: np.ndarray


@lru_cache(maxsize=32)
def _flat_rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """x/z and y/z of every pixel centre's ray as two contiguous flat arrays (read-only)."""
    rays = SensorPose(intrinsics, np.eye(3), np.zeros(3)).rays
    planes = tuple(np.ascontiguousarray(rays[..., k]).reshape(-1) for k in (0, 1))
    for plane in planes:
        plane.setflags(write=False)
    return planes  # type: ignore[return-value]


def _pixel_bounds(pose: SensorPose) -> tuple[float, float, float, float]:
    return _normalised_extent(pose.intrinsics)


@lru_cache(maxsize=32)
def _normalised_extent(intrinsics: Intrinsics) -> tuple[float, float, float, float]:
    """Undistorted normalised extent of the image (a little wider than the pixel centres)."""
    pose = SensorPose(intrinsics, np.eye(3), np.zeros(3))
    rays = pose.rays
    x, y = rays[..., 0], rays[..., 1]
    pad_x = 2.0 / pose.intrinsics.fx
    pad_y = 2.0 / pose.intrinsics.fy
    return float(x.min()) - pad_x, float(x.max()) + pad_x, float(y.min()) - pad_y, float(y.max()) + pad_y


@lru_cache(maxsize=32)
def _lens_curvature(intrinsics: Intrinsics) -> tuple[float, float, float, float]:
    """Upper bounds of |u_xx|, |u_yy|, |v_xx|, |v_yy| over the image: pixels per (normalised unit)^2.

    (u, v) are the pixel coordinates of the undistorted normalised point (x, y) through the lens
    model. Along a straight edge sampled every h, a function with |f''| <= M exceeds the largest
    sample by at most M h^2 / 8, which is how ``_screen_boxes`` bounds a lens-mapped box.
    """
    if not any(intrinsics.distortion):
        return 0.0, 0.0, 0.0, 0.0
    x0, x1, y0, y1 = _normalised_extent(intrinsics)
    n = 257
    xs, hx = np.linspace(x0, x1, n, retstep=True)
    ys, hy = np.linspace(y0, y1, n, retstep=True)
    gx, gy = np.meshgrid(xs, ys)
    dx, dy = distort_normalised(gx, gy, intrinsics.distortion)
    u = intrinsics.fx * dx
    v = intrinsics.fy * dy
    # Second differences on a fine grid, with a 1.5x margin for the curvature between grid points
    # (the lens model is a low-order polynomial, smooth over the image).
    bounds = (
        np.abs(np.diff(u, 2, axis=1)).max() / hx**2,
        np.abs(np.diff(u, 2, axis=0)).max() / hy**2,
        np.abs(np.diff(v, 2, axis=1)).max() / hx**2,
        np.abs(np.diff(v, 2, axis=0)).max() / hy**2,
    )
    return tuple(1.5 * float(b) for b in bounds)  # type: ignore[return-value]


# Samples per edge of a box when it is mapped through the lens model, and a margin (pixels) for
# float32 rounding of the rays and of the hit tests near silhouettes (both far below 0.01 px).
_EDGE_SAMPLES = 3
# Points on the outline of the unit square, _EDGE_SAMPLES per edge: (x, y) fractions of a box.
_EDGE = np.linspace(0.0, 1.0, _EDGE_SAMPLES)
_OUTLINE = np.unique(
    np.concatenate(
        [
            np.stack([_EDGE, np.zeros(_EDGE_SAMPLES)]),
            np.stack([_EDGE, np.ones(_EDGE_SAMPLES)]),
            np.stack([np.zeros(_EDGE_SAMPLES), _EDGE]),
            np.stack([np.ones(_EDGE_SAMPLES), _EDGE]),
        ],
        axis=1,
    ),
    axis=1,
)
_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_PIXEL_SLACK = 0.1
# Rounding error of the ellipsoid hit test's discriminant, in float32 units of a |o|^2: at most
# 7.6 was seen over 1,500 random ellipsoids (aspect ratios to 30, 0.8-9 m) at 3840x2160.
_ROUNDING_ULPS = 32.0


def _normalised_boxes(
    kind: np.ndarray,
    centre_cam: np.ndarray,
    axes_cam: np.ndarray,
    pose: SensorPose,
    radii2: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounding boxes of every primitive in undistorted normalised coordinates, clipped to the
    image, and whether the primitive can be seen at all.

    Boxes of boxes are exact. Those of ellipsoids are exact for a slightly inflated ellipsoid: the
    float32 hit test (``_intersect``) computes its discriminant b^2 - a (|o|^2 - 1) with an error
    of a few units of float32 rounding times a |o|^2, so rays up to sqrt(1 + E) ellipsoid radii
    from the centre can report a hit, E = _ROUNDING_ULPS * 2^-24 * |o|^2 (|o|: the camera's
    distance from the centre in ellipsoid radii; ``radii2`` = |o|^2 when the caller has it).
    That matters for small, far ellipsoids (a pen's 5 mm radius at 8 m reports hits a pixel
    beyond its outline at 1080p), and keeps the boxes holding every pixel the hit test reports.
    """
    p = len(kind)
    bounds = np.zeros((4, p))  # x_lo, x_hi, y_lo, y_hi
    in_front = np.zeros(p, bool)  # entirely beyond the near plane
    reaches = np.zeros(p, bool)  # at least partly beyond it
    ell = np.flatnonzero(kind == KIND_ELLIPSOID)
    if len(ell):
        ell_radii2 = None if radii2 is None else radii2[ell]
        bounds[:, ell], in_front[ell], reaches[ell] = _ellipsoid_bounds(
            centre_cam[ell], axes_cam[ell], ell_radii2
        )
    box = np.flatnonzero(kind == KIND_BOX)
    if len(box):
        bounds[:, box], in_front[box], reaches[box] = _box_bounds(centre_cam[box], axes_cam[box])
    return _clip_to_image(bounds, in_front, reaches, pose)


# Small reductions (over 3 axes, 8 corners) in the two functions below run as elementwise
# operations over primitives: NumPy reduces a short inner axis row by row, far slower.


def _ellipsoid_bounds(
    centre_cam: np.ndarray, axes_cam: np.ndarray, radii2: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised boxes [4, n] of n ellipsoids inflated for the hit test's rounding (see
    ``_normalised_boxes``), whether each is entirely beyond the near plane, and whether partly."""
    c = centre_cam.T  # [3, n]
    if radii2 is None:
        a = axes_cam
        o2 = np.einsum(
            "pi,pi->p", c.T, np.linalg.solve(a @ np.transpose(a, (0, 2, 1)), c.T[:, :, None])[:, :, 0]
        )
    else:
        o2 = radii2
    a = np.transpose(axes_cam, (1, 2, 0)) * np.sqrt(1.0 + _ROUNDING_ULPS * 2.0**-24 * o2)  # [i, k, n]
    sq = a * a
    semi2 = sq[0] + sq[1] + sq[2]  # squared semi-axis lengths [k, n]
    extent = np.sqrt(np.maximum(np.maximum(semi2[0], semi2[1]), semi2[2]))
    in_front = c[2] - extent > _NEAR_MM
    reaches = c[2] + extent > _NEAR_MM

    # Dual conic of the projected ellipsoid: C* = A A^T - c c^T; its vertical and horizontal
    # tangent lines bound the silhouette exactly.
    def dual(i: int, j: int) -> np.ndarray:
        return a[i, 0] * a[j, 0] + a[i, 1] * a[j, 1] + a[i, 2] * a[j, 2] - c[i] * c[j]

    c00, c11, c22, c02, c12 = dual(0, 0), dual(1, 1), dual(2, 2), dual(0, 2), dual(1, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rx = np.abs(np.sqrt(np.maximum(c02 * c02 - c00 * c22, 0.0)) / c22)
        ry = np.abs(np.sqrt(np.maximum(c12 * c12 - c11 * c22, 0.0)) / c22)
        mx, my = c02 / c22, c12 / c22
    return np.stack([mx - rx, mx + rx, my - ry, my + ry]), in_front, reaches


def _box_bounds(centre_cam: np.ndarray, axes_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised boxes [4, n] of n boxes from their projected corners, whether each is entirely
    beyond the near plane, and whether partly."""
    n = len(centre_cam)
    # Corners [8, 3, n]: centre + axes @ signs.
    spread = (_CORNER_SIGNS @ np.transpose(axes_cam, (2, 1, 0)).reshape(3, 3 * n)).reshape(8, 3, n)
    corners = centre_cam.T[None] + spread
    ahead = corners[:, 2] > _NEAR_MM
    with np.errstate(invalid="ignore", divide="ignore"):
        nx = corners[:, 0] / corners[:, 2]
        ny = corners[:, 1] / corners[:, 2]
    bounds = np.stack([nx.min(axis=0), nx.max(axis=0), ny.min(axis=0), ny.max(axis=0)])
    return bounds, ahead.all(axis=0), ahead.any(axis=0)


def _clip_to_image(
    bounds: np.ndarray, in_front: np.ndarray, reaches: np.ndarray, pose: SensorPose
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The boxes clipped to the image's normalised extent, and which primitives it can show."""
    extent_image = np.array(_pixel_bounds(pose))
    # Primitives cut by the near plane may cover the whole image; those behind it are never seen.
    whole = reaches & ~in_front
    bounds[:, whole] = extent_image[:, None]
    bounds[:, ~reaches] = 0.0
    x_lo, x_hi, y_lo, y_hi = bounds
    bx0, bx1, by0, by1 = extent_image
    seen = reaches & (x_hi > bx0) & (x_lo < bx1) & (y_hi > by0) & (y_lo < by1)
    bounds = np.clip(bounds, extent_image[[0, 0, 2, 2], None], extent_image[[1, 1, 3, 3], None])
    return bounds[0], bounds[1], bounds[2], bounds[3], seen


def _screen_boxes(
    kind: np.ndarray,
    centre_cam: np.ndarray,
    axes_cam: np.ndarray,
    pose: SensorPose,
    radii2: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer pixel bounding boxes [u0, u1) x [v0, v1) of every primitive (empty when unseen).

    A box holds every pixel whose centre's ray can meet the primitive, and as few others as the
    lens allows: the exact normalised box is mapped through the lens model along its edges (the
    extremes of a lens-mapped box lie on its outline), widened by the most the mapped edges can
    bulge between samples (``_lens_curvature``) and by ``_PIXEL_SLACK``.
    """
    w, h = pose.size
    x_lo, x_hi, y_lo, y_hi, seen = _normalised_boxes(kind, centre_cam, axes_cam, pose, radii2)
    k = pose.intrinsics
    span_x = x_hi - x_lo
    span_y = y_hi - y_lo
    # Outline samples [points, primitives].
    dx, dy = distort_normalised(
        x_lo + span_x * _OUTLINE[0][:, None], y_lo + span_y * _OUTLINE[1][:, None], k.distortion
    )
    u = k.fx * dx + k.cx
    v = k.fy * dy + k.cy
    uxx, uyy, vxx, vyy = _lens_curvature(k)
    hx2 = (span_x / (_EDGE_SAMPLES - 1)) ** 2
    hy2 = (span_y / (_EDGE_SAMPLES - 1)) ** 2
    slack_u = np.maximum(hx2 * uxx, hy2 * uyy) / 8.0 + _PIXEL_SLACK
    slack_v = np.maximum(hx2 * vxx, hy2 * vyy) / 8.0 + _PIXEL_SLACK
    # Pixel j is a candidate when its centre (u = j) may lie inside [u_min, u_max].
    size = np.array([[w], [h]])
    lo = np.ceil(np.stack([u.min(axis=0) - slack_u, v.min(axis=0) - slack_v]))
    hi = np.floor(np.stack([u.max(axis=0) + slack_u, v.max(axis=0) + slack_v])) + 1
    lo = np.clip(lo, 0, size).astype(np.int64)
    hi = np.clip(hi, 0, size).astype(np.int64)
    u1 = np.where(seen, hi[0], lo[0])
    return lo[0], u1, lo[1], hi[1]


def _candidate_pixels(
    prim_ids: np.ndarray, u0: np.ndarray, u1: np.ndarray, v0: np.ndarray, v1: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices inside the bounding boxes of ``prim_ids``, grouped by primitive and row
    by row within a box, and the number of pixels per primitive (so per-primitive values expand
    with ``np.repeat``)."""
    bu0, bv0 = u0[prim_ids], v0[prim_ids]
    bw = np.maximum(u1[prim_ids] - bu0, 0)
    bh = np.maximum(v1[prim_ids] - bv0, 0)
    counts = bw * bh
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), counts
    # One entry per box row: its first pixel and where its run starts among the candidates.
    row_box = np.repeat(np.arange(len(prim_ids)), bh)
    row_in_box = np.arange(len(row_box)) - np.repeat(np.cumsum(bh) - bh, bh)
    row_first = (bv0[row_box] + row_in_box) * width + bu0[row_box]
    row_len = bw[row_box]
    row_start = np.cumsum(row_len) - row_len
    pix = np.arange(total, dtype=np.int64) + np.repeat(row_first - row_start, row_len)
    return pix, counts


def _slices(counts: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Runs of whole primitives with about _SLICE_CANDIDATES candidates each: (first, last)
    primitive and [lo, hi) candidate range. Intersecting a run at a time keeps the per-candidate
    temporaries in the core's cache."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    if total <= _SLICE_CANDIDATES:
        return [(0, len(counts), 0, total)]
    cuts = np.searchsorted(ends, np.arange(_SLICE_CANDIDATES, total, _SLICE_CANDIDATES), side="left") + 1
    cuts = np.unique(np.concatenate([[0], cuts, [len(counts)]]))
    starts = np.concatenate([[0], ends])
    return [(int(a), int(b), int(starts[a]), int(starts[b])) for a, b in itertools.pairwise(cuts) if b > a]


def _coefficients(inv_axes: np.ndarray, origin_local: np.ndarray) -> np.ndarray:
    """Per-primitive ray coefficients as rows: M (9 values, row-major), o (3), |o|^2 - 1."""
    p = len(inv_axes)
    table = np.empty((13, p), np.float32)
    table[:9] = inv_axes.reshape(p, 9).T
    table[9:12] = origin_local.T
    table[12] = (origin_local.astype(np.float64) ** 2).sum(axis=1) - 1.0
    return table


def _affine(t: np.ndarray, row: int, x: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """t[row] x + t[row + 1] y + t[row + 2] per candidate, rounded in that order."""
    out = np.multiply(t[row], x)
    out += np.multiply(t[row + 1], y, out=scratch)
    out += t[row + 2]
    return out


def _intersect(kind: int, coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ray parameter s (= camera z, since rays have z = 1) of the nearest hit, inf for a miss.

    ``coef`` holds the 13 per-candidate rows of ``_coefficients``. In the primitive's local
    unit frame a pixel's ray is u(s) = s q - o with q = M d and o = M c (M the inverse axes,
    c the camera-frame centre, d = (x, y, 1)). In-place float32 arithmetic, every operation
    in the order of the formulas.
    """
    t = coef
    scratch = np.empty_like(x)
    q0 = _affine(t, 0, x, y, scratch)
    q1 = _affine(t, 3, x, y, scratch)
    q2 = _affine(t, 6, x, y, scratch)
    o0, o1, o2 = t[9], t[10], t[11]
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == KIND_ELLIPSOID:
            # a = q.q, b = q.o, disc = b^2 - a (|o|^2 - 1), root = (b - sqrt(disc)) / a
            a = np.multiply(q0, q0)
            a += np.multiply(q1, q1, out=scratch)
            a += np.multiply(q2, q2, out=scratch)
            b = np.multiply(q0, o0, out=q0)
            b += np.multiply(q1, o1, out=q1)
            b += np.multiply(q2, o2, out=q2)
            disc = np.multiply(b, b, out=q1)
            disc -= np.multiply(a, t[12], out=scratch)
            root = b
            root -= np.sqrt(disc, out=disc)
            root /= a  # NaN where the ray misses (disc < 0)
            np.copyto(root, np.float32(np.inf), where=~(root > _NEAR_MM))
            return root
        near = np.full(len(x), -np.inf, np.float32)
        far = np.full(len(x), np.inf, np.float32)
        t1 = np.empty_like(x)
        t2 = np.empty_like(x)
        for qq, oo in ((q0, o0), (q1, o1), (q2, o2)):
            np.subtract(oo, 1.0, out=t1)
            t1 /= qq
            np.add(oo, 1.0, out=t2)
            t2 /= qq
            np.fmax(near, np.fmin(t1, t2, out=scratch), out=near)
            np.fmin(far, np.fmax(t1, t2, out=scratch), out=far)
    np.copyto(near, np.float32(np.inf), where=~((near <= far) & (near > _NEAR_MM)))
    return near


def _local_hits(
    t: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit points u = s q - o in the primitives' local unit frames (rows of ``t``: per-hit
    ``_coefficients``)."""
    u0 = s * (t[0] * x + t[1] * y + t[2]) - t[9]
    u1 = s * (t[3] * x + t[4] * y + t[5]) - t[10]
    u2 = s * (t[6] * x + t[7] * y + t[8]) - t[11]
    return u0, u1, u2


def _ellipsoid_normals(
    table: np.ndarray, prim: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame unit normals (three component arrays) at hits on ellipsoids."""
    t = np.take(table[:12], prim, axis=1)
    u0, u1, u2 = _local_hits(t, x, y, s)
    # The gradient of |M (X - c)|^2 is M^T u.
    n0 = t[0] * u0 + t[3] * u1 + t[6] * u2
    n1 = t[1] * u0 + t[4] * u1 + t[7] * u2
    n2 = t[2] * u0 + t[5] * u1 + t[8] * u2
    norm = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
    norm = np.maximum(norm, 1e-9, out=norm)
    return n0 / norm, n1 / norm, n2 / norm


def _box_normals(
    faces: np.ndarray, table: np.ndarray, prim: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame unit normals (three component arrays) at hits on boxes; ``faces`` are the
    primitives' unit face normals [P, 3, 3] (``_unit_faces``)."""
    u0, u1, u2 = _local_hits(np.take(table[:12], prim, axis=1), x, y, s)
    # The face hit is the local axis whose coordinate is closest to +-1 (the first on a tie).
    a0, a1, a2 = np.abs(u0), np.abs(u1), np.abs(u2)
    first = (a0 >= a1) & (a0 >= a2)
    second = ~first & (a1 >= a2)
    axis = np.where(first, 0, np.where(second, 1, 2))
    sign = np.sign(np.where(first, u0, np.where(second, u1, u2)))
    n = faces[prim, :, axis] * sign[:, None]
    return n[:, 0], n[:, 1], n[:, 2]


def _unit_faces(axes_cam: np.ndarray) -> np.ndarray:
    """Unit face normals of boxes [P, 3, 3], the local axes as columns, in float32 as the
    ellipsoids' normals (negating one flips its sign exactly)."""
    faces = axes_cam.astype(np.float32)
    norm = np.sqrt(faces[:, 0] * faces[:, 0] + faces[:, 1] * faces[:, 1] + faces[:, 2] * faces[:, 2])
    faces /= np.maximum(norm, 1e-9)[:, None, :]
    return faces


_Hits = list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]  # per chunk: kind, pixels, depths, primitives


def rasterise(
    primitives: Primitives,
    pose: SensorPose,
    *,
    base: Raster | None = None,
    index_offset: int = 0,
    normals: bool = True,
) -> Raster:
    """Cast every pixel's ray against ``primitives``; ``base`` is a pre-rendered scene to test against.

    Returned ``index`` values are primitive indices plus ``index_offset`` where this pass won,
    and the base's indices elsewhere.
    """
    w, h = pose.size
    if base is not None:
        depth = base.depth.copy()
        index = base.index.copy()
    else:
        depth = np.full((h, w), np.inf, np.float32)
        index = np.full((h, w), -1, np.int32)
    empty = Raster(depth, index, np.zeros(0, np.int64), np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
    if len(primitives) == 0:
        return empty

    centre_cam = primitives.centre @ pose.rotation.T + pose.translation
    axes_cam = pose.rotation @ primitives.axes
    inv_axes64 = np.linalg.inv(axes_cam)
    origin_local64 = (inv_axes64 @ centre_cam[:, :, None])[:, :, 0]
    radii2 = np.einsum("pi,pi->p", origin_local64, origin_local64)
    boxes = _screen_boxes(primitives.kind, centre_cam, axes_cam, pose, radii2)
    u0, u1, v0, v1 = boxes
    area = np.maximum(u1 - u0, 0) * np.maximum(v1 - v0, 0)
    active = np.flatnonzero(area > 0)
    if len(active) == 0:
        return empty

    ray_x, ray_y = _flat_rays(pose.intrinsics)
    table = _coefficients(inv_axes64.astype(np.float32), origin_local64.astype(np.float32))
    hits = _depth_test(primitives.kind, active, area, boxes, table, ray_x, ray_y, depth.reshape(-1), w)
    if not hits:
        return empty
    winners = _label_winners(hits, depth.reshape(-1), index.reshape(-1), index_offset)
    won_pixels = np.concatenate([pix for _, pix, _, _ in winners])
    if not normals:
        return Raster(depth, index, won_pixels, np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
    normal, view_cos = _shade(winners, table, axes_cam, ray_x, ray_y)
    return Raster(depth, index, won_pixels, normal, view_cos)


def _depth_test(
    kind: np.ndarray,
    active: np.ndarray,
    area: np.ndarray,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    table: np.ndarray,
    ray_x: np.ndarray,
    ray_y: np.ndarray,
    flat_depth: np.ndarray,
    width: int,
) -> _Hits:
    """Intersect the rays of the ``active`` primitives' screen boxes, kind by kind and chunk by
    chunk, lowering ``flat_depth`` (the z-buffer) in place; per chunk, the candidates that passed."""
    u0, u1, v0, v1 = boxes
    hits: _Hits = []
    for group_kind in (KIND_ELLIPSOID, KIND_BOX):
        group = active[kind[active] == group_kind]
        if len(group) == 0:
            continue
        # Chunks keep memory bounded when a big static primitive (a wall) covers the image.
        chunk_id = np.cumsum(area[group]) // _CHUNK_PIXELS
        for c in np.unique(chunk_id):
            ids = group[chunk_id == c]
            pix, counts = _candidate_pixels(ids, u0, u1, v0, v1, width)
            if len(pix) == 0:
                continue
            s = np.empty(len(pix), np.float32)
            for first, last, lo, hi in _slices(counts):
                coef = np.repeat(table[:, ids[first:last]], counts[first:last], axis=1)
                cand = pix[lo:hi]
                s[lo:hi] = _intersect(group_kind, coef, np.take(ray_x, cand), np.take(ray_y, cand))
            # The z-test against the base scene drops hidden candidates before the merge.
            keep = np.flatnonzero(s < np.take(flat_depth, pix))
            pix, s, prim = pix[keep], s[keep], np.repeat(ids, counts)[keep]
            np.minimum.at(flat_depth, pix, s)
            hits.append((group_kind, pix, s, prim))
    return hits


def _label_winners(hits: _Hits, flat_depth: np.ndarray, flat_index: np.ndarray, index_offset: int) -> _Hits:
    """Write the labels of the pixels each chunk won into ``flat_index``; the hits that kept them.

    Labelled in chunk order: exact ties (two primitives at the same float depth) go to the
    earlier chunk, whose depth the later one's z-test already saw, and within a chunk to the
    primitive written last; comparing the labels once every chunk is written leaves one winner
    per pixel for shading.
    """
    labelled = []
    for group_kind, pix, s, prim in hits:
        win = s == flat_depth[pix]
        pix, s, prim = pix[win], s[win], prim[win]
        labels = prim.astype(np.int32) + index_offset
        flat_index[pix] = labels
        labelled.append((group_kind, pix, s, prim, labels))
    winners: _Hits = []
    for group_kind, pix, s, prim, labels in labelled:
        one = flat_index[pix] == labels
        winners.append((group_kind, pix[one], s[one], prim[one]))
    return winners


def _shade(
    winners: _Hits, table: np.ndarray, axes_cam: np.ndarray, ray_x: np.ndarray, ray_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals [N, 3] at the winning pixels and the cosine between each normal and its ray."""
    normal_parts, cos_parts = [], []
    faces = None
    for group_kind, pix, s, prim in winners:
        x = ray_x[pix]
        y = ray_y[pix]
        if group_kind == KIND_ELLIPSOID:
            n0, n1, n2 = _ellipsoid_normals(table, prim, x, y, s)
        else:
            faces = _unit_faces(axes_cam) if faces is None else faces
            n0, n1, n2 = _box_normals(faces, table, prim, x, y, s)
        ray_len = np.sqrt(x * x + y * y + 1.0)
        cos_parts.append(np.clip(-(n0 * x + n1 * y + n2) / ray_len, 0.0, 1.0))
        normal_parts.append(np.stack([n0, n1, n2], axis=1))
    normal = np.concatenate(normal_parts)
    view_cos = np.concatenate(cos_parts).astype(np.float32, copy=False)
    return normal, view_cos
