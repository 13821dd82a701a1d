"""Section 3.2 RGB: the pieces of eqs. 1-2 against hand-computed values, defined outputs, and quality."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from services.enhancement import metrics, retinex, synthetic
from services.enhancement.params import EnhancementParams

P = EnhancementParams()


def test_illumination_prior_is_the_channel_maximum() -> None:
    bgr = np.array([[[10, 200, 30], [255, 0, 0]]], np.uint8)
    prior = retinex.prior_of_planes(retinex.colour_planes(bgr))
    np.testing.assert_allclose(prior, [[200 / 255, 1.0]], rtol=1e-6)


def test_noise_estimate_recovers_known_gaussian_noise() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:360, 0:640]
    ramp = 60 + 0.2 * xx + 0.1 * yy  # planar content, which Immerkær's mask cancels
    noisy = np.clip(np.rint(ramp + rng.normal(0, 6.0, ramp.shape)), 0, 255).astype(np.uint8)
    assert retinex.noise_sigma(noisy) == pytest.approx(6.0 / 255.0, rel=0.08)


def test_noise_estimate_of_a_clean_plane_is_the_floor() -> None:
    plane = np.full((50, 60), 77, np.uint8)
    assert retinex.noise_sigma(plane) == retinex.MIN_NOISE
    assert retinex.noise_sigma(np.zeros((2, 5), np.uint8)) == retinex.MIN_NOISE


def test_adaptive_weight_hand_computed() -> None:
    # ĝ = 1/(1 + 0.5²) = 0.8, T̂ = 0.25/(0.25 + 0.5²) = 0.5; ω = 0.3·0.8 + 0.7·0.5 = 0.59
    params = replace(P, lambda1=0.3, lambda2=0.7, gradient_scale=0.5, texture_scale=0.5)
    weight = retinex.adaptive_weight(np.array([1.0], np.float32), np.array([0.25], np.float32), params)
    assert weight[0] == pytest.approx(0.59, abs=1e-6)


def test_squared_gradient_of_a_ramp_is_its_slope_in_noise_units() -> None:
    slope, noise = 0.01, 0.002
    ramp = (np.arange(20, dtype=np.float32) * slope)[None, :].repeat(10, axis=0)
    g2 = retinex.squared_gradient(ramp, noise)
    assert g2[5, 5] == pytest.approx((slope / noise) ** 2, rel=1e-4)


def test_reconstruction_gain_hand_computed() -> None:
    assert retinex.reconstruction_gain(np.zeros((2, 2), np.float32), 0.5, P) == pytest.approx(1.9)
    assert retinex.reconstruction_gain(np.zeros((2, 2), np.float32), 0.01, P) == P.max_gain
    assert retinex.reconstruction_gain(np.zeros((2, 2), np.float32), 1.0, P) == 1.0  # never darken
    # γ = 0.5: A(0.25) = 0.95·(0.25/0.5)^0.5 = 0.67175, gain = A/L = 2.6870
    gamma = replace(P, illumination_gamma=0.5)
    gain = retinex.reconstruction_gain(np.array([[0.25]], np.float32), 0.5, gamma)
    assert gain[0, 0] == pytest.approx(0.95 * np.sqrt(0.5) / 0.25, rel=1e-5)


def test_white_point_is_the_percentile_of_the_strided_grid() -> None:
    light = np.zeros((8, 8), np.float32)
    light[::4, ::4] = [[0.1, 0.2], [0.3, 0.4]]
    expected = np.percentile([0.1, 0.2, 0.3, 0.4], P.white_percentile)
    assert retinex.white_point(light, P) == pytest.approx(expected)


def test_uniform_grey_frame_hand_computed() -> None:
    # L = V = 128/255 (a constant is its own guided filter), R̃ = 128/(128 + 1), gain = 0.95/L:
    # I_out = R̃·A(L) = 128/129 · 0.95 → 240.35 grey levels.
    out = retinex.enhance_low_light(np.full((36, 64, 3), 128, np.uint8), P)
    assert np.all(out == 240)


def test_all_black_frame_stays_black_and_saturated_stays_white() -> None:
    assert not retinex.enhance_low_light(np.zeros((36, 64, 3), np.uint8), P).any()
    assert np.all(retinex.enhance_low_light(np.full((36, 64, 3), 255, np.uint8), P) >= 253)


def test_weight_is_high_on_an_edge_and_low_in_flat_noise() -> None:
    rng = np.random.default_rng(1)
    frame = np.full((90, 160, 3), 20.0)
    frame[:, 80:] = 60.0
    noisy = np.clip(np.rint(frame + rng.normal(0, 3.0, frame.shape)), 0, 255).astype(np.uint8)
    result = retinex.multiscale_retinex(noisy, P)
    assert result.weight[:, 79:81].mean() > 0.9
    assert result.weight[20:70, 10:60].mean() < 0.35


def test_intermediates_satisfy_eq2_mixing() -> None:
    frame = synthetic.low_light(
        cv2.resize(
            np.ascontiguousarray(np.random.default_rng(2).integers(0, 255, (90, 160, 3), np.uint8)), (160, 90)
        ),
        np.random.default_rng(3),
    )
    r = retinex.multiscale_retinex(frame, P, keep_float=True)
    expected = r.weight * r.small + (1 - r.weight) * r.large  # L = ω·L_s + (1−ω)·L_l
    np.testing.assert_allclose(r.illumination, expected, atol=1e-5)
    assert r.output_float is not None
    np.testing.assert_allclose(r.output_float * 255, r.output, atol=0.51)


def test_enhancement_restores_low_light_photos(clean_photos) -> None:
    rng = np.random.default_rng(4)
    for clean in clean_photos[:3]:
        dark = synthetic.low_light(clean, rng, exposure=0.08, falloff=0.4)
        assert metrics.psnr(retinex.enhance_low_light(dark, P), clean) > metrics.psnr(dark, clean) + 10.0


def test_multiscale_weights_beat_one_fixed_scale(clean_photos) -> None:
    """Table 6's direction on synthetic low light: removing the multi-scale weights lowers PSNR and SSIM."""
    rng = np.random.default_rng(0)
    scores = {"proposed": [], "fixed": []}
    for clean in clean_photos:
        for exposure, falloff in ((0.05, 0.0), (0.12, 0.5)):
            dark = synthetic.low_light(clean, rng, exposure=exposure, falloff=falloff)
            for name, out in (
                ("proposed", retinex.enhance_low_light(dark, P)),
                ("fixed", retinex.fixed_scale_retinex(dark, P)),
            ):
                scores[name].append((metrics.psnr(out, clean), metrics.ssim(out, clean)))
    proposed, fixed = np.mean(scores["proposed"], axis=0), np.mean(scores["fixed"], axis=0)
    assert proposed[0] > fixed[0] and proposed[1] > fixed[1], (proposed, fixed)


def test_large_frames_are_filtered_at_the_processing_resolution(clean_photos) -> None:
    big = cv2.resize(clean_photos[0], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    dark = synthetic.low_light(big, np.random.default_rng(5), exposure=0.1)
    result = retinex.multiscale_retinex(dark, P)
    assert result.factor == 3 and result.weight.shape == (360, 640)
    small = retinex.enhance_low_light(cv2.resize(dark, (640, 360), interpolation=cv2.INTER_AREA), P)
    # The full-resolution output, averaged back down, is the 360-line result up to interpolation.
    down = cv2.resize(result.output, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(int) - small.astype(int)).mean() < 2.5


@pytest.mark.parametrize(
    "size, params",
    [((640, 360), P), ((640, 360), replace(P, illumination_gamma=0.6)), ((1920, 1080), P)],
)
def test_service_path_output_is_multiscale_retinex_output_bit_for_bit(clean_photos, size, params) -> None:
    """enhance_low_light skips the analysis-only intermediates; its output must not move by a grey level."""
    frame = cv2.resize(clean_photos[1], size, interpolation=cv2.INTER_LINEAR)
    dark = synthetic.low_light(frame, np.random.default_rng(6), exposure=0.08, falloff=0.4)
    np.testing.assert_array_equal(
        retinex.enhance_low_light(dark, params), retinex.multiscale_retinex(dark, params).output
    )


def test_output_is_step5_reflectance_times_adjusted_illumination() -> None:
    """The folded per-plane sums equal eq. 1's I_out = R̃·A(L), R̃ and A(L) written out in float64."""
    frame = synthetic.low_light(
        cv2.resize(np.random.default_rng(7).integers(0, 255, (45, 80, 3), np.uint8), (160, 90)),
        np.random.default_rng(8),
    )
    r = retinex.multiscale_retinex(frame, P, keep_float=True)
    image = frame.astype(np.float64) / 255.0
    prior = image.max(axis=2)

    def box(x, radius):
        k = 2 * radius + 1
        return cv2.blur(x, (k, k), borderType=cv2.BORDER_REFLECT_101)

    w = r.weight.astype(np.float64)[..., None]
    fine = box(image, P.small_radius) / (box(prior, P.small_radius) + retinex.DELTA)[..., None]
    coarse = box(image, P.chroma_radius) / (box(prior, P.chroma_radius) + retinex.DELTA)[..., None]
    reflectance = w * fine + (1 - w) * coarse
    np.testing.assert_allclose(r.reflectance, reflectance, atol=1e-5)
    gain = retinex.reconstruction_gain(r.illumination, r.white, P)
    expected = np.clip(reflectance * (gain * r.illumination.astype(np.float64))[..., None], 0.0, 1.0)
    assert r.output_float is not None
    np.testing.assert_allclose(r.output_float, expected, atol=2e-5)


def test_noise_estimate_is_the_direct_immerkaer_sum() -> None:
    """The separable int16 filter gives exactly the 3×3 mask's sum (integers, no rounding)."""
    channel = np.random.default_rng(9).integers(0, 256, (37, 53), np.uint8)
    response = cv2.filter2D(channel.astype(np.float64), -1, retinex.NOISE_KERNEL.astype(np.float64))
    total = np.abs(response[1:-1, 1:-1]).sum()
    expected = np.sqrt(np.pi / 2.0) / 6.0 * total / (35 * 51) / 255.0
    assert retinex.noise_sigma(channel) == pytest.approx(expected, rel=1e-12)
