"""The ray caster against closed-form geometry: spheres, tilted planes, lens model, z-buffer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.common.calibration import Intrinsics
from services.simulator import raster
from services.simulator.geometry import SensorPose, distort_normalised, look_at, undistort_normalised
from services.simulator.raster import (
    KIND_BOX,
    KIND_ELLIPSOID,
    Primitives,
    _screen_boxes,
    box_axes,
    make_primitives,
    rasterise,
)

K = Intrinsics(width=160, height=120, fx=150.0, fy=150.0, cx=79.5, cy=59.5)
IDENTITY = SensorPose(K, np.eye(3), np.zeros(3))


def _rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    jj, ii = np.meshgrid(np.arange(intrinsics.width), np.arange(intrinsics.height))
    return (jj - intrinsics.cx) / intrinsics.fx, (ii - intrinsics.cy) / intrinsics.fy


def test_sphere_depth_is_the_closed_form_ray_intersection():
    centre = np.array([60.0, -40.0, 2000.0])
    radius = 250.0
    r = rasterise(make_primitives(KIND_ELLIPSOID, [centre], np.eye(3)[None] * radius, 1), IDENTITY)
    x, y = _rays(K)
    d = np.stack([x, y, np.ones_like(x)], -1)
    # |s d - c|^2 = r^2  ->  s = (d.c - sqrt((d.c)^2 - |d|^2 (|c|^2 - r^2))) / |d|^2
    dc = d @ centre
    dd = (d * d).sum(-1)
    disc = dc**2 - dd * (centre @ centre - radius**2)
    hit = disc > 0
    expected = (dc - np.sqrt(np.where(hit, disc, 0))) / dd
    assert np.array_equal(np.isfinite(r.depth), hit)
    # float32 ray casting: well under the depth sensor's 1 mm quantum.
    np.testing.assert_allclose(r.depth[hit], expected[hit], rtol=0, atol=0.25)
    # Depth is camera z: the sphere's smallest z is c_z - r = 1750 (its point straight toward z = 0).
    assert r.depth[hit].min() == pytest.approx(centre[2] - radius, abs=0.5)


def test_tilted_box_face_depth_matches_the_plane():
    # A thin slab tilted 30 degrees about x, its front face is the plane n.(X - p) = 0.
    angle = np.radians(30.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    centre = np.array([0.0, 0.0, 3000.0])
    half = np.array([5000.0, 5000.0, 10.0])
    r = rasterise(make_primitives(KIND_BOX, [centre], box_axes(rot[None], half[None]), 1), IDENTITY)
    normal = rot[:, 2]
    point = centre - normal * half[2]  # the face toward the camera
    x, y = _rays(K)
    d = np.stack([x, y, np.ones_like(x)], -1)
    expected = (normal @ point) / (d @ normal)
    assert np.isfinite(r.depth).all()
    np.testing.assert_allclose(r.depth, expected, rtol=0, atol=0.25)
    # The face's normal, seen from the camera, is -normal; every pixel reports it.
    np.testing.assert_allclose(r.normal, np.broadcast_to(-normal, r.normal.shape), atol=1e-5)


def test_nearer_primitive_wins_and_indices_are_offset():
    near = make_primitives(KIND_ELLIPSOID, [[0.0, 0.0, 1500.0]], np.eye(3)[None] * 200.0, 7)
    far = make_primitives(KIND_ELLIPSOID, [[100.0, 0.0, 2500.0]], np.eye(3)[None] * 600.0, 8)
    base = rasterise(far, IDENTITY)
    both = rasterise(near, IDENTITY, base=base, index_offset=10)
    assert both.index[60, 80] == 10  # the near sphere covers the image centre
    assert base.index[60, 80] == 0
    covered_by_far_only = (base.index == 0) & ~np.isfinite(rasterise(near, IDENTITY).depth)
    assert (both.index[covered_by_far_only] == 0).all()
    assert (both.depth <= base.depth).all()


def test_many_primitives_equal_the_per_primitive_minimum():
    rng = np.random.default_rng(3)
    n = 60
    centres = np.stack([rng.uniform(-800, 800, n), rng.uniform(-600, 600, n), rng.uniform(1500, 4000, n)], 1)
    q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    prims = Primitives(
        kind=np.where(np.arange(n) % 3 == 0, KIND_BOX, KIND_ELLIPSOID).astype(np.int8),
        centre=centres,
        axes=box_axes(q, rng.uniform(20, 200, (n, 3))),
        material=np.zeros(n, np.int32),
        owner=np.arange(n, dtype=np.int32),
        part=np.zeros(n, np.int16),
    )
    pose = SensorPose(K, look_at(np.array([0.0, 200.0, 0.0]), np.array([0.0, 0.0, 2500.0])), np.zeros(3))
    pose = SensorPose(K, pose.rotation, -pose.rotation @ np.array([0.0, 200.0, 0.0]))
    together = rasterise(prims, pose)
    dense = np.full((K.height, K.width), np.inf)
    for p in range(n):
        one = Primitives(
            prims.kind[p : p + 1],
            centres[p : p + 1],
            prims.axes[p : p + 1],
            prims.material[:1],
            prims.owner[:1],
            prims.part[:1],
        )
        dense = np.minimum(dense, rasterise(one, pose, normals=False).depth)
    np.testing.assert_array_equal(together.depth, dense.astype(np.float32))


def test_screen_box_contains_every_hit_pixel():
    rng = np.random.default_rng(5)
    pose = SensorPose(
        Intrinsics(
            width=160, height=120, fx=120, fy=121, cx=80, cy=61, distortion=(-0.15, 0.03, 0.0, 0.0, 0.0)
        ),
        np.eye(3),
        np.zeros(3),
    )
    for _ in range(20):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        prim = make_primitives(
            KIND_ELLIPSOID,
            [[rng.uniform(-900, 900), rng.uniform(-700, 700), rng.uniform(1200, 3000)]],
            box_axes(q[None], rng.uniform(30, 300, (1, 3))),
            0,
        )
        u0, u1, v0, v1 = _screen_boxes(prim.kind, prim.centre, prim.axes, pose)
        # Brute force: cast every pixel by widening the box to the whole image.
        ys, xs = np.nonzero(np.isfinite(_full_image_depth(prim, pose)))
        if len(xs):
            assert xs.min() >= u0[0] and xs.max() < u1[0] and ys.min() >= v0[0] and ys.max() < v1[0]


def _full_image_depth(prim: Primitives, pose: SensorPose) -> np.ndarray:
    """Depth of one ellipsoid by testing every pixel's ray (no bounding box)."""
    x, y = pose.rays[..., 0].astype(float), pose.rays[..., 1].astype(float)
    d = np.stack([x, y, np.ones_like(x)], -1)
    m = np.linalg.inv(prim.axes[0])
    c = prim.centre[0]
    q = d @ m.T
    o = m @ c
    a, b, cc = (q * q).sum(-1), q @ o, o @ o - 1
    disc = b * b - a * cc
    return np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)


def test_lens_model_matches_opencv_and_inverts():
    k = Intrinsics(
        width=320, height=240, fx=300, fy=302, cx=161, cy=118, distortion=(-0.12, 0.04, 0.001, -0.0005, 0.01)
    )
    pts = np.array([[100.0, -50.0, 1000.0], [-300.0, 200.0, 1500.0], [5.0, 5.0, 900.0]])
    ours = SensorPose(k, np.eye(3), np.zeros(3)).project_camera(pts)
    theirs, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k.matrix(), np.asarray(k.distortion))
    np.testing.assert_allclose(ours, theirs.reshape(-1, 2), atol=1e-6)
    xd, yd = distort_normalised(
        *undistort_normalised(np.array([0.4, -0.3]), np.array([0.2, 0.35]), k.distortion), k.distortion
    )
    np.testing.assert_allclose(xd, [0.4, -0.3], atol=1e-9)
    np.testing.assert_allclose(yd, [0.2, 0.35], atol=1e-9)


def _widened(by: int):
    """``_screen_boxes`` with every non-empty box grown by ``by`` pixels on each side."""
    tight = raster._screen_boxes

    def boxes(kind, centre_cam, axes_cam, pose, radii2=None):
        u0, u1, v0, v1 = tight(kind, centre_cam, axes_cam, pose, radii2)
        w, h = pose.size
        seen = (u1 > u0) & (v1 > v0)
        grow = np.where(seen, by, 0)
        return (
            np.maximum(u0 - grow, 0),
            np.minimum(u1 + grow, w),
            np.maximum(v0 - grow, 0),
            np.minimum(v1 + grow, h),
        )

    return boxes


@pytest.mark.parametrize("distortion", [(0.06, -0.04, 0.0, 0.0, 0.0), (-0.14, 0.05, 0.0, 0.0, 0.0)])
def test_screen_boxes_hold_every_float32_hit_of_small_far_primitives(monkeypatch, distortion):
    # Pens, eyes, phone screens 2-9 m away at 1080p: the float32 hit test reports hits a little
    # beyond the true outline of thin ellipsoids; the boxes must hold those too, or the tight
    # boxes would change what is rendered.
    rng = np.random.default_rng(8)
    k = Intrinsics(width=1920, height=1080, fx=960, fy=962, cx=955, cy=545, distortion=distortion)
    pose = SensorPose(k, np.eye(3), np.zeros(3))
    n = 80
    z = rng.uniform(2000.0, 9000.0, n)
    centres = np.stack([rng.uniform(-0.9, 0.9, n) * z, rng.uniform(-0.5, 0.5, n) * z, z], 1)
    q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    half = np.stack([rng.uniform(0.5, 8.0, n), rng.uniform(4.0, 12.0, n), rng.uniform(20.0, 90.0, n)], 1)
    prims = Primitives(
        kind=np.where(np.arange(n) % 4 == 0, KIND_BOX, KIND_ELLIPSOID).astype(np.int8),
        centre=centres,
        axes=box_axes(q, half),
        material=np.zeros(n, np.int32),
        owner=np.arange(n, dtype=np.int32),
        part=np.zeros(n, np.int16),
    )
    tight = rasterise(prims, pose)
    monkeypatch.setattr(raster, "_screen_boxes", _widened(6))
    wide = rasterise(prims, pose)
    assert np.isfinite(tight.depth).sum() > 500
    for field in ("depth", "index", "pixels", "normal", "view_cos"):
        np.testing.assert_array_equal(getattr(tight, field), getattr(wide, field), err_msg=field)


def test_a_classroom_renders_the_same_with_wider_boxes(monkeypatch):
    # Every sensor of a rendered classroom, moving primitives against the static room as the
    # scene casts them: casting more pixels around every box finds nothing more.
    from services.simulator.classroom import room_for
    from services.simulator.config import Conditions, SimConfig
    from services.simulator.scene import _static_raster
    from services.simulator.session import build_live_scene

    scene = build_live_scene(
        seed=3, students=20, config=SimConfig(), conditions=Conditions(), room=room_for(20)
    )
    frame = scene.render(7.0, np.random.default_rng(0), debug=True)
    rig = scene.rig
    for name, pose in (("colour", rig.colour), ("depth", rig.depth), ("thermal", rig.thermal)):
        _, base = _static_raster(scene.room, scene.room_seed, pose)
        dyn = frame.debug["dynamic"][name]
        offset = frame.debug["n_static"]
        with monkeypatch.context() as patch:
            patch.setattr(raster, "_screen_boxes", _widened(4))
            wide = rasterise(dyn, pose, base=base, index_offset=offset)
        tight = rasterise(dyn, pose, base=base, index_offset=offset)
        for field in ("depth", "index", "pixels", "normal", "view_cos"):
            np.testing.assert_array_equal(
                getattr(tight, field), getattr(wide, field), err_msg=f"{name} {field}"
            )


def test_intersection_slices_cover_the_candidates_in_runs_of_whole_primitives():
    rng = np.random.default_rng(2)
    for counts in (rng.integers(0, 900, 500), np.array([5, 70_000, 3, 0, 12]), np.array([7])):
        runs = raster._slices(counts)
        starts = np.concatenate([[0], np.cumsum(counts)])
        assert runs[0][0] == 0 and runs[0][2] == 0
        assert runs[-1][1] == len(counts) and runs[-1][3] == starts[-1]
        for (first, last, lo, hi), nxt in zip(runs, [*runs[1:], None], strict=True):
            assert (lo, hi) == (starts[first], starts[last])
            # A run stays near the target size unless one primitive alone is larger.
            assert hi - lo <= raster._SLICE_CANDIDATES + counts[first:last].max()
            if nxt is not None:
                assert nxt[0] == last and nxt[2] == hi
