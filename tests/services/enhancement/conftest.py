"""Shared inputs: scikit-image's bundled photographs as clean references, degraded synthetically."""

import cv2
import numpy as np
import pytest
import skimage.data

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def photo(name: str, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A bundled photograph as uint8 BGR at ``size`` (width, height)."""
    rgb = getattr(skimage.data, name)()
    return cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def clean_photos() -> list[np.ndarray]:
    return [photo(name) for name in PHOTOS]
