"""Box means and guided filters against direct window sums (reflect-101 borders)."""

import numpy as np
import pytest

from services.enhancement.guided_filter import box_mean, guided_filter, window_sums


def direct_box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Window mean by explicit summation over a reflect-101 padded image (numpy 'reflect')."""
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image.astype(np.float64), pad, mode="reflect")
    h, w = image.shape[:2]
    out = np.zeros(image.shape, np.float64)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out += padded[dy : dy + h, dx : dx + w]
    return out / (2 * radius + 1) ** 2


def direct_guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s Algorithm 1, written out in float64."""
    mean_i = direct_box_mean(guide, radius)
    mean_p = direct_box_mean(source, radius)
    cov = direct_box_mean(guide * source, radius) - mean_i * mean_p
    var = direct_box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return direct_box_mean(a, radius) * guide + direct_box_mean(b, radius)


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_box_mean_matches_direct_sum(radius: int) -> None:
    image = np.random.default_rng(radius).random((23, 31)).astype(np.float32)
    np.testing.assert_allclose(box_mean(image, radius), direct_box_mean(image, radius), atol=1e-6)


def test_box_mean_of_a_hand_computed_corner() -> None:
    # Reflect-101 around the corner of [[0, 1, 2], [3, 4, 5], [6, 7, 8]]: the 3×3 window at (0, 0)
    # is [[4, 3, 4], [1, 0, 1], [4, 3, 4]], mean 24/9.
    image = np.arange(9, dtype=np.float32).reshape(3, 3)
    assert box_mean(image, 1)[0, 0] == pytest.approx(24 / 9, abs=1e-6)


def test_guided_filter_matches_direct_algorithm() -> None:
    rng = np.random.default_rng(1)
    guide = rng.random((40, 50)).astype(np.float32)
    source = (0.5 * guide + 0.2 * rng.random((40, 50))).astype(np.float32)
    ours = guided_filter(guide, source, 3, 0.01)
    np.testing.assert_allclose(ours, direct_guided_filter(guide, source, 3, 0.01), atol=2e-5)


def test_self_guided_filter_matches_direct_algorithm() -> None:
    image = np.random.default_rng(2).random((30, 30)).astype(np.float32)
    np.testing.assert_allclose(
        guided_filter(image, image, 2, 0.05), direct_guided_filter(image, image, 2, 0.05), atol=2e-5
    )


def test_colour_source_is_filtered_per_channel_with_the_grey_guide() -> None:
    rng = np.random.default_rng(3)
    guide = rng.random((20, 24)).astype(np.float32)
    colour = rng.random((20, 24, 3)).astype(np.float32)
    together = guided_filter(guide, colour, 2, 0.02)
    for c in range(3):
        alone = guided_filter(guide, np.ascontiguousarray(colour[..., c]), 2, 0.02)
        np.testing.assert_allclose(together[..., c], alone, atol=1e-6)


def test_edge_survives_and_flat_noise_is_smoothed() -> None:
    rng = np.random.default_rng(4)
    step = np.zeros((32, 64), np.float32)
    step[:, 32:] = 1.0
    noisy = (step + rng.normal(0, 0.02, step.shape)).astype(np.float32)
    out = guided_filter(noisy, noisy, 4, 0.01)
    assert out[:, 36:].mean() - out[:, :28].mean() > 0.95  # the step keeps its height
    assert out[:, 40:60].std() < 0.5 * noisy[:, 40:60].std()  # noise in the flat part is reduced


@pytest.mark.parametrize("radius", [1, 3])
def test_window_sums_are_exact_integer_sums(radius: int) -> None:
    image = np.random.default_rng(6 + radius).integers(0, 256, (19, 27), np.uint8)
    expected = direct_box_mean(image, radius) * (2 * radius + 1) ** 2
    np.testing.assert_array_equal(window_sums(image, radius), np.rint(expected))
