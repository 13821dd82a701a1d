"""Depth restoration: each step against hand-computed values, and holes filled close to the truth."""

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
