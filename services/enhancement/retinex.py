"""Low-light RGB enhancement of section 3.2: Retinex with multi-scale weighted guided filtering.

The imaging model is eq. 1, I = R·L, on the colour frame as captured (gamma encoded, in
[0, 1]; a product stays a product under a power-law gamma). As in LIME (Guo, Li and Ling,
TIP 2017) one illumination L is shared by the three channels and estimated from the
illumination prior V = max(B, G, R), so each channel's reflectance R_c = I_c / L stays ≤ 1.
All filtering runs on the single channel V; colour follows through the reflectance.

1. Noise level σ of the frame (Immerkær's estimator). Gamma encoding nearly stabilises the
   variance of shot noise, so one σ per frame describes the whole frame; every guided-filter
   eps is given in units of σ², and both terms of eq. 2 in units of σ, so the filters
   separate structure from noise at every exposure and sensor gain.
2. Large-scale guided filter of V → L_l, the global illumination distribution (strong noise
   suppression); small-scale guided filter of V → L_s, the local illumination detail.
3. eq. 2 adaptive weight ω = λ1·|∇G| + λ2·T with
     |∇G| = Sobel gradient magnitude of the guide G = L_s (already denoised, so noise does
            not read as edges), in units of σ;
     T    = texture complexity: the noise-free local standard deviation of V over the large
            window, sqrt(max(var_w(V) − σ_w², 0)), in units of σ (σ_w² is the noise variance
            the window sees). |∇G| peaks on an isolated edge; T is high over a whole
            textured patch (hair, knitwear, print on a page);
   each term mapped to [0, 1) by x²/(x²+κ²) (the Wiener gain of a signal of amplitude x in
   noise of amplitude κ), with λ1 + λ2 = 1, so ω ∈ [0, 1).
4. Multi-scale weighted illumination L = ω·L_s + (1−ω)·L_l: edges and textures take the
   small scale (detail kept, no halo), flat regions the large one (noise averaged away).
   Each guided filter is linear in V per pixel (L = a·V + b), so L = A·V + B with
   A = ω·a_s + (1−ω)·a_l and B = ω·b_s + (1−ω)·b_l.
5. Optimised reflectance R̃_c = box(I_c) / box(V): the chromatic reflectance with its noise
   suppressed by local averaging of numerator and denominator (the ratio of local means is
   a far less noisy estimate than the local mean of ratios).
6. Reconstruction I_out = R̃ · A(L) with A(L) = white_target · (L/P)^γ, P the frame's
   illumination white point (a high percentile of L): the frame is brought to a target
   exposure, and γ < 1 lifts dim regions more than bright ones. The per-pixel gain A(L)/L
   is kept in [1, max_gain] (never darken; do not amplify an all-black frame's noise).

Speed: all filtering runs at a processing resolution of at most ``processing_height`` lines
(the frame area-averaged by an integer factor s). A larger frame gets the result through
the coefficients of step 4, bilinearly upsampled and applied to its own full-resolution V
(He and Sun's fast guided filter transfer), and the upsampled reflectance R̃. Radii are in
processing pixels. The torch twin (``models/enhancement.py``) computes the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from services.enhancement.guided_filter import box_mean
from services.enhancement.params import EnhancementParams

# δ: keeps ratios finite in black regions (1/255 is one grey level).
DELTA = 1.0 / 255.0
# The smallest noise level assumed (a quarter of a grey level): a clean frame still gets a
# guided filter that smooths quantisation steps, and no division by zero.
MIN_NOISE = 1.0 / 1024.0
# The darkest white point assumed: below it the frame counts as black and gets max_gain.
MIN_WHITE = 1.0 / 255.0
# Immerkær's mask: the difference of two Laplacians, zero on locally planar image content.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
# The white point is a percentile over every 4th pixel in each direction: robust and cheap.
WHITE_POINT_STRIDE = 4

_BORDER = cv2.BORDER_REFLECT_101


def processing_factor(height: int, params: EnhancementParams) -> int:
    """Integer s: filtering runs on the frame area-averaged s×s (about ``processing_height`` lines)."""
    return max(1, round(height / params.processing_height))


def illumination_prior(bgr_u8: np.ndarray) -> np.ndarray:
    """V = max(B, G, R) as float32 in [0, 1] (HxW)."""
    b, g, r = (cv2.extractChannel(bgr_u8, c) for c in range(3))
    return cv2.max(cv2.max(b, g), r).astype(np.float32) * np.float32(1.0 / 255.0)


def noise_sigma(channel_u8: np.ndarray) -> float:
    """Standard deviation of the noise in one uint8 channel, in [0, 1] units, floored at MIN_NOISE.

    Immerkær, "Fast noise variance estimation", CVIU 64(2), 1996:
    σ = sqrt(π/2) / (6·(W−2)·(H−2)) · Σ |I ∗ N| over the interior pixels.
    """
    h, w = channel_u8.shape
    if h < 3 or w < 3:
        return MIN_NOISE
    response = cv2.filter2D(channel_u8, cv2.CV_32F, NOISE_KERNEL, borderType=_BORDER)[1:-1, 1:-1]
    total = cv2.norm(np.ascontiguousarray(response), cv2.NORM_L1)
    sigma = np.sqrt(np.pi / 2.0) / 6.0 * total / ((h - 2) * (w - 2)) / 255.0
    return max(float(sigma), MIN_NOISE)


def guided_coefficients(
    prior: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Self-guided filter of V at one scale (L = mean_a·V + mean_b); also returns box(V) and var_w(V)."""
    mean = box_mean(prior, radius)
    var = box_mean(prior * prior, radius) - mean * mean
    a = var / (var + np.float32(eps))
    b = mean - a * mean
    return box_mean(a, radius), box_mean(b, radius), mean, var


def large_scale_coefficients(
    prior: np.ndarray, radius: int, eps: float, subsample: int, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a_l, b_l) of L_l by the fast guided filter, and T² (in units of σ²) on the same windows.

    T² = max(var_w(V) − σ_w², 0)/σ², σ_w² = σ²/s² the noise variance left after s×s averaging.
    """
    h, w = prior.shape
    if subsample > 1:
        coarse = cv2.resize(
            prior, (max(1, w // subsample), max(1, h // subsample)), interpolation=cv2.INTER_AREA
        )
        noise_var = (noise / subsample) ** 2
    else:
        coarse, noise_var = prior, noise * noise
    mean_a, mean_b, _, var = guided_coefficients(coarse, radius, eps)
    texture2: np.ndarray = cv2.max(var - np.float32(noise_var), 0.0) * np.float32(1.0 / (noise * noise))
    if subsample > 1:
        mean_a, mean_b, texture2 = (
            cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (mean_a, mean_b, texture2)
        )
    return mean_a, mean_b, texture2


def squared_gradient(guide: np.ndarray, noise: float) -> np.ndarray:
    """|∇G|² in units of σ², from 3×3 Sobel derivatives scaled to per-pixel differences."""
    gx = cv2.Sobel(guide, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=_BORDER)
    gy = cv2.Sobel(guide, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=_BORDER)
    return (gx * gx + gy * gy) * np.float32(1.0 / (noise * noise))


def adaptive_weight(gradient2: np.ndarray, texture2: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """eq. 2: ω = λ1·ĝ + λ2·T̂ with ĝ = g²/(g²+κ_g²), T̂ = T²/(T²+κ_T²) (g, T in units of σ)."""
    g_hat = gradient2 / (gradient2 + np.float32(params.gradient_scale**2))
    t_hat = texture2 / (texture2 + np.float32(params.texture_scale**2))
    return np.float32(params.lambda1) * g_hat + np.float32(params.lambda2) * t_hat


def white_point(illumination: np.ndarray, params: EnhancementParams) -> float:
    """P: the ``white_percentile`` of L over a strided grid, floored at MIN_WHITE."""
    sample = illumination[::WHITE_POINT_STRIDE, ::WHITE_POINT_STRIDE]
    return max(float(np.percentile(sample, params.white_percentile)), MIN_WHITE)


def reconstruction_gain(
    illumination: np.ndarray, white: float, params: EnhancementParams
) -> np.ndarray | float:
    """A(L)/L with A(L) = white_target·(L/P)^γ, kept in [1, max_gain]; a scalar when γ = 1."""
    if params.illumination_gamma == 1.0:
        return float(np.clip(params.white_target / white, 1.0, params.max_gain))
    level = cv2.max(illumination, DELTA)
    adjusted = cv2.pow(level * np.float32(1.0 / white), params.illumination_gamma) * np.float32(
        params.white_target
    )
    return np.clip(adjusted / level, 1.0, params.max_gain)


def optimised_reflectance(
    frame_u8: np.ndarray,
    prior: np.ndarray,
    local_prior: np.ndarray,
    weight: np.ndarray,
    params: EnhancementParams,
) -> np.ndarray:
    """R̃ = ω·R̃_s + (1−ω)·R̃_l, R̃_r,c = box_r(I_c)/(box_r(V) + δ) at the small and the chroma radius (HxWx3).

    ``local_prior`` is box(V) at the small radius (the small guided filter's mean, reused).
    """
    fine_k, coarse_k = 2 * params.small_radius + 1, 2 * params.chroma_radius + 1
    # Exact window sums of the uint8 colour; 1/(255·k²) turns them into box means in [0, 1].
    fine_w = weight * np.float32(1.0 / (255.0 * fine_k * fine_k)) / (local_prior + np.float32(DELTA))
    coarse_w = (
        (1.0 - weight)
        * np.float32(1.0 / (255.0 * coarse_k * coarse_k))
        / (box_mean(prior, params.chroma_radius) + np.float32(DELTA))
    )
    fine_sums = cv2.boxFilter(frame_u8, cv2.CV_32F, (fine_k, fine_k), normalize=False, borderType=_BORDER)
    coarse_sums = cv2.boxFilter(
        frame_u8, cv2.CV_32F, (coarse_k, coarse_k), normalize=False, borderType=_BORDER
    )
    fine = cv2.multiply(fine_sums, cv2.cvtColor(fine_w, cv2.COLOR_GRAY2BGR))
    coarse = cv2.multiply(coarse_sums, cv2.cvtColor(coarse_w, cv2.COLOR_GRAY2BGR))
    return cv2.add(fine, coarse)


@dataclass(frozen=True)
class RetinexResult:
    """Output and intermediates of one frame; intermediates at the processing resolution (float32)."""

    output: np.ndarray  # HxWx3 uint8 BGR, full resolution
    output_float: np.ndarray | None  # the same in [0, 1] before rounding, when asked for
    prior: np.ndarray  # V
    large: np.ndarray  # L_l
    small: np.ndarray  # L_s
    gradient2: np.ndarray  # |∇G|² / σ²
    texture2: np.ndarray  # T² / σ²
    weight: np.ndarray  # ω (eq. 2)
    illumination: np.ndarray  # L
    reflectance: np.ndarray  # R̃, HxWx3
    noise: float  # σ
    white: float  # P
    factor: int  # s, processing resolution = full / s


def _processing_frame(bgr_u8: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return bgr_u8
    h, w = bgr_u8.shape[:2]
    return cv2.resize(bgr_u8, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def _transfer(
    bgr_u8: np.ndarray,
    coeff_a: np.ndarray,
    coeff_b: np.ndarray,
    reflectance: np.ndarray,
    params: EnhancementParams,
    white: float,
    prior: np.ndarray | None,
    *,
    keep_float: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-resolution L = A↑·V + B↑ and I_out = R̃↑·A(L) (eq. 1); (uint8, optional float)."""
    h, w = bgr_u8.shape[:2]
    if coeff_a.shape != (h, w):
        prior = None  # the processing-resolution V; the full-resolution one is computed below
        coeff_a, coeff_b = (cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (coeff_a, coeff_b))
        reflectance = cv2.resize(reflectance, (w, h), interpolation=cv2.INTER_LINEAR)
    full_prior = prior if prior is not None else illumination_prior(bgr_u8)
    illumination = coeff_a * full_prior + coeff_b
    gain = reconstruction_gain(illumination, white, params)
    adjusted = cv2.cvtColor(illumination * gain, cv2.COLOR_GRAY2BGR)  # A(L)
    out_u8 = cv2.multiply(reflectance, adjusted, scale=255.0, dtype=cv2.CV_8U)
    out_float = np.clip(cv2.multiply(reflectance, adjusted), 0.0, 1.0) if keep_float else None
    return out_u8, out_float


def multiscale_retinex(
    bgr_u8: np.ndarray, params: EnhancementParams, *, keep_float: bool = False
) -> RetinexResult:
    """Section 3.2 RGB enhancement (eqs. 1-2) of an HxWx3 uint8 BGR frame, with intermediates."""
    factor = processing_factor(bgr_u8.shape[0], params)
    frame = _processing_frame(bgr_u8, factor)
    prior = illumination_prior(frame)
    noise = noise_sigma(cv2.extractChannel(frame, 1))
    var_n = noise * noise
    a_l, b_l, texture2 = large_scale_coefficients(
        prior, params.large_radius, params.large_eps * var_n, params.large_subsample, noise
    )
    a_s, b_s, local_prior, _ = guided_coefficients(prior, params.small_radius, params.small_eps * var_n)
    large = a_l * prior + b_l
    small = a_s * prior + b_s
    gradient2 = squared_gradient(small, noise)
    weight = adaptive_weight(gradient2, texture2, params)  # eq. 2
    # L = ω·L_s + (1−ω)·L_l, kept as L = A·V + B so that it transfers to full resolution.
    coeff_a = a_l + weight * (a_s - a_l)
    coeff_b = b_l + weight * (b_s - b_l)
    illumination = coeff_a * prior + coeff_b
    # R̃ at the two scales mixed by the same ω: fine chroma at edges and texture, smooth in flat regions.
    reflectance = optimised_reflectance(frame, prior, local_prior, weight, params)
    white = white_point(illumination, params)
    out_u8, out_float = _transfer(
        bgr_u8, coeff_a, coeff_b, reflectance, params, white, prior, keep_float=keep_float
    )
    return RetinexResult(
        out_u8,
        out_float,
        prior,
        large,
        small,
        gradient2,
        texture2,
        weight,
        illumination,
        reflectance,
        noise,
        white,
        factor,
    )


def fixed_scale_retinex(bgr_u8: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """The "without multi-scale weights" ablation: one guided filter at a fixed scale, no ω.

    L = GF(V) at ``fixed_radius``/``fixed_eps``; reflectance, reconstruction and processing
    resolution as in the proposed method, so the difference measures eq. 2's weighting alone.
    """
    factor = processing_factor(bgr_u8.shape[0], params)
    frame = _processing_frame(bgr_u8, factor)
    prior = illumination_prior(frame)
    noise = noise_sigma(cv2.extractChannel(frame, 1))
    coeff_a, coeff_b, _, _ = guided_coefficients(prior, params.fixed_radius, params.fixed_eps * noise * noise)
    # One scale: ω ≡ 0 with the chroma window at the fixed radius too.
    single = replace(params, chroma_radius=params.fixed_radius)
    reflectance = optimised_reflectance(frame, prior, prior, np.zeros_like(prior), single)
    white = white_point(coeff_a * prior + coeff_b, params)
    return _transfer(bgr_u8, coeff_a, coeff_b, reflectance, params, white, prior, keep_float=False)[0]


def enhance_low_light(bgr_u8: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """Section 3.2 RGB enhancement of an HxWx3 uint8 BGR frame (same size, uint8 BGR)."""
    return multiscale_retinex(bgr_u8, params).output
