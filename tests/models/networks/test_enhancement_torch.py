"""The torch twin of section 3.2: agrees with the NumPy/OpenCV library, learns eq. 2, batches.

Tolerances, and why they are not zero: both paths compute in float32 but in different orders
(OpenCV's box filter keeps running sums in double, torch averages directly; cv2.pow and
torch.pow round differently), so colour intermediates differ by a few 1e-5 and the uint8
output by at most one grey level where a value sits on a rounding boundary. OpenCV's
bilateral filter reads its range kernel from a lookup table (torch evaluates exp exactly) and
cv2.remap quantises sampling positions to 1/32 pixel: depth within 0.01 mm, temperatures
within 0.01 °C. CLAHE is integer arithmetic in both; rounding of exact .5 ties in the tile
blend can differ by a level on a handful of pixels.
"""

import os

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import models.networks.enhancement as T
from services.common.frames import FrameSet
from services.enhancement import depth, retinex, synthetic, thermal
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer

P = EnhancementParams()


def _dark_photo(size=(640, 360), seed=0) -> np.ndarray:
    clean = cv2.resize(
        np.ascontiguousarray(skimage.data.astronaut()[..., ::-1]), size, interpolation=cv2.INTER_AREA
    )
    return synthetic.low_light(clean, np.random.default_rng(seed), exposure=0.08, falloff=0.4)


def _tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bgr).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize("size", [(640, 360), (96, 96)])
def test_retinex_agrees_with_numpy(size) -> None:
    dark = _dark_photo(size)
    ours = retinex.multiscale_retinex(dark, P, keep_float=True)
    with torch.no_grad():
        details = T.MultiScaleRetinex(P).forward_details(_tensor(dark))
    out = details["output"][0].permute(1, 2, 0).numpy()
    assert np.abs(out - ours.output_float).max() < 2e-4
    assert np.abs(details["weight"][0, 0].numpy() - ours.weight).max() < 2e-3
    assert float(details["noise"][0]) == pytest.approx(ours.noise, rel=1e-6)
    assert float(details["white"][0]) == pytest.approx(ours.white, rel=1e-5)
    u8 = np.clip(np.round(out * 255), 0, 255).astype(int)
    assert np.abs(u8 - ours.output).max() <= 1 and (u8 != ours.output).mean() < 1e-3


@pytest.mark.slow
def test_retinex_agrees_at_1080p_through_the_processing_resolution() -> None:
    dark = cv2.resize(_dark_photo(), (1920, 1080), interpolation=cv2.INTER_NEAREST)
    ours = retinex.multiscale_retinex(dark, P, keep_float=True)
    with torch.no_grad():
        out = T.MultiScaleRetinex(P)(_tensor(dark))[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ours.output_float).max() < 5e-4


def test_fixed_scale_ablation_agrees_with_numpy() -> None:
    dark = _dark_photo((320, 180))
    with torch.no_grad():
        out = T.MultiScaleRetinex(P, multi_scale=False)(_tensor(dark))[0].permute(1, 2, 0).numpy()
    ours = retinex.fixed_scale_retinex(dark, P)
    assert np.abs(np.clip(np.round(out * 255), 0, 255) - ours).max() <= 1


def test_eq2_coefficients_are_normalised_learnable_and_round_trip() -> None:
    module = T.MultiScaleRetinex(EnhancementParams(lambda1=0.2, lambda2=0.8))
    assert module.lambdas.sum().item() == pytest.approx(1.0)
    assert module.lambdas.tolist() == pytest.approx([0.2, 0.8], abs=1e-6)
    dark = _tensor(_dark_photo((160, 90)))
    reference = _tensor(cv2.resize(np.ascontiguousarray(skimage.data.astronaut()[..., ::-1]), (160, 90)))
    loss = (module(dark) - reference).abs().mean()
    loss.backward()
    for name in (
        "lambda_logits",
        "log_gradient_scale",
        "log_texture_scale",
        "log_small_eps",
        "white_target_logit",
    ):
        grad = getattr(module, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    with torch.no_grad():
        module.lambda_logits.copy_(torch.tensor([1.0, 0.0]))
    exported = module.export_params()
    e = np.exp(1.0)
    assert (exported.lambda1, exported.lambda2) == pytest.approx((e / (e + 1), 1 / (e + 1)), abs=1e-6)
    again = T.MultiScaleRetinex.from_params(exported)
    assert again.lambdas.tolist() == pytest.approx(module.lambdas.tolist(), abs=1e-6)


def test_a_batch_is_its_images_one_by_one() -> None:
    a, b = _tensor(_dark_photo((160, 90), 1)), _tensor(_dark_photo((160, 90), 2) // 2)
    module = T.MultiScaleRetinex(P)
    with torch.no_grad():
        together = module(torch.cat([a, b]))
        np.testing.assert_allclose(together[:1].numpy(), module(a).numpy(), atol=1e-6)
        np.testing.assert_allclose(together[1:].numpy(), module(b).numpy(), atol=1e-6)


def test_create_enhancement_names_and_baselines_agree() -> None:
    assert isinstance(T.create_enhancement("mswgf"), T.MultiScaleRetinex)
    assert not T.create_enhancement("single_scale_gf").multi_scale
    with pytest.raises(ValueError, match="unknown enhancement"):
        T.create_enhancement("nope")
    from services.enhancement import baselines

    dark = _dark_photo((320, 180))
    with torch.no_grad():
        ssr = T.create_enhancement("retinex")(_tensor(dark))[0].permute(1, 2, 0).numpy() * 255
        he = T.create_enhancement("conventional")(_tensor(dark))[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(ssr - baselines.single_scale_retinex(dark)).mean() < 1.0
    assert np.abs(he - baselines.histogram_equalise_luma(dark)).mean() < 1.0  # YCrCb rounding in OpenCV


@pytest.fixture(scope="module")
def scene():
    calibration = synthetic.example_calibration()
    texture = np.ascontiguousarray(skimage.data.coffee()[..., ::-1])
    return calibration, synthetic.render_box_scene(
        calibration, texture, synthetic.random_boards(np.random.default_rng(3))
    )


def test_depth_restoration_agrees_with_numpy(scene) -> None:
    _, s = scene
    holed = synthetic.depth_holes(s.depth_mm, np.random.default_rng(2))
    ours = depth.restore_depth(holed, P)
    theirs, filled = T.restore_depth(torch.from_numpy(holed.astype(np.float32))[None, None], P)
    assert np.abs(theirs[0, 0].numpy() - ours.depth_mm).max() < 0.01
    np.testing.assert_array_equal(filled[0, 0].numpy(), ours.filled)


def test_clahe_agrees_with_opencv(scene) -> None:
    _, s = scene
    flat = synthetic.low_thermal_contrast(s.thermal_c, np.random.default_rng(1))
    ours, median = thermal.equalise_thermal(flat, P)
    theirs, t_median = T.equalise_thermal(torch.from_numpy(flat)[None, None], P)
    differ = theirs[0, 0].numpy() != ours
    assert differ.mean() < 1e-3 and np.abs(theirs[0, 0].numpy() - ours).max() <= 3
    assert float(t_median[0]) == pytest.approx(median, abs=1e-4)


def test_trimodal_frame_set_agrees_with_the_numpy_pipeline(scene) -> None:
    calibration, s = scene
    dark = synthetic.low_light(s.rgb, np.random.default_rng(0), exposure=0.1)
    holed = synthetic.depth_holes(s.depth_mm, np.random.default_rng(2))
    flat = synthetic.low_thermal_contrast(s.thermal_c, np.random.default_rng(1))
    ours = Enhancer(P).process(FrameSet(dark, holed, flat, 0, 0, 0), calibration, (640, 360))
    module = T.TrimodalEnhancer(calibration, (640, 360), P)
    with torch.no_grad():
        out = module(
            _tensor(dark),
            torch.from_numpy(holed.astype(np.float32))[None, None],
            torch.from_numpy(flat)[None, None],
        )
    rgb = np.clip(np.round(out["rgb"][0].permute(1, 2, 0).numpy() * 255), 0, 255)
    assert np.abs(rgb - ours.rgb).max() <= 1
    assert np.abs(out["depth_mm"][0, 0].numpy() - ours.depth_mm).max() <= 1.0  # uint16 rounding
    assert np.abs(out["thermal_c"][0, 0].numpy() - ours.thermal_c).max() < 0.01
    assert (np.abs(out["thermal_equalised"][0, 0].numpy() - ours.thermal_equalised) > 1).mean() < 1e-3


@pytest.mark.gpu
def test_trimodal_runs_batched_on_cuda(scene) -> None:
    device = os.environ.get("CLASSROOM_TEST_DEVICE", "cuda")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    calibration, s = scene
    module = T.TrimodalEnhancer(calibration, (640, 360), P).to(device)
    rgb = _tensor(s.rgb).repeat(4, 1, 1, 1).to(device)
    d = torch.from_numpy(s.depth_mm.astype(np.float32))[None, None].repeat(4, 1, 1, 1).to(device)
    t = torch.from_numpy(s.thermal_c)[None, None].repeat(4, 1, 1, 1).to(device)
    with torch.no_grad():
        out = module(rgb, d, t)
        cpu = T.TrimodalEnhancer(calibration, (640, 360), P)(rgb[:1].cpu(), d[:1].cpu(), t[:1].cpu())
    assert out["rgb"].shape == (4, 3, 360, 640)
    assert torch.allclose(out["rgb"][0].cpu(), cpu["rgb"][0], atol=1e-3)
