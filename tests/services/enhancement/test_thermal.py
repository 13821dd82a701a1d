"""Thermal: temperature window, CLAHE view, pseudo-colour, and NaN rejected."""

import cv2
import numpy as np
import pytest

from services.common.errors import CorruptImage
from services.enhancement import metrics, synthetic, thermal
from services.enhancement.params import EnhancementParams

P = EnhancementParams()


def test_window_is_the_percentile_range() -> None:
    values = np.linspace(10.0, 40.0, 200 * 200, dtype=np.float32).reshape(200, 200)
    low, high, median = thermal.temperature_window(values, P)
    sample = values[::2, ::2]
    assert (low, high) == pytest.approx(tuple(np.percentile(sample, [1, 99])), abs=1e-4)
    assert median == pytest.approx(25.0, abs=0.1)


def test_narrow_window_is_widened_to_the_minimum_span() -> None:
    flat = np.full((40, 40), 22.0, np.float32)
    low, high, _ = thermal.temperature_window(flat, P)
    assert (low, high) == pytest.approx((22.0 - P.thermal_min_span_c / 2, 22.0 + P.thermal_min_span_c / 2))


def test_display_mapping_hand_computed() -> None:
    temps = np.array([[15.0, 20.0, 25.0, 30.0, 35.0]], np.float32)
    assert thermal.to_display(temps, 20.0, 30.0).tolist() == [[0, 0, 128, 255, 255]]


def test_clahe_raises_the_contrast_of_a_low_contrast_frame() -> None:
    calibration = synthetic.example_calibration()
    boards = synthetic.random_boards(np.random.default_rng(0))
    scene = synthetic.render_box_scene(calibration, np.full((64, 64, 3), 128, np.uint8), boards)
    flat = synthetic.low_thermal_contrast(scene.thermal_c, np.random.default_rng(1))
    equalised, _ = thermal.equalise_thermal(flat, P)
    assert equalised.dtype == np.uint8 and equalised.shape == flat.shape
    assert metrics.local_contrast(equalised) > 1.5 * metrics.local_contrast(thermal.linear_stretch(flat))


def test_pseudo_colour_is_the_fixed_colormap() -> None:
    ramp = np.arange(256, dtype=np.uint8)[None, :]
    colour = thermal.pseudo_colour(ramp)
    assert colour.shape == (1, 256, 3)
    np.testing.assert_array_equal(colour, cv2.applyColorMap(ramp, thermal.PSEUDO_COLOUR_MAP))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_temperatures_are_corrupt(bad: float) -> None:
    frame = np.full((10, 10), 22.0, np.float32)
    frame[3, 4] = bad
    with pytest.raises(CorruptImage, match="1 NaN or infinite"):
        thermal.check_thermal(frame)


def test_wrong_thermal_dtype_is_corrupt() -> None:
    with pytest.raises(CorruptImage, match="float32"):
        thermal.check_thermal(np.zeros((10, 10), np.uint16))
