"""Image files of the data-set format: encoding on write, checked decoding on read.

Colour is JPEG (or PNG), depth 16-bit PNG in millimetres, thermal 16-bit PNG in
centi-kelvin (the wire format of services/common/codecs.py). A file that was cut short
is caught before decoding (a JPEG must end with its EOI marker, a PNG with its IEND
chunk): OpenCV would otherwise decode a truncated JPEG into a partly grey image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.common.codecs import celsius_to_thermal16, thermal16_to_celsius
from services.dataset.format import CorruptFileError, MissingFileError

JPEG_QUALITY = 92
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def encode_rgb(bgr: np.ndarray, extension: str = "jpg") -> bytes:
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if extension == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    ok, buf = cv2.imencode(f".{extension}", bgr, params)
    if not ok:
        raise ValueError(f"{extension} encoding of a {bgr.shape} image failed")
    return buf.tobytes()


def encode_png16(image: np.ndarray) -> bytes:
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"16-bit PNG needs HxW uint16, got {image.dtype} {image.shape}")
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def encode_thermal(celsius: np.ndarray) -> bytes:
    return encode_png16(celsius_to_thermal16(celsius))


def check_complete(data: bytes, path: Path | str) -> None:
    """Raise CorruptFileError when an image file is empty or cut short."""
    suffix = Path(path).suffix.lower()
    if not data:
        raise CorruptFileError(f"{path}: empty file")
    jpeg = suffix in (".jpg", ".jpeg")
    if jpeg and (not data.startswith(b"\xff\xd8") or not data.rstrip(b"\x00").endswith(_JPEG_END)):
        raise CorruptFileError(f"{path}: truncated or not a JPEG ({len(data)} bytes, no end-of-image marker)")
    if suffix == ".png" and (not data.startswith(b"\x89PNG") or not data.endswith(_PNG_END)):
        raise CorruptFileError(f"{path}: truncated or not a PNG ({len(data)} bytes, no IEND chunk)")


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"{path}: missing") from None
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from None


def decode_image(data: bytes, path: Path | str, *, kind: str, size: tuple[int, int] | None) -> np.ndarray:
    """Decode colour (HxWx3 uint8), depth (HxW uint16 mm) or thermal (HxW float32 °C) bytes."""
    check_complete(data, path)
    flags = cv2.IMREAD_COLOR if kind == "rgb" else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise CorruptFileError(f"{path}: does not decode as an image")
    if kind == "rgb":
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise CorruptFileError(
                f"{path}: colour must be 8-bit with 3 channels, got {image.dtype} {image.shape}"
            )
    elif image.dtype != np.uint16 or image.ndim != 2:
        raise CorruptFileError(
            f"{path}: {kind} must be a single-channel 16-bit PNG, got {image.dtype} {image.shape}"
        )
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise CorruptFileError(
            f"{path}: {image.shape[1]}x{image.shape[0]}, clip.json says {size[0]}x{size[1]}"
        )
    if kind == "thermal":
        return thermal16_to_celsius(image)
    return image


def read_image(path: Path, *, kind: str, size: tuple[int, int] | None) -> np.ndarray:
    return decode_image(read_bytes(path), path, kind=kind, size=size)
