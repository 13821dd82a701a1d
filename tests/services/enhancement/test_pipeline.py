"""Enhancer.process end to end: aligned outputs with kept temperatures, the report, and every bad input."""

import os

import cv2
import numpy as np
import pytest
import skimage.data

from services.common import codecs
from services.common.errors import BadInput, CorruptImage, InvalidCalibration
from services.common.frames import FrameSet
from services.common.pb.classroom.v1 import frames_pb2
from services.enhancement import alignment, synthetic
from services.enhancement.pipeline import EnhancedFrame, EnhancementParams, Enhancer, opencv_threads

CALIBRATION = synthetic.example_calibration()
SIZE = (640, 360)


@pytest.fixture(scope="module")
def scene() -> synthetic.BoxScene:
    texture = np.ascontiguousarray(skimage.data.coffee()[..., ::-1])
    return synthetic.render_box_scene(CALIBRATION, texture, synthetic.random_boards(np.random.default_rng(3)))


def frame_set(rgb, depth, thermal) -> FrameSet:
    return FrameSet(rgb=rgb, depth_mm=depth, thermal_c=thermal, rgb_ts_us=0, depth_ts_us=0, thermal_ts_us=0)


def test_outputs_are_aligned_to_colour_at_the_analysis_size(scene) -> None:
    dark = synthetic.low_light(scene.rgb, np.random.default_rng(0), exposure=0.08)
    holed = synthetic.depth_holes(scene.depth_mm, np.random.default_rng(1))
    out = Enhancer().process(frame_set(dark, holed, scene.thermal_c), CALIBRATION, (320, 180))
    assert isinstance(out, EnhancedFrame)
    assert out.rgb.shape == (180, 320, 3) and out.rgb.dtype == np.uint8
    assert out.depth_mm.shape == (180, 320) and out.depth_mm.dtype == np.uint16
    assert out.thermal_c.shape == (180, 320) and out.thermal_c.dtype == np.float32
    assert out.thermal_equalised.shape == (180, 320) and out.thermal_equalised.dtype == np.uint8
    assert out.report["rgb_mean_luma_out"] > 3 * out.report["rgb_mean_luma_in"]
    assert out.report["depth_invalid_fraction_in"] > 0.03 and out.report["depth_invalid_fraction_out"] < 0.01


def test_radiometric_temperatures_are_kept_and_registered(scene) -> None:
    out = Enhancer().process(frame_set(scene.rgb, scene.depth_mm, scene.thermal_c), CALIBRATION, SIZE)
    # Each board shows its own temperature where colour sees it (interiors; rims may mix with the wall).
    boards = synthetic.random_boards(np.random.default_rng(3))
    wall = scene.colour_depth_mm == 6000.0
    assert abs(float(np.median(out.thermal_c[wall])) - 22.0) < 0.2
    for board in boards:
        inside = np.isclose(scene.colour_depth_mm, board.z)
        if inside.sum() > 400:
            assert abs(float(np.median(out.thermal_c[inside])) - board.temperature_c) < 0.3
    assert (
        scene.thermal_c.min() - 0.01 <= out.thermal_c.min()
        and out.thermal_c.max() <= scene.thermal_c.max() + 0.01
    )


def test_report_has_every_enhancement_report_field(scene) -> None:
    out = Enhancer().process(frame_set(scene.rgb, scene.depth_mm, scene.thermal_c), CALIBRATION, SIZE)
    fields = {f.name for f in frames_pb2.EnhancementReport.DESCRIPTOR.fields}
    assert set(out.report) == fields
    frames_pb2.EnhancementReport(
        **{k: v for k, v in out.report.items() if k != "method"}, method=out.report["method"]
    )  # constructs: every value has the field's type
    assert out.report["processing_ms"] > 0 and "lambda1=0.500" in out.report["method"]


def test_learned_parameters_change_the_colour_output(scene) -> None:
    dark = synthetic.low_light(scene.rgb, np.random.default_rng(0), exposure=0.08)
    fs = frame_set(dark, scene.depth_mm, scene.thermal_c)
    default = Enhancer().process(fs, CALIBRATION, SIZE).rgb
    brighter = Enhancer(EnhancementParams(white_target=1.0, lambda1=0.9, lambda2=0.1)).process(
        fs, CALIBRATION, SIZE
    )
    assert brighter.rgb.mean() > default.mean()


def test_all_black_saturated_and_no_depth_frames_have_defined_outputs(scene) -> None:
    black = np.zeros_like(scene.rgb)
    no_depth = np.zeros_like(scene.depth_mm)
    out = Enhancer().process(frame_set(black, no_depth, scene.thermal_c), CALIBRATION, SIZE)
    assert not out.rgb.any() and not out.depth_mm.any()
    assert out.report["depth_invalid_fraction_in"] == 1.0 and out.report["depth_invalid_fraction_out"] == 1.0
    # Thermal falls back to the working-distance plane: the same maps as a plane at 4 m.
    tables = alignment.registration_tables(CALIBRATION, SIZE)
    plane_x, _ = alignment.thermal_maps(np.full((360, 640), 4000.0, np.float32), tables)
    zero_x, _ = alignment.thermal_maps(np.zeros((360, 640), np.float32), tables)
    np.testing.assert_allclose(zero_x, plane_x, atol=1e-3)
    white = np.full_like(scene.rgb, 255)
    out = Enhancer().process(frame_set(white, scene.depth_mm, scene.thermal_c), CALIBRATION, SIZE)
    assert out.rgb.min() >= 253


@pytest.mark.parametrize(
    "mutate, error, message",
    [
        (
            lambda s: frame_set(s.rgb.astype(np.float32), s.depth_mm, s.thermal_c),
            CorruptImage,
            "colour must be",
        ),
        (lambda s: frame_set(s.rgb[..., :2], s.depth_mm, s.thermal_c), CorruptImage, "colour must be"),
        (
            lambda s: frame_set(s.rgb, s.depth_mm.astype(np.float32), s.thermal_c),
            CorruptImage,
            "depth must be",
        ),
        (lambda s: frame_set(s.rgb, s.depth_mm[None], s.thermal_c), CorruptImage, "depth must be"),
        (lambda s: frame_set(s.rgb, s.depth_mm, s.thermal_c.astype(np.float64)), CorruptImage, "float32"),
        (
            lambda s: frame_set(
                s.rgb, s.depth_mm, np.where(s.thermal_c > 30, np.nan, s.thermal_c).astype(np.float32)
            ),
            CorruptImage,
            "NaN",
        ),
        (
            lambda s: frame_set(s.rgb[:-2], s.depth_mm, s.thermal_c),
            InvalidCalibration,
            "colour frame is 640x358",
        ),
        (
            lambda s: frame_set(s.rgb, s.depth_mm[:, :-1], s.thermal_c),
            InvalidCalibration,
            "depth frame is 319x288",
        ),
        (
            lambda s: frame_set(s.rgb, s.depth_mm, s.thermal_c[:100]),
            InvalidCalibration,
            "thermal frame is 320x100",
        ),
    ],
)
def test_bad_frames_raise_bad_input_naming_the_problem(scene, mutate, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        Enhancer().process(mutate(scene), CALIBRATION, SIZE)
    assert isinstance(info.value, BadInput)


@pytest.mark.parametrize(
    "size, message", [((640, 480), "aspect ratio"), ((0, 0), "out of range"), ("640x360", "width, height")]
)
def test_bad_analysis_size_is_invalid_calibration(scene, size, message) -> None:
    with pytest.raises(InvalidCalibration, match=message):
        Enhancer().process(frame_set(scene.rgb, scene.depth_mm, scene.thermal_c), CALIBRATION, size)


def test_calibration_for_another_camera_is_refused(scene) -> None:
    other = synthetic.example_calibration(1920, 1080)
    with pytest.raises(InvalidCalibration, match="calibration is for 1920x1080"):
        Enhancer().process(frame_set(scene.rgb, scene.depth_mm, scene.thermal_c), other, SIZE)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_depth_output_is_the_registered_depth_rounded(scene, size) -> None:
    """process() rounds on the splat grid and upsamples: the same as rounding the upsampled depth."""
    calibration = synthetic.example_calibration(*size)
    holed = synthetic.depth_holes(scene.depth_mm, np.random.default_rng(5))
    rgb = cv2.resize(scene.rgb, size, interpolation=cv2.INTER_LINEAR)
    out = Enhancer().process(frame_set(rgb, holed, scene.thermal_c), calibration, size)
    registered, invalid_in, invalid_out = Enhancer().register_depth(holed, calibration, size, None)
    np.testing.assert_array_equal(out.depth_mm, np.clip(np.rint(registered), 0, 65535).astype(np.uint16))
    tables = alignment.registration_tables(calibration, size)
    # What the service sends is the grid; a consumer's upsampling gives depth_mm back, bit for bit.
    assert out.depth_grid_mm.shape == (tables.grid.height, tables.grid.width)
    wire = codecs.decode_image(codecs.encode_depth(out.depth_grid_mm, capture_ts_us=0), name="depth")
    np.testing.assert_array_equal(codecs.registered_depth_at(wire, out.rgb.shape[:2]), out.depth_mm)
    assert invalid_out == float((registered[tables.depth_field_of_view] <= 0).mean())
    assert (
        out.report["depth_invalid_fraction_in"] == invalid_in == pytest.approx((holed == 0).mean(), rel=1e-12)
    )


def test_report_mean_luma_is_the_luma_image_mean(scene) -> None:
    out = Enhancer().process(frame_set(scene.rgb, scene.depth_mm, scene.thermal_c), CALIBRATION, SIZE)
    luma = cv2.cvtColor(out.rgb, cv2.COLOR_BGR2GRAY).mean() / 255.0  # per-pixel rounding: within 1/510
    assert out.report["rgb_mean_luma_out"] == pytest.approx(luma, abs=1 / 510)


def test_opencv_threads_share_the_cores_among_frame_sets_in_flight() -> None:
    cores = os.cpu_count() or 1
    assert opencv_threads(1) == cores
    assert opencv_threads(cores) == 1 and opencv_threads(4 * cores) == 1
