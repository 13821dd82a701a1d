"""Depth restoration: each step against hand-computed values, and holes filled close to the truth."""

import cv2
import numpy as np
import pytest

from services.enhancement import baselines, depth, metrics, synthetic
from services.enhancement.params import EnhancementParams

P = EnhancementParams()


def test_out_of_range_depth_is_invalid() -> None:
    raw = np.array([[0, 100, 500, 12000, 3000]], np.uint16)
    assert depth.valid_depth(raw, P).tolist() == [[False, False, True, False, True]]


def test_bilateral_keeps_a_step_and_the_holes() -> None:
    rng = np.random.default_rng(0)
    step = np.where(np.arange(64)[None, :] < 32, 2000.0, 4000.0).repeat(32, axis=0)
    noisy = (step + rng.normal(0, 8.0, step.shape)).astype(np.float32)
    noisy[2, 2] = 0.0
    out = depth.bilateral_depth(noisy, P)
    assert out[2, 2] == 0.0  # a hole's neighbours are metres away: no weight
    assert abs(out[5:28, 5:28].mean() - 2000.0) < 3 and abs(out[5:28, 36:60].mean() - 4000.0) < 3
    assert out[5:28, 36:60].std() < 0.6 * noisy[5:28, 36:60].std()
    assert out[:, 31].max() < 2100 and out[:, 32].min() > 3900  # the edge stays a step


def test_closing_fills_a_pinhole_and_leaves_valid_depth() -> None:
    plane = np.full((9, 9), 3000.0, np.float32)
    plane[:, 5:] = 5000.0  # a far wall to the right
    plane[4, 4] = 0.0  # a hole beside the edge
    holes = plane == 0
    closed = depth.close_small_holes(plane, holes, 3)
    # 3×3 ellipse = cross. Dilation at the hole: max(3000, 3000, 3000, 5000) = 5000; at its left
    # neighbour (4, 3): 3000. Erosion at the hole: min over the cross of dilated values = 3000.
    assert closed[4, 4] == 3000.0
    np.testing.assert_array_equal(closed[~holes], plane[~holes])


def test_closing_leaves_holes_wider_than_its_kernel() -> None:
    plane = np.full((20, 20), 3000.0, np.float32)
    plane[5:15, 5:15] = 0.0
    closed = depth.close_small_holes(plane, plane == 0, 5)
    assert (closed[8:12, 8:12] == 0).all()


def test_region_filling_reproduces_a_constant_and_a_ramp() -> None:
    constant = np.full((40, 50), 2500.0, np.float32)
    holes = np.zeros_like(constant, bool)
    holes[10:30, 15:40] = True
    filled = depth.fill_regions(np.where(holes, 0, constant).astype(np.float32), holes)
    np.testing.assert_allclose(filled, constant, rtol=1e-5)
    ramp = np.tile(np.linspace(2000, 3000, 50, dtype=np.float32), (40, 1))
    filled = depth.fill_regions(np.where(holes, 0, ramp).astype(np.float32), holes)
    # Push-pull fills smoothly but not linearly: within 8 % of the ramp's span inside a
    # hole half as wide as the ramp, 3 % on average.
    error = np.abs(filled - ramp)[holes]
    assert error.max() < 80.0 and error.mean() < 30.0
    np.testing.assert_array_equal(filled[~holes], ramp[~holes])


def test_restoration_fills_holes_close_to_the_truth() -> None:
    calibration = synthetic.example_calibration()
    boards = synthetic.random_boards(np.random.default_rng(1))
    scene = synthetic.render_box_scene(calibration, np.zeros((64, 64, 3), np.uint8), boards)
    holed = synthetic.depth_holes(scene.depth_mm, np.random.default_rng(2))
    holes = holed == 0
    restored = depth.restore_depth(holed, P)
    assert restored.filled.sum() == holes.sum()  # every hole got a value
    mae, rmse = metrics.depth_hole_errors(restored.depth_mm, scene.depth_mm.astype(np.float32), holes)
    naive_mae, _ = metrics.depth_hole_errors(np.zeros_like(restored.depth_mm), scene.depth_mm, holes)
    median_mae, median_rmse = metrics.depth_hole_errors(baselines.median_depth(holed), scene.depth_mm, holes)
    # Shadow holes straddle metre-high steps between boards and wall, so the error is mostly there.
    assert mae < 0.08 * naive_mae
    assert mae < 0.5 * median_mae and rmse < median_rmse


def test_no_valid_pixel_gives_all_zero_and_nothing_filled() -> None:
    restored = depth.restore_depth(np.zeros((24, 32), np.uint16), P)
    assert not restored.depth_mm.any() and not restored.filled.any() and not restored.valid_in.any()


@pytest.mark.parametrize("value", [1, 65535])
def test_all_out_of_range_is_treated_as_no_depth(value: int) -> None:
    restored = depth.restore_depth(np.full((24, 32), value, np.uint16), P)
    assert not restored.depth_mm.any()


def _reference_push_pull(depth: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Push-pull with the push step applied at every level, the finest included."""
    weight = (~holes).astype(np.float32)
    levels = [(depth * weight, weight)]
    while levels[-1][1].min() <= 0.0 and min(levels[-1][1].shape) > 1:
        value, w = levels[-1]
        size = (max(1, (value.shape[1] + 1) // 2), max(1, (value.shape[0] + 1) // 2))
        area = [cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (value, w)]
        levels.append((area[0], area[1]))
    value, w = levels[-1]
    filled = value / np.maximum(w, 1e-12)
    for value, w in reversed(levels[:-1]):
        coarse = cv2.resize(filled, (value.shape[1], value.shape[0]), interpolation=cv2.INTER_LINEAR)
        trust = np.minimum(w, 1.0)
        filled = np.where(w > 0, value / np.maximum(w, 1e-12), 0.0) * trust + coarse * (1.0 - trust)
    return np.where(holes, filled, depth).astype(np.float32)


@pytest.mark.parametrize("shape", [(288, 320), (45, 81), (1, 9)])
def test_push_pull_finest_level_is_a_plain_selection(shape) -> None:
    """fill_regions skips the finest level's push arithmetic (weights 0 or 1 there): bit for bit the same."""
    rng = np.random.default_rng(shape[1])
    holes = cv2.dilate((rng.random(shape) < 0.02).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    holes[0, 0] = True
    depth_mm = np.where(holes, 0.0, rng.uniform(500, 6000, shape)).astype(np.float32)
    np.testing.assert_array_equal(depth.fill_regions(depth_mm, holes), _reference_push_pull(depth_mm, holes))
