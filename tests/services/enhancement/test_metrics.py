"""Metrics against hand-computed values."""

import cv2
import numpy as np
import pytest

from services.enhancement import metrics


def test_psnr_of_a_known_mse() -> None:
    reference = np.full((10, 10), 100, np.uint8)
    result = reference.copy()
    result[0, :] = 110  # MSE = 10·100/100 = 10
    assert metrics.psnr(result, reference) == pytest.approx(10 * np.log10(255**2 / 10), abs=1e-9)


def test_ssim_of_identical_images_is_one_and_drops_with_noise() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.dstack([(2 * xx + yy).astype(np.uint8)] * 3)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(noisy, image) < 0.9


def test_epi_is_one_for_the_reference_minus_one_for_inverted_edges_and_lower_when_blurred() -> None:
    image = np.random.default_rng(2).integers(0, 255, (48, 48), np.uint8)
    assert metrics.edge_preservation_index(image, image) == pytest.approx(1.0)
    assert metrics.edge_preservation_index(255 - image, image) == pytest.approx(-1.0)
    assert metrics.edge_preservation_index(cv2.GaussianBlur(image, (5, 5), 1.5), image) < 0.6
    # Brightness and contrast changes keep the edges: EPI is a correlation.
    scaled = np.clip(image.astype(int) // 2 + 40, 0, 255).astype(np.uint8)
    assert metrics.edge_preservation_index(scaled, image) > 0.95


def test_depth_errors_on_holes_hand_computed() -> None:
    reference = np.array([[1000.0, 2000.0, 3000.0, 0.0]])
    restored = np.array([[1000.0, 2100.0, 2700.0, 500.0]])
    holes = np.array([[False, True, True, True]])  # the last has no ground truth and does not count
    mae, rmse = metrics.depth_hole_errors(restored, reference, holes)
    assert mae == pytest.approx(200.0) and rmse == pytest.approx(np.sqrt((100**2 + 300**2) / 2))
    assert np.isnan(metrics.depth_hole_errors(restored, reference, np.zeros_like(holes))[0])


def test_rms_and_local_contrast_hand_computed() -> None:
    checker = np.zeros((8, 8), np.uint8)
    checker[::2, ::2] = checker[1::2, 1::2] = 255
    assert metrics.rms_contrast(checker) == pytest.approx(0.5)
    assert metrics.rms_contrast(np.full((8, 8), 77, np.uint8)) == 0.0
    assert metrics.local_contrast(np.full((8, 8), 77, np.uint8)) == pytest.approx(0.0, abs=1e-6)
    assert metrics.local_contrast(checker, radius=1) == pytest.approx(0.5, abs=0.06)


def test_mutual_information_hand_computed() -> None:
    a = np.array([[0, 0, 1, 1]] * 4, np.uint8)
    # Identical two-level images: MI = H(A) = 1 bit; normalised 1.
    assert metrics.mutual_information(a, a, bins=2) == pytest.approx(1.0)
    assert metrics.normalised_mutual_information(a, a, bins=2) == pytest.approx(1.0)
    # B independent of A (each A level meets both B levels equally often): MI = 0.
    b = np.array([[0, 1, 0, 1]] * 4, np.uint8)
    assert metrics.mutual_information(a, b, bins=2) == pytest.approx(0.0, abs=1e-12)
    # A relabelled (255 − A) carries the same information.
    assert metrics.mutual_information(255 - a, a, bins=2) == pytest.approx(1.0)


def test_mutual_information_respects_the_mask_and_rejects_colour() -> None:
    a = np.array([[0, 0, 1, 1]], np.uint8)
    b = np.array([[0, 1, 0, 1]], np.uint8)
    mask = np.array([[True, False, False, True]])
    assert metrics.mutual_information(a, b, bins=2, mask=mask) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="single-channel"):
        metrics.mutual_information(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
