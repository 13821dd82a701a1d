"""Student crops: geometry both ways, channel normalisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from models.data.crops import (
    DEPTH,
    DEPTH_SCALE_MM,
    THERMAL,
    THERMAL_EQUALISED,
    crop_geometry,
    extract_student_crops,
    normalise_keypoints,
    reference_depth,
    seat_squares,
)
from services.common.errors import BadInput, WrongResolution


def ramp_frame(h: int = 120, w: int = 200):
    """Colour = x coordinate (blue), y coordinate (green); linear, so bilinear resampling is exact."""
    ys, xs = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = xs.astype(np.uint8)
    rgb[..., 1] = ys.astype(np.uint8)
    depth = np.full((h, w), 2000, np.uint16)
    thermal = np.full((h, w), 33.0, np.float32)
    equalised = np.full((h, w), 51, np.uint8)
    return rgb, depth, thermal, equalised


def test_seat_square_grows_the_short_side_around_the_centre():
    origin, side = seat_squares(np.array([[10.0, 20.0, 50.0, 40.0]]))
    # w = 40, h = 20 -> square of 40 centred at (30, 30)
    np.testing.assert_allclose(side, [40.0])
    np.testing.assert_allclose(origin, [[10.0, 10.0]])


def test_geometry_round_trip_and_hand_values():
    geometry = crop_geometry(np.array([[10.0, 20.0, 50.0, 40.0]]), crop_size=80)
    crop_points = np.array([[[0.0, 0.0, 0.9], [80.0, 40.0, 0.5]]])
    image = geometry.crop_to_image(crop_points)
    # scale = 40 / 80 = 0.5 analysis px per crop px, square edges from (10, 10); OpenCV points
    # are half a pixel left of / above the edge coordinate
    np.testing.assert_allclose(image, [[[9.5, 9.5, 0.9], [49.5, 29.5, 0.5]]])
    np.testing.assert_allclose(geometry.image_to_crop(image), crop_points)


def test_crop_samples_the_right_pixels():
    frame = ramp_frame()
    box = np.array([[40.0, 30.0, 88.0, 78.0]])  # 48 px square
    same = extract_student_crops([frame], [box], crop_size=48).tensor.numpy()[0]
    u = np.arange(48)
    # scale 1: crop pixel u is analysis pixel 40 + u exactly, and its centre maps onto that pixel
    np.testing.assert_allclose(same[0, 5, :] * 255.0, 40 + u, atol=1e-4)
    np.testing.assert_allclose(same[1, :, 7] * 255.0, 30 + u, atol=1e-4)
    centres = np.stack([u + 0.5, np.full(48, 7.5)], -1)[None]
    np.testing.assert_allclose(crop_geometry(box, 48).crop_to_image(centres)[0, :, 0], 40 + u)
    crops = extract_student_crops([frame], [box], crop_size=24)
    t = crops.tensor.numpy()[0]
    # scale 2: crop pixel u covers analysis [40 + 2u, 42 + 2u), centre at OpenCV index 40.5 + 2u
    # (uint8 output rounds the half)
    u = np.arange(24)
    np.testing.assert_allclose(t[0, 5, :] * 255.0, 40.5 + 2 * u, atol=0.51)
    np.testing.assert_allclose(t[1, :, 7] * 255.0, 30.5 + 2 * u, atol=0.51)
    # uniform depth equals its own reference -> relative depth 0; reference recorded
    assert crops.depth_reference_mm[0] == 2000.0
    np.testing.assert_allclose(t[DEPTH], 0.0)
    np.testing.assert_allclose(t[THERMAL], (33.0 - 30.0) / 10.0, rtol=1e-6)
    np.testing.assert_allclose(t[THERMAL_EQUALISED], 51 / 255.0, rtol=1e-6)


def test_relative_depth_and_invalid_pixels():
    rgb, depth, thermal, eq = ramp_frame()
    depth[:, :] = 3000
    depth[:, 100:] = 2500  # right half 50 cm nearer
    depth[0:10, :] = 0  # invalid band at the top
    crops = extract_student_crops(
        [(rgb, depth, thermal, eq)], [np.array([[60.0, 0.0, 140.0, 80.0]])], crop_size=16
    )
    t = crops.tensor.numpy()[0, DEPTH]
    ref = crops.depth_reference_mm[0]
    assert 2500.0 <= ref <= 3000.0  # median of the valid centre
    assert t[0, 0] == 0.0  # invalid stays 0
    left, right = t[8, 2], t[8, 13]
    np.testing.assert_allclose(left - right, 500.0 / DEPTH_SCALE_MM)


def test_frames_and_seats_are_batched_frame_major():
    f = ramp_frame()
    crops = extract_student_crops(
        [f, f], [np.array([[0, 0, 20, 20], [20, 0, 40, 20]]), np.array([[5, 5, 25, 25]])], 8
    )
    assert crops.tensor.shape == (3, 6, 8, 8)
    assert crops.frame_index.tolist() == [0, 0, 1]


def test_normalise_keypoints_matches_crop_pixels_over_crop_size():
    box = np.array([10.0, 20.0, 50.0, 40.0])
    geometry = crop_geometry(box[None], crop_size=64)
    crop_points = np.array([[[16.0, 32.0, 1.0], [48.0, 8.0, 0.2]]])
    image = geometry.crop_to_image(crop_points)
    normalised = normalise_keypoints(image[0], box)
    np.testing.assert_allclose(normalised[:, :2], crop_points[0, :, :2] / 64.0, rtol=1e-6)
    np.testing.assert_allclose(normalised[:, 2], [1.0, 0.2])


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        (np.array([[10, 10, 5, 20]]), "x1 > x0"),
        (np.array([[0, 0, np.nan, 4]]), "NaN"),
        (np.zeros((2, 3)), "shape"),
    ],
)
def test_bad_boxes(boxes, message):
    with pytest.raises(BadInput, match=message):
        extract_student_crops([ramp_frame()], [boxes])


def test_bad_frames():
    rgb, depth, thermal, eq = ramp_frame()
    with pytest.raises(WrongResolution):
        extract_student_crops([(rgb, depth[:-1], thermal, eq)], [np.array([[0, 0, 10, 10]])])
    with pytest.raises(BadInput, match="float32"):
        extract_student_crops([(rgb, depth, thermal.astype(np.float64), eq)], [np.array([[0, 0, 10, 10]])])
    thermal[5, 5] = np.nan
    with pytest.raises(BadInput, match="NaN"):
        extract_student_crops([(rgb, depth, thermal, eq)], [np.array([[0, 0, 10, 10]])])


def test_reference_depth_is_the_median_of_valid_depth_in_the_centre_else_the_crop():
    depth = np.zeros((4, 8, 8), np.uint16)
    depth[0, 2:6, 2:6] = 1000
    depth[0, 2, 2:5] = (900, 1300, 1200)  # centre: 13 x 1000, 900, 1200, 1300 -> even count, 1000
    depth[1, 3, 3], depth[1, 4, 4], depth[1, 0, 0] = 1000, 1101, 5000  # two in the centre: 1050.5
    depth[2, 0, :3] = (700, 800, 900)  # none in the centre: the whole crop's, 800
    # crop 3: no valid depth at all -> 0
    np.testing.assert_array_equal(reference_depth(depth), np.array([1000.0, 1050.5, 800.0, 0.0], np.float32))
    # what np.median says, crop by crop
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 4000, (16, 12, 12)).astype(np.uint16)
    noisy[rng.random(noisy.shape) < 0.6] = 0
    expected = [
        np.median(c[3:9, 3:9][c[3:9, 3:9] > 0]) if (c[3:9, 3:9] > 0).any() else np.median(c[c > 0])
        for c in noisy
    ]
    np.testing.assert_array_equal(reference_depth(noisy), np.array(expected, np.float32))
