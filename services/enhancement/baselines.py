"""The enhancement methods section 3.2 is compared against (Tables 3, 4 and 6), side by side.

RGB (uint8 BGR in, uint8 BGR out):
- ``clahe_luminance``: CLAHE on the L channel of CIELAB (clip 2.0, 8×8 tiles), colour kept.
- ``single_scale_retinex``: SSR (Jobson, Rahman and Woodell, "Properties and performance of a
  center/surround retinex", IEEE TIP 6(3), 1997): log I − log(G_σ ∗ I) per channel, σ = 80,
  then the "simplest colour balance" stretch (1 % clipped at each end, Limare et al., IPOL
  2011) that SSR needs to be displayable.
- ``msrcr``: multi-scale retinex with colour restoration (Jobson, Rahman and Woodell, IEEE TIP
  6(7), 1997), in the form of Petro, Sbert and Morel, "Multiscale Retinex", IPOL 2014:
  σ = 15, 80, 250 with equal weights, colour restoration β·(log(α·I_c) − log Σ I) with
  α = 125, β = 46, gain 192 and offset −30, then the simplest colour balance.
- ``fixed_scale_guided_retinex``: the paper's "without multi-scale weights": the proposed
  Retinex with one guided filter at a fixed scale (``retinex.fixed_scale_retinex``).
- ``conventional``: the Table 4 baseline's "conventional image enhancement", defined here as
  global histogram equalisation of luma (YCrCb) for colour, a 5×5 median filter for depth
  (fills only pinholes; larger holes stay), and a linear min–max stretch for thermal. It is
  registered to colour by the same calibration, so only the enhancement differs.

Large Gaussian surrounds (σ ≥ 20 px) are computed on an area-downsampled image and upsampled,
the usual way to make them affordable; the surround is smooth at that scale anyway.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.enhancement.params import EnhancementParams
from services.enhancement.retinex import fixed_scale_retinex

_LARGE_SIGMA = 20.0


def clahe_luminance(bgr_u8: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    lab = cv2.cvtColor(bgr_u8, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def gaussian_surround(image: np.ndarray, sigma: float) -> np.ndarray:
    """G_σ ∗ image (float32), downsampled for large σ."""
    h, w = image.shape[:2]
    factor = max(1.0, sigma / _LARGE_SIGMA)
    if factor == 1.0:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    small = cv2.resize(
        image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    blurred = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def simplest_colour_balance(image: np.ndarray, clip_percent: float = 1.0) -> np.ndarray:
    """Per channel, clip ``clip_percent`` % at each end and stretch linearly to 0..255 (uint8)."""
    out = np.empty(image.shape, np.uint8)
    for c in range(image.shape[2]):
        channel = image[..., c]
        low, high = np.percentile(channel, [clip_percent, 100.0 - clip_percent])
        scale = 255.0 / max(high - low, 1e-6)
        out[..., c] = np.clip((channel - low) * scale, 0, 255).astype(np.uint8)
    return out


def single_scale_retinex(bgr_u8: np.ndarray, sigma: float = 80.0) -> np.ndarray:
    image = bgr_u8.astype(np.float32) + 1.0
    retinex = np.log(image) - np.log(gaussian_surround(image, sigma))
    return simplest_colour_balance(retinex)


def msrcr(
    bgr_u8: np.ndarray,
    sigmas: tuple[float, ...] = (15.0, 80.0, 250.0),
    alpha: float = 125.0,
    beta: float = 46.0,
    gain: float = 192.0,
    offset: float = -30.0,
) -> np.ndarray:
    image = bgr_u8.astype(np.float32) + 1.0
    log_image = np.log(image)
    msr = sum(log_image - np.log(gaussian_surround(image, s)) for s in sigmas) / len(sigmas)
    colour_restoration = beta * (np.log(alpha * image) - np.log(image.sum(axis=2, keepdims=True)))
    return simplest_colour_balance(gain * (colour_restoration * msr) + offset)


def fixed_scale_guided_retinex(bgr_u8: np.ndarray, params: EnhancementParams | None = None) -> np.ndarray:
    return fixed_scale_retinex(bgr_u8, params or EnhancementParams())


def histogram_equalise_luma(bgr_u8: np.ndarray) -> np.ndarray:
    """Conventional colour enhancement: global histogram equalisation of Y (YCrCb), chroma kept."""
    ycrcb = cv2.cvtColor(bgr_u8, cv2.COLOR_BGR2YCrCb)
    ycrcb[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def median_depth(depth_mm: np.ndarray, ksize: int = 5) -> np.ndarray:
    """Conventional depth restoration: a median filter (denoises, fills holes under half its window).

    (5×5 at most: OpenCV's median of uint16 images takes ksize 3 or 5.)
    """
    return cv2.medianBlur(depth_mm, ksize)


RGB_BASELINES = {
    "clahe_luminance": clahe_luminance,
    "single_scale_retinex": single_scale_retinex,
    "msrcr": msrcr,
    "conventional_he": histogram_equalise_luma,
}
