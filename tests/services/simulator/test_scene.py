"""Ground truth of rendered frames: keypoints on the body in every modality (through the written
calibration), depth against scene geometry, physical temperatures, reproducibility."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from services.simulator.classroom import ROOMS, M
from services.simulator.config import Conditions, SimConfig
from services.simulator.rig import DEPTH_RANGE_MM
from services.simulator.sensors import depth_noise_sigma_mm
from services.simulator.session import build_live_scene

SEED = 11


def _scene(conditions: Conditions = Conditions(), seed: int = SEED):
    scene = build_live_scene(
        seed=seed, students=12, config=SimConfig(), conditions=conditions, room=ROOMS["small"]
    )
    # Capture lags off: every sensor sees the same instant, so geometry can be compared across them.
    scene.rig = dataclasses.replace(scene.rig, depth_lag_us=0, thermal_lag_us=0)
    return scene


@pytest.fixture(scope="module")
def rendered():
    scene = _scene()
    frames = [
        scene.render(t, np.random.default_rng([SEED, k]), references=True, debug=True)
        for k, t in enumerate((30.0, 33.5, 37.0))
    ]
    return scene, frames


def test_frames_are_stamped_by_the_rig(rendered):
    """Colour at the session time by default, depth and thermal on their own clocks (the lags are off)."""
    scene, frames = rendered
    rig = scene.rig
    for t, frame in zip((30.0, 33.5, 37.0), frames, strict=True):
        assert frame.rgb_ts_us == round(t * 1e6) and frame.sequence == 0
        assert frame.depth_ts_us == frame.rgb_ts_us + rig.depth_clock_offset_us
        assert frame.thermal_ts_us == frame.rgb_ts_us + rig.thermal_clock_offset_us
    assert rig.timestamps_us(1_000) == (
        1_000,
        1_000 + rig.depth_clock_offset_us,
        1_000 + rig.thermal_clock_offset_us,
    )


def _owners(frame, sensor: str) -> np.ndarray:
    ras = frame.debug["rasters"][sensor]
    dyn = frame.debug["dynamic"][sensor]
    idx = ras.index - frame.debug["n_static"]
    owner = np.full(idx.shape, -1)
    body = (idx >= 0) & (dyn.part[np.maximum(idx, 0)] < 100)
    owner[body] = dyn.owner[idx[body]]
    return owner


def _to_sensor(points_rgb: np.ndarray, sensor) -> tuple[np.ndarray, np.ndarray]:
    """Colour-frame points (mm) -> pixels and z of a depth/thermal sensor, via the written calibration."""
    r, t = sensor.to_rgb.matrix()
    local = (points_rgb - t) @ r  # X_s = R^T (X_rgb - t)
    k = sensor.intrinsics
    pix, _ = cv2.projectPoints(local, np.zeros(3), np.zeros(3), k.matrix(), np.asarray(k.distortion))
    return pix.reshape(-1, 2), local[:, 2]


def _back_project(uv: np.ndarray, depth_mm: np.ndarray, intrinsics) -> np.ndarray:
    norm = cv2.undistortPoints(
        uv.reshape(-1, 1, 2).astype(np.float64), intrinsics.matrix(), np.asarray(intrinsics.distortion)
    )
    norm = norm.reshape(-1, 2)
    return np.column_stack([norm * depth_mm[:, None], depth_mm])


def _near(owner: np.ndarray, pix: np.ndarray, who: np.ndarray) -> np.ndarray:
    """Whether the 3x3 neighbourhood of each pixel contains the student (one pixel of slack for rounding)."""
    h, w = owner.shape
    hits = np.zeros(len(pix), bool)
    cols, rows = np.rint(pix[:, 0]).astype(int), np.rint(pix[:, 1]).astype(int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            c, r = np.clip(cols + dx, 0, w - 1), np.clip(rows + dy, 0, h - 1)
            hits |= owner[r, c] == who
    return hits


def test_visible_keypoints_land_on_the_student_in_all_three_modalities(rendered):
    scene, frames = rendered
    calib = scene.rig.calibration
    index = {st.profile.student_id: i for i, st in enumerate(scene.students)}
    rates = {"rgb": [], "depth": [], "thermal": [], "depth_value": []}
    for frame in frames:
        owner_rgb = _owners(frame, "colour")
        owner_d = _owners(frame, "depth")
        owner_t = _owners(frame, "thermal")
        uv, who = [], []
        for st in frame.annotations["students"]:
            for x, y, v in st["keypoints"]:
                if v == 2:
                    uv.append((x, y))
                    who.append(index[st["student_id"]])
        uv = np.asarray(uv)
        who = np.asarray(who)
        rates["rgb"].append(_near(owner_rgb, uv, who).mean())
        cols, rows = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        z = frame.reference_depth_mm[rows, cols].astype(float)
        points = _back_project(uv, z, calib.rgb)
        pix_d, z_d = _to_sensor(points, calib.depth)
        pix_t, _ = _to_sensor(points, calib.thermal)
        inside_d = (pix_d[:, 0] >= 0) & (pix_d[:, 0] < 320) & (pix_d[:, 1] >= 0) & (pix_d[:, 1] < 288)
        inside_t = (pix_t[:, 0] >= 0) & (pix_t[:, 0] < 320) & (pix_t[:, 1] >= 0) & (pix_t[:, 1] < 240)
        rates["depth"].append(_near(owner_d, pix_d[inside_d], who[inside_d]).mean())
        rates["thermal"].append(_near(owner_t, pix_t[inside_t], who[inside_t]).mean())
        # Where the sensor measured, it measured the keypoint's surface (within noise and a limb's curvature).
        cd, rd = np.rint(pix_d[inside_d]).astype(int).T
        raw = frame.depth_mm[rd, cd].astype(float)
        ok = raw > 0
        err = np.abs(raw[ok] - z_d[inside_d][ok])
        rates["depth_value"].append((err < 4 * depth_noise_sigma_mm(z_d[inside_d][ok]) + 40.0).mean())
    assert min(rates["rgb"]) >= 0.97, rates
    assert min(rates["depth"]) >= 0.93, rates
    assert min(rates["thermal"]) >= 0.93, rates
    assert min(rates["depth_value"]) >= 0.9, rates


def test_depth_matches_scene_geometry_on_desk_tops(rendered):
    scene, frames = rendered
    calib = scene.rig.calibration
    colour = scene.rig.colour
    # The depth camera's world pose, from the colour camera and the written calibration only.
    r_dc, t_dc = calib.depth.to_rgb.matrix()
    rot = r_dc.T @ colour.rotation
    trans = r_dc.T @ (colour.translation - t_dc)
    centre = -rot.T @ trans
    k = calib.depth.intrinsics
    jj, ii = np.meshgrid(np.arange(k.width, dtype=float), np.arange(k.height, dtype=float))
    norm = cv2.undistortPoints(
        np.stack([jj, ii], -1).reshape(-1, 1, 2), k.matrix(), np.asarray(k.distortion)
    ).reshape(k.height, k.width, 2)
    rays_world = np.concatenate([norm, np.ones((k.height, k.width, 1))], -1) @ rot  # (R^T d) per pixel
    # Intersection with the desk-top plane y = 740 mm: s = (740 - c_y) / d_y; camera z = s.
    s = (740.0 - centre[1]) / rays_world[..., 1]
    frame = frames[0]
    ras = frame.debug["rasters"]["depth"]
    prims_material = np.concatenate([_static_materials(scene), frame.debug["dynamic"]["depth"].material])
    desk = (prims_material[np.maximum(ras.index, 0)] == M["desk_top"]) & (np.abs(ras.depth - s) < 3.0)
    valid = desk & (frame.depth_mm > 0)
    assert valid.sum() > 500
    residual = frame.depth_mm[valid].astype(float) - s[valid]
    sigma = depth_noise_sigma_mm(s[valid])
    assert np.abs(residual).max() < 6 * sigma.max() + 1.0
    assert 0.8 < np.std(residual / sigma) < 1.2  # the documented noise model, no bias beyond it
    assert abs(np.mean(residual)) < 0.2 * sigma.mean() + 0.5


def _static_materials(scene) -> np.ndarray:
    from services.simulator.scene import _static_scene

    prims, _ = _static_scene(scene.room, scene.room_seed)
    return prims.material


def test_depth_range_limits_and_invalid_pixels(rendered):
    _, frames = rendered
    for frame in frames:
        d = frame.depth_mm
        valid = d[d > 0]
        assert valid.min() >= DEPTH_RANGE_MM[0] - 60 and valid.max() <= DEPTH_RANGE_MM[1] + 60
        assert 0.2 < (d > 0).mean() < 0.95  # edges, shadows, range and the NFOV corners are missing
        assert (d[0, 0], d[0, -1], d[-1, 0], d[-1, -1]) == (0, 0, 0, 0)  # outside the NFOV field


def test_temperatures_are_physical(rendered):
    scene, frames = rendered
    room = scene.climate.room_c
    for frame in frames:
        t = frame.thermal_c
        assert t.dtype == np.float32
        assert t.min() > -10.0 and t.max() < 80.0
        ras = frame.debug["rasters"]["thermal"]
        dyn = frame.debug["dynamic"]["thermal"]
        idx = ras.index - frame.debug["n_static"]
        mats = dyn.material[np.maximum(idx, 0)]
        skin = (idx >= 0) & scene.materials.skin[mats] & (dyn.part[np.maximum(idx, 0)] < 100)
        # Interior skin pixels (away from silhouettes, where optics blur mixes in the room).
        interior = cv2.erode(skin.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert interior.sum() > 50
        assert np.percentile(t[interior], 5) > 28.0 and np.percentile(t[interior], 95) < 37.5
        background = cv2.erode((idx < 0).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        assert abs(np.median(t[background]) - room) < 2.0
        for st in frame.annotations["students"]:
            assert 33.0 <= st["facial_temperature_c"] <= 36.0
        ref = frame.reference_thermal_c
        assert ref.min() > 0.0 and ref.max() < 70.0


def test_same_seed_same_bytes_and_another_seed_differs():
    a = _scene().render(12.0, np.random.default_rng(1), references=True)
    b = _scene().render(12.0, np.random.default_rng(1), references=True)
    c = _scene(seed=SEED + 1).render(12.0, np.random.default_rng(1), references=True)
    for name in (
        "rgb",
        "depth_mm",
        "thermal_c",
        "reference_rgb",
        "reference_depth_mm",
        "reference_thermal_c",
    ):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.annotations == b.annotations
    assert a.rgb.tobytes() != c.rgb.tobytes()


def test_annotations_are_well_formed(rendered):
    _, frames = rendered
    for frame in frames:
        students = frame.annotations["students"]
        assert len(students) == 12
        for st in students:
            kp = np.asarray(st["keypoints"])
            assert kp.shape == (17, 3) and set(np.unique(kp[:, 2])) <= {0, 1, 2}
            visible = kp[kp[:, 2] == 2, :2]
            if st["box"] is not None and len(visible):
                x0, y0, x1, y1 = st["box"]
                inside = (
                    (visible[:, 0] >= x0 - 2)
                    & (visible[:, 0] <= x1 + 2)
                    & (visible[:, 1] >= y0 - 2)
                    & (visible[:, 1] <= y1 + 2)
                )
                assert inside.mean() >= 0.9


def test_conditions_change_what_the_sensors_see():
    normal = _scene().render(20.0, np.random.default_rng(2))
    dark = _scene(Conditions(low_light=True)).render(20.0, np.random.default_rng(2))
    holes = _scene(Conditions(depth_holes=True)).render(20.0, np.random.default_rng(2))
    assert normal.annotations["image_quality"]["rgb"] == "good"
    assert dark.annotations["image_quality"]["rgb"] == "poor"
    assert dark.rgb.mean() < 0.75 * normal.rgb.mean()
    assert (holes.depth_mm > 0).mean() < (normal.depth_mm > 0).mean() - 0.02
    lagged = build_live_scene(
        seed=SEED,
        students=12,
        config=SimConfig(),
        conditions=Conditions(temporal_offset=True),
        room=ROOMS["small"],
    )
    assert lagged.rig.thermal_lag_us >= 60_000 and lagged.rig.depth_lag_us >= 10_000


def test_instants_posed_in_one_batch_equal_instants_posed_alone():
    # A frame set poses the students at each sensor's capture time in one batch; every value
    # must be what posing that instant alone gives (same bytes), props held or not.
    batch = _scene(Conditions(student_movement=True))
    alone = _scene(Conditions(student_movement=True))
    fields = ("kind", "centre", "axes", "material", "owner", "part")
    for t in (3.0, 41.7, 88.2):
        times = [t, t + 0.021, t + 0.137]
        together = batch._dynamic(times)
        for instant, (prims, sk, poses, labels, moving) in zip(times, together, strict=True):
            prims_1, sk_1, poses_1, labels_1, moving_1 = alone._dynamic([instant])[0]
            for name in fields:
                assert getattr(prims, name).tobytes() == getattr(prims_1, name).tobytes(), name
            assert sk.keypoints.tobytes() == sk_1.keypoints.tobytes()
            assert poses.tobytes() == poses_1.tobytes()
            assert (labels, moving) == (labels_1, moving_1)
            assert set(prims.owner[prims.owner >= 0].tolist()) <= set(range(len(batch.students)))


def test_props_follow_the_hands_and_rest_on_the_desk():
    from services.simulator.body import CUP_HAND, PEN_HAND, PHONE_HAND
    from services.simulator.classroom import PART_CUP, PART_PEN, PART_PHONE
    from services.simulator.props import DESK_Y

    scene = _scene()
    seen = {"held pen": 0, "resting cup": 0}
    for t in np.arange(0.0, 120.0, 1.3):
        prims, sk, poses, _, _ = scene._dynamic([float(t)])[0]
        for s, st in enumerate(scene.students):
            mine = prims.owner == s
            pen = np.flatnonzero(mine & (prims.part == PART_PEN))
            hand = int(poses[s, PEN_HAND] + 0.5)
            if len(pen) and hand in (1, 2):
                # A held pen rides 15 mm below the centre of the writing hand.
                expected = sk.hands[s, hand - 1] - st.seat.basis[:, 1] * 15.0
                np.testing.assert_allclose(prims.centre[pen[0]], expected, atol=1e-9)
                seen["held pen"] += 1
            cup = np.flatnonzero(mine & (prims.part == PART_CUP))
            if len(cup) and int(poses[s, CUP_HAND] + 0.5) == 0:
                # A cup on the desk stands on the desk top: its lowest point is at desk height.
                bottom = prims.centre[cup[0], 1] - np.abs(prims.axes[cup[0], 1]).sum()
                assert bottom == pytest.approx(st.seat.hip[1] + DESK_Y, abs=1e-6)
                seen["resting cup"] += 1
            phone = np.flatnonzero(mine & (prims.part == PART_PHONE))
            if len(phone):
                assert len(phone) == 2  # body and screen, in that order
                assert prims.material[phone[0]] == M["phone_body"]
                if int(poses[s, PHONE_HAND] + 0.5) == 0:
                    np.testing.assert_allclose(prims.axes[phone[0]][:, 1], st.seat.basis[:, 1] * 4.0)
    assert min(seen.values()) > 0, seen
