"""Thermal enhancement of section 3.2: adaptive histogram equalisation and pseudo-colour mapping.

Radiometric temperatures (°C, float32) are kept untouched for the attention stages. For the
equalised view:

1. the frame's temperature window [low, high] is the ``thermal_low_percentile`` to
   ``thermal_high_percentile`` range of its pixels, widened symmetrically to at least
   ``thermal_min_span_c`` so that a uniform scene is not stretched into noise;
2. the window is mapped linearly onto 0..255 (values outside clip);
3. CLAHE (Zuiderveld, "Contrast Limited Adaptive Histogram Equalization", Graphics Gems IV,
   1994; OpenCV's implementation) expands the dynamic range locally, so the few degrees
   between a face or hands and a jumper become visible;
4. pseudo-colour is a fixed OpenCV colormap of the equalised image (``pseudo_colour``), so a
   colour always means the same equalised level.

NaN or infinite temperatures are rejected with a clear error: a radiometric frame with
them is corrupt (the wire format cannot even carry them).
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.errors import CorruptImage
from services.enhancement.params import EnhancementParams
from services.enhancement.quantiles import percentiles

PSEUDO_COLOUR_MAP = cv2.COLORMAP_INFERNO
# The window is estimated on every 2nd pixel in each direction: enough samples, a quarter of the cost.
_WINDOW_STRIDE = 2


def check_thermal(thermal_c: np.ndarray) -> None:
    if thermal_c.ndim != 2 or thermal_c.dtype != np.float32:
        raise CorruptImage(
            f"thermal must be HxW float32 °C, got {thermal_c.dtype} with shape {thermal_c.shape}"
        )
    if not np.isfinite(thermal_c).all():
        bad = int((~np.isfinite(thermal_c)).sum())
        raise CorruptImage(f"thermal frame has {bad} NaN or infinite temperature(s)")


def temperature_window(thermal_c: np.ndarray, params: EnhancementParams) -> tuple[float, float, float]:
    """(low, high, median) °C of the frame; high − low >= thermal_min_span_c."""
    sample = thermal_c[::_WINDOW_STRIDE, ::_WINDOW_STRIDE]
    low, median, high = percentiles(
        sample, [params.thermal_low_percentile, 50.0, params.thermal_high_percentile]
    )
    span = high - low
    if span < params.thermal_min_span_c:
        centre = 0.5 * (low + high)
        low, high = centre - 0.5 * params.thermal_min_span_c, centre + 0.5 * params.thermal_min_span_c
    return low, high, median


def to_display(thermal_c: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of [low, high] °C onto 0..255 (uint8, clipped)."""
    scale = 255.0 / (high - low)
    # convertScaleAbs rounds and saturates at 255, but takes |x|: clamp below the window to 0 first.
    return cv2.convertScaleAbs(cv2.max(thermal_c - np.float32(low), 0.0), alpha=scale)


def equalise_thermal(thermal_c: np.ndarray, params: EnhancementParams) -> tuple[np.ndarray, float]:
    """CLAHE of the windowed thermal frame: (uint8 HxW, median °C of the frame)."""
    low, high, median = temperature_window(thermal_c, params)
    # createCLAHE objects are not safe to share between threads: one per call is cheap enough.
    clahe = cv2.createCLAHE(
        clipLimit=params.clahe_clip_limit, tileGridSize=(params.clahe_tiles, params.clahe_tiles)
    )
    return clahe.apply(to_display(thermal_c, low, high)), median


def pseudo_colour(equalised_u8: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR pseudo-colour of the equalised thermal image (fixed colormap)."""
    return cv2.applyColorMap(equalised_u8, PSEUDO_COLOUR_MAP)


def linear_stretch(thermal_c: np.ndarray) -> np.ndarray:
    """The conventional thermal display: the frame's min..max stretched linearly to 0..255."""
    low, high = float(thermal_c.min()), float(thermal_c.max())
    return to_display(thermal_c, low, max(high, low + 1e-3))
