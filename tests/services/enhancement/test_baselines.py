"""Baselines: each is what its reference defines, on hand-made inputs."""

import numpy as np

from services.enhancement import baselines, metrics, synthetic


def test_every_rgb_baseline_returns_a_frame_of_the_same_size(clean_photos) -> None:
    dark = synthetic.low_light(clean_photos[0], np.random.default_rng(0))
    for name, method in [*baselines.RGB_BASELINES.items(), ("fixed", baselines.fixed_scale_guided_retinex)]:
        out = method(dark)
        assert out.shape == dark.shape and out.dtype == np.uint8, name
        assert metrics.psnr(out, clean_photos[0]) > metrics.psnr(dark, clean_photos[0]), name


def test_histogram_equalisation_flattens_luma() -> None:
    rng = np.random.default_rng(1)
    dark = rng.integers(0, 40, (64, 64, 3), np.uint8)
    y = baselines.histogram_equalise_luma(dark)
    import cv2

    luma = cv2.cvtColor(y, cv2.COLOR_BGR2YCrCb)[..., 0]
    assert luma.max() >= 250 and abs(float(luma.mean()) - 127.5) < 15


def test_simplest_colour_balance_stretches_each_channel_to_the_full_range() -> None:
    image = np.random.default_rng(2).normal(0.0, 1.0, (50, 50, 3)).astype(np.float32)
    out = baselines.simplest_colour_balance(image, clip_percent=1.0)
    for c in range(3):
        assert out[..., c].min() == 0 and out[..., c].max() == 255
        assert abs(float((out[..., c] == 0).mean()) - 0.01) < 0.005  # 1 % clipped at the bottom


def test_single_scale_retinex_removes_a_smooth_illumination_gradient() -> None:
    xx = np.linspace(0.2, 1.0, 256, dtype=np.float32)[None, :].repeat(128, axis=0)
    texture = (np.random.default_rng(3).random((128, 256)) > 0.5) * 0.3 + 0.5
    image = np.clip(xx * texture * 255, 0, 255).astype(np.uint8)
    out = baselines.single_scale_retinex(np.dstack([image] * 3), sigma=10.0)[..., 0].astype(float)
    # Left and right halves were lit 0.2-0.6 and 0.6-1.0; after SSR their means are close.
    assert abs(out[:, 20:108].mean() - out[:, 148:236].mean()) < 25


def test_msrcr_output_is_balanced() -> None:
    dark = synthetic.low_light(np.full((90, 160, 3), 120, np.uint8), np.random.default_rng(4))
    out = baselines.msrcr(dark)
    assert out.shape == dark.shape and 60 < out.mean() < 200


def test_median_depth_fills_pinholes_only() -> None:
    depth = np.full((20, 20), 3000, np.uint16)
    depth[5, 5] = 0
    depth[10:17, 10:17] = 0
    out = baselines.median_depth(depth)
    assert out[5, 5] == 3000 and out[13, 13] == 0
