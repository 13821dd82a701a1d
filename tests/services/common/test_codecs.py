"""Codecs round-trip pixels exactly (PNG) or closely (JPEG) and name what is wrong with bad input."""

import cv2
import numpy as np
import pytest

from services.common import codecs
from services.common.errors import CorruptImage, MalformedMessage, MissingModality, WrongResolution
from services.common.pb.classroom.v1 import frames_pb2


def _frame_set() -> frames_pb2.FrameSet:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    depth = rng.integers(500, 6000, (29, 32), dtype=np.uint16)
    thermal = rng.uniform(18, 37, (24, 32)).astype(np.float32)
    return frames_pb2.FrameSet(
        classroom_id="r1",
        session_id="s1",
        camera_id="c1",
        sequence=3,
        capture_ts_us=1_000,
        rgb=codecs.encode_rgb(rgb, capture_ts_us=1_000),
        depth=codecs.encode_depth(depth, capture_ts_us=1_010),
        thermal=codecs.encode_thermal(thermal, capture_ts_us=990),
    )


def test_depth_and_thermal_round_trip_exactly() -> None:
    depth = np.array([[0, 1, 65535], [1234, 4000, 7]], dtype=np.uint16)
    decoded = codecs.decode_image(codecs.encode_depth(depth, capture_ts_us=0), name="depth")
    assert np.array_equal(decoded, depth)
    celsius = np.array([[20.0, 36.55], [-5.25, 100.0]], dtype=np.float32)
    raw = codecs.decode_image(codecs.encode_thermal(celsius, capture_ts_us=0), name="thermal")
    # centi-kelvin: 0.01 K resolution
    assert np.allclose(codecs.thermal16_to_celsius(raw), celsius, atol=0.005)
    assert raw[0, 0] == round((20.0 + 273.15) * 100)


def test_frame_set_round_trip_keeps_timestamps() -> None:
    message = codecs.parse_frame_set(_frame_set().SerializeToString())
    decoded = codecs.decode_frame_set(message)
    assert decoded.rgb.shape == (36, 64, 3)
    assert decoded.depth_mm.dtype == np.uint16 and decoded.depth_mm.shape == (29, 32)
    assert decoded.thermal_c.dtype == np.float32
    assert (decoded.rgb_ts_us, decoded.depth_ts_us, decoded.thermal_ts_us) == (1_000, 1_010, 990)


def test_garbage_bytes_are_malformed() -> None:
    with pytest.raises(MalformedMessage):
        codecs.parse_frame_set(b"\xff\xfe not a protobuf at all")


def test_truncated_jpeg_is_corrupt() -> None:
    message = _frame_set()
    message.rgb.data = message.rgb.data[: len(message.rgb.data) // 3]
    with pytest.raises(CorruptImage):
        codecs.decode_frame_set(message)


def test_png_garbage_is_corrupt() -> None:
    message = _frame_set()
    message.depth.encoding = frames_pb2.EncodedImage.ENCODING_PNG
    message.depth.data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
    with pytest.raises(CorruptImage):
        codecs.decode_frame_set(message)


def test_missing_modality_is_named() -> None:
    message = _frame_set()
    message.ClearField("thermal")
    with pytest.raises(MissingModality, match="thermal"):
        codecs.decode_frame_set(message)


def test_header_resolution_mismatch() -> None:
    message = _frame_set()
    message.rgb.width = 1920
    with pytest.raises(WrongResolution, match="1920"):
        codecs.decode_frame_set(message)


def test_colour_sent_as_depth_is_corrupt() -> None:
    message = _frame_set()
    message.depth.CopyFrom(message.rgb)
    message.depth.pixel_format = frames_pb2.EncodedImage.PIXEL_FORMAT_DEPTH16_MM
    with pytest.raises(CorruptImage, match="depth"):
        codecs.decode_frame_set(message)


def test_nan_thermal_is_refused_at_encoding() -> None:
    with pytest.raises(ValueError, match="NaN"):
        codecs.encode_thermal(np.array([[np.nan]], dtype=np.float32), capture_ts_us=0)


@pytest.mark.parametrize("colour_hw", [(360, 640), (361, 641), (1080, 1920)])
def test_registered_depth_on_its_grid_is_upsampled_by_nearest_neighbour(colour_hw) -> None:
    h, w = colour_hw
    rng = np.random.default_rng(1)
    for k in (2, 3):
        grid = rng.integers(0, 6000, (h // k, w // k), dtype=np.uint16)
        full = codecs.registered_depth_at(grid, colour_hw)
        assert full.shape == colour_hw and full.dtype == np.uint16
        np.testing.assert_array_equal(full, cv2.resize(grid, (w, h), interpolation=cv2.INTER_NEAREST))
        if h % k == 0 and w % k == 0:
            np.testing.assert_array_equal(full, np.repeat(np.repeat(grid, k, 0), k, 1))
    same = rng.integers(0, 6000, colour_hw, dtype=np.uint16)
    assert codecs.registered_depth_at(same, colour_hw) is same


@pytest.mark.parametrize("depth_hw", [(180, 300), (181, 320), (720, 1280), (0, 0), (360, 1)])
def test_depth_of_another_size_is_a_wrong_resolution(depth_hw) -> None:
    with pytest.raises(WrongResolution, match="registration grid"):
        codecs.registered_depth_at(np.zeros(depth_hw, np.uint16), (360, 640))


@pytest.mark.parametrize("encoding", ["zstd", "png"])
def test_both_lossless_encodings_round_trip_every_value(encoding) -> None:
    rng = np.random.default_rng(2)
    depth = rng.integers(0, 65536, (37, 53), dtype=np.uint16)
    depth[0, :4] = [65535, 0, 65535, 1]  # wrapping differences
    gray = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    gray[:, 0] = 255
    celsius = rng.uniform(-20, 120, (24, 32)).astype(np.float32)
    for image, encode in ((depth, codecs.encode_depth), (gray, codecs.encode_gray8)):
        encoded = encode(image, capture_ts_us=0, encoding=encoding)
        decoded = codecs.decode_image(encoded, name="x")
        assert decoded.dtype == image.dtype and np.array_equal(decoded, image)
    thermal = codecs.encode_thermal(celsius, capture_ts_us=0, encoding=encoding)
    assert np.array_equal(codecs.decode_image(thermal, name="t"), codecs.celsius_to_thermal16(celsius))
    expected = {
        "zstd": frames_pb2.EncodedImage.ENCODING_ZSTD_SUB,
        "png": frames_pb2.EncodedImage.ENCODING_PNG,
    }
    assert thermal.encoding == expected[encoding]


def test_zstd_sub_is_pngs_sub_filter_then_zstandard() -> None:
    import zstandard

    image = np.array([[5, 3, 65535, 2]], dtype=np.uint16)
    diff = np.array([[5, 65534, 65532, 3]], dtype="<u2")  # x[i] - x[i-1] modulo 2^16
    assert zstandard.ZstdDecompressor().decompress(codecs.zstd_sub(image)) == diff.tobytes()


def _bomb() -> bytes:
    import zstandard

    chunk = zstandard.ZstdCompressor().compressobj(size=4_000_000_000)
    return chunk.compress(b"\x00" * 1024) + chunk.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


def _zstd_depth() -> frames_pb2.EncodedImage:
    return codecs.encode_depth(np.arange(12, dtype=np.uint16).reshape(3, 4), capture_ts_us=0)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: setattr(e, "data", e.data[: len(e.data) // 2]), "not a Zstandard frame"),
        (lambda e: setattr(e, "data", b"not zstd at all"), "not a Zstandard frame"),
        (lambda e: setattr(e, "width", 5), "a Zstandard frame of 24 bytes, a 5x3 image"),
        # A frame that claims gigabytes is refused before anything is allocated.
        (lambda e: setattr(e, "data", _bomb()), "a Zstandard frame of 4000000000 bytes"),
        (lambda e: setattr(e, "pixel_format", frames_pb2.EncodedImage.PIXEL_FORMAT_BGR8), "single-channel"),
    ],
)
def test_bad_zstd_images_are_corrupt(mutate, match) -> None:
    encoded = _zstd_depth()
    mutate(encoded)
    with pytest.raises(CorruptImage, match=match):
        codecs.decode_image(encoded, name="depth")


def test_unknown_lossless_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lossless encoding"):
        codecs.encode_depth(np.zeros((2, 2), np.uint16), capture_ts_us=0, encoding="bmp")  # type: ignore[arg-type]
