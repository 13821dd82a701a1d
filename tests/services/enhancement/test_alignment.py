"""Registration to colour: a ray-cast scene, one-point reprojection, cached tables, bad calibration."""

import cv2
import numpy as np
import pytest
import skimage.data

from services.common.calibration import CameraCalibration, Extrinsics, Intrinsics, SensorCalibration
from services.common.errors import InvalidCalibration
from services.enhancement import alignment, synthetic
from services.enhancement.pipeline import Enhancer


def _boards_scene(calibration):
    texture = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    boards = synthetic.random_boards(np.random.default_rng(0))
    return synthetic.render_box_scene(calibration, texture, boards)


def test_one_depth_pixel_lands_where_opencv_projects_it() -> None:
    calibration = synthetic.example_calibration()
    tables = alignment.registration_tables(calibration, (640, 360))
    u, v, z = 200, 120, 3500.0
    depth = np.zeros((288, 320), np.float32)
    depth[v, u] = z
    grid, _ = alignment.splat_depth(depth, depth > 0, tables)
    # Independent reference: OpenCV's undistortPoints / projectPoints with the same calibration.
    d = calibration.depth.intrinsics
    ray = cv2.undistortPoints(np.array([[[u, v]]], np.float64), d.matrix(), np.array(d.distortion)).ravel()
    rotation, translation = calibration.depth.to_rgb.matrix()
    point = rotation @ (z * np.array([ray[0], ray[1], 1.0])) + translation
    g = tables.grid
    pixel, _ = cv2.projectPoints(point[None], np.zeros(3), np.zeros(3), g.matrix(), np.array(g.distortion))
    expected = np.rint(pixel.ravel()).astype(int)
    landed = np.argwhere(grid > 0)
    assert landed.tolist() == [[expected[1], expected[0]]]
    assert grid[expected[1], expected[0]] == pytest.approx(point[2], rel=1e-5)  # value: Z in the colour frame


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_registered_depth_matches_the_scene_seen_from_colour(size) -> None:
    calibration = synthetic.example_calibration(*size)
    scene = _boards_scene(calibration)
    tables = alignment.registration_tables(calibration, size)
    grid, _ = alignment.splat_depth(scene.depth_mm.astype(np.float32), scene.depth_mm > 0, tables)
    # A depth pixel covers ~1.2² grid cells here: the raw splat leaves gaps, which closing fills.
    assert 0.5 < (grid > 0)[tables.depth_field_of_view_grid].mean() < 0.9
    guide = np.zeros(size[::-1], np.float32)
    registered, invalid_in, invalid_out = Enhancer().register_depth(scene.depth_mm, calibration, size, guide)
    assert invalid_in == 0.0 and invalid_out < 0.002
    seen = registered > 0
    error = np.abs(registered[seen] - scene.colour_depth_mm[seen]) / scene.colour_depth_mm[seen]
    # Off only on the rims of the boards (nearest-cell splatting, a pixel or two).
    assert (error < 0.01).mean() > 0.97


def test_thermal_map_interpolation_error_is_negligible() -> None:
    calibration = synthetic.example_calibration()
    for depth_mm in (800.0, 2000.0, 4000.0, 9000.0):
        assert alignment.thermal_map_error(calibration, (640, 360), depth_mm) < 0.05


def test_thermal_maps_follow_parallax() -> None:
    # Thermal 60 mm to the colour camera's left: nearer surfaces shift further in the thermal image.
    calibration = synthetic.example_calibration()
    tables = alignment.registration_tables(calibration, (640, 360))
    near_x, _ = alignment.thermal_maps(np.full((360, 640), 1000.0, np.float32), tables)
    far_x, _ = alignment.thermal_maps(np.full((360, 640), 8000.0, np.float32), tables)
    fx = calibration.thermal.intrinsics.fx
    shift = float(np.median(near_x - far_x))
    assert shift == pytest.approx(fx * 60.0 * (1 / 1000.0 - 1 / 8000.0), rel=0.03)


def test_identity_rig_registers_to_a_resize() -> None:
    same = Intrinsics(width=160, height=90, fx=100.0, fy=100.0, cx=79.5, cy=44.5)
    calibration = CameraCalibration(
        rgb=same, depth=SensorCalibration(intrinsics=same), thermal=SensorCalibration(intrinsics=same)
    )
    tables = alignment.registration_tables(calibration, (160, 90))
    assert tables.splat_factor == 1
    depth = np.random.default_rng(0).uniform(1000, 5000, (90, 160)).astype(np.float32)
    grid, _ = alignment.splat_depth(depth, depth > 0, tables)
    np.testing.assert_allclose(grid, depth, rtol=1e-6)
    map_x, map_y = alignment.thermal_maps(depth, tables)
    yy, xx = np.mgrid[0:90, 0:160]
    np.testing.assert_allclose(map_x, xx, atol=1e-3)
    np.testing.assert_allclose(map_y, yy, atol=1e-3)


def test_tables_are_cached_per_camera_and_size() -> None:
    calibration = synthetic.example_calibration()
    assert alignment.registration_tables(calibration, (640, 360)) is alignment.registration_tables(
        calibration, (640, 360)
    )
    assert alignment.registration_tables(calibration, (320, 180)).analysis.width == 320


def test_analysis_size_of_another_aspect_is_refused() -> None:
    with pytest.raises(InvalidCalibration, match="aspect ratio"):
        alignment.registration_tables(synthetic.example_calibration(), (640, 480))


def test_depth_camera_looking_away_is_refused() -> None:
    base = synthetic.example_calibration()
    backwards = Extrinsics(rotation=((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)))
    calibration = base.model_copy(
        update={"depth": SensorCalibration(intrinsics=base.depth.intrinsics, to_rgb=backwards)}
    )
    with pytest.raises(InvalidCalibration, match="does not land in the colour image"):
        alignment.registration_tables(calibration, (640, 360))


def _reference_splat(depth, tables, carry):
    """The z-buffer written the plain way: one point per landing pixel, the nearest per cell by sorting."""
    z_rgb = depth * tables.depth_ray_z + np.float32(tables.depth_t_z)
    keep = (z_rgb > 1.0) & (depth > 0)
    t = np.float32(1.0 / tables.inverse_working_distance) / depth[keep]
    x0, y0 = tables.depth_grid0_x[keep], tables.depth_grid0_y[keep]
    u = np.floor(x0 + t * (tables.depth_grid1_x[keep] - x0) + 0.5).astype(np.int64)
    v = np.floor(y0 + t * (tables.depth_grid1_y[keep] - y0) + 0.5).astype(np.int64)
    gw, gh = tables.grid.width, tables.grid.height
    inside = (u >= 0) & (u < gw) & (v >= 0) & (v < gh)
    cells, z, flags = v[inside] * gw + u[inside], z_rgb[keep][inside], carry[keep][inside]
    grid, carried = np.zeros(gh * gw, np.float32), np.zeros(gh * gw, bool)
    order = np.lexsort((np.arange(cells.size), z, cells))  # by cell, then nearest, then raster order
    first = np.ones(order.size, bool)
    first[1:] = cells[order][1:] != cells[order][:-1]
    grid[cells[order][first]] = z[order][first]
    # Among points at the nearest Z of a cell, the last in raster order sets the flag.
    winners = z == grid[cells]
    carried[cells[winners]] = flags[winners]
    return grid.reshape(gh, gw), carried.reshape(gh, gw)


@pytest.mark.parametrize("size", [(640, 360), (320, 180)])
def test_splat_is_the_nearest_surface_per_cell_exactly(size) -> None:
    # At 320×180 several depth pixels land in most cells: the z-buffer decides every one of them.
    calibration = synthetic.example_calibration(*size)
    tables = alignment.registration_tables(calibration, size)
    depth = _boards_scene(calibration).depth_mm.astype(np.float32)
    depth[np.random.default_rng(1).random(depth.shape) < 0.1] = 0.0
    carry = np.random.default_rng(2).random(depth.shape) < 0.3
    grid, carried = alignment.splat_depth(depth, depth > 0, tables, carry=carry)
    expected_grid, expected_carried = _reference_splat(depth, tables, carry)
    np.testing.assert_array_equal(grid, expected_grid)
    np.testing.assert_array_equal(carried, expected_carried)


def test_thermal_maps_from_the_splat_grid_equal_maps_from_its_upsampling() -> None:
    calibration = synthetic.example_calibration(1920, 1080)
    tables = alignment.registration_tables(calibration, (1920, 1080))
    assert tables.splat_factor > 1
    grid = np.random.default_rng(3).uniform(500, 6000, (tables.grid.height, tables.grid.width))
    grid = np.where(np.random.default_rng(4).random(grid.shape) < 0.2, 0.0, grid).astype(np.float32)
    upsampled = alignment.resize_to(grid, (1920, 1080), nearest=True)
    for ours, theirs in zip(
        alignment.thermal_maps(grid, tables), alignment.thermal_maps(upsampled, tables), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
