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
processing pixels. The torch twin (``models/networks/enhancement.py``) computes the same steps.

The colour planes are handled one at a time (``cv2.split``), so per-pixel factors never
have to be broadcast over three channels. Where the frame is processed at its own
resolution (s = 1), steps 5 and 6 are one weighted sum per plane: R̃_c·A(L) =
box_s(I_c)·ω·A(L)/(box_s(V)+δ) + box_c(I_c)·(1−ω)·A(L)/(box_c(V)+δ), with the constants
folded into the two per-pixel factors. ``enhance_low_light`` (what the service runs) skips
the intermediates only analysis needs (L_l as an image, R̃ as an image); its output is
``multiscale_retinex``'s, bit for bit (tested). The arithmetic is regrouped in a few places
(b = mean·eps/(var+eps) for mean − a·mean; σ folded into the Sobel scale; L = L_l + ω·(L_s −
L_l) for A·V + B at s = 1): the same quantities to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.enhancement.guided_filter import box_mean, window_sums
from services.enhancement.params import EnhancementParams
from services.enhancement.quantiles import percentile

# δ: keeps ratios finite in black regions (1/255 is one grey level).
DELTA = 1.0 / 255.0
# The smallest noise level assumed (a quarter of a grey level): a clean frame still gets a
# guided filter that smooths quantisation steps, and no division by zero.
MIN_NOISE = 1.0 / 1024.0
# The darkest white point assumed: below it the frame counts as black and gets max_gain.
MIN_WHITE = 1.0 / 255.0
# Immerkær's mask: the difference of two Laplacians, zero on locally planar image content.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
# ... which is separable: [1, −2, 1] along rows, then along columns.
_NOISE_TAPS = np.array([1, -2, 1], dtype=np.float32)
# The white point is a percentile over every 4th pixel in each direction: robust and cheap.
WHITE_POINT_STRIDE = 4

_BORDER = cv2.BORDER_REFLECT_101


def processing_factor(height: int, params: EnhancementParams) -> int:
    """Integer s: filtering runs on the frame area-averaged s×s (about ``processing_height`` lines)."""
    return max(1, round(height / params.processing_height))


def colour_planes(bgr_u8: np.ndarray) -> list[np.ndarray]:
    """The B, G and R planes of an HxWx3 uint8 frame (contiguous HxW uint8 each)."""
    return list(cv2.split(bgr_u8))


def prior_of_planes(planes: list[np.ndarray]) -> np.ndarray:
    """V = max(B, G, R) as float32 in [0, 1] (HxW), from the three uint8 planes."""
    b, g, r = planes
    return np.multiply(cv2.max(cv2.max(b, g), r), np.float32(1.0 / 255.0), dtype=np.float32)


def noise_sigma(channel_u8: np.ndarray) -> float:
    """Standard deviation of the noise in one uint8 channel, in [0, 1] units, floored at MIN_NOISE.

    Immerkær, "Fast noise variance estimation", CVIU 64(2), 1996:
    σ = sqrt(π/2) / (6·(W−2)·(H−2)) · Σ |I ∗ N| over the interior pixels.
    """
    h, w = channel_u8.shape
    if h < 3 or w < 3:
        return MIN_NOISE
    # Integer responses (|I ∗ N| ≤ 16·255) are exact in int16, whatever the order of the sums.
    response = cv2.sepFilter2D(channel_u8, cv2.CV_16S, _NOISE_TAPS, _NOISE_TAPS, borderType=_BORDER)
    total = cv2.norm(response[1:-1, 1:-1], cv2.NORM_L1)
    sigma = np.sqrt(np.pi / 2.0) / 6.0 * total / ((h - 2) * (w - 2)) / 255.0
    return max(float(sigma), MIN_NOISE)


def guided_coefficients(
    prior: np.ndarray, radius: int, eps: float, prior_sq: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Self-guided filter of V at one scale (L = mean_a·V + mean_b); also returns box(V) and var_w(V).

    ``prior_sq`` is V² when the caller has it (both scales share it).
    """
    mean = box_mean(prior, radius)
    var = box_mean(prior * prior if prior_sq is None else prior_sq, radius) - mean * mean
    denominator = var + np.float32(eps)
    a = var / denominator
    b = cv2.divide(mean, denominator, scale=eps)  # mean − a·mean = mean·eps/(var + eps)
    return box_mean(a, radius), box_mean(b, radius), mean, var


def texture_energy(window_var: np.ndarray, window_noise_var: float, noise: float) -> np.ndarray:
    """T² = max(var_w(V) − σ_w², 0)/σ²: the noise-free local variance of V in units of σ²."""
    scale = 1.0 / (noise * noise)
    texture2 = cv2.addWeighted(window_var, scale, window_var, 0.0, -window_noise_var * scale)
    return cv2.max(texture2, 0.0)


def large_scale_coefficients(
    prior: np.ndarray,
    radius: int,
    eps: float,
    subsample: int,
    noise: float,
    prior_sq: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a_l, b_l) of L_l by the fast guided filter, and T² (in units of σ²) on the same windows.

    T² = max(var_w(V) − σ_w², 0)/σ², σ_w² = σ²/s² the noise variance left after s×s averaging.
    """
    h, w = prior.shape
    if subsample > 1:
        coarse = cv2.resize(
            prior, (max(1, w // subsample), max(1, h // subsample)), interpolation=cv2.INTER_AREA
        )
        coarse_sq, noise_var = None, (noise / subsample) ** 2
    else:
        coarse, coarse_sq, noise_var = prior, prior_sq, noise * noise
    mean_a, mean_b, _, var = guided_coefficients(coarse, radius, eps, coarse_sq)
    texture2 = texture_energy(var, noise_var, noise)
    if subsample > 1:
        mean_a, mean_b, texture2 = (
            cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (mean_a, mean_b, texture2)
        )
    return mean_a, mean_b, texture2


def squared_gradient(guide: np.ndarray, noise: float) -> np.ndarray:
    """|∇G|² in units of σ², from 3×3 Sobel derivatives scaled to per-pixel differences."""
    scale = 0.125 / noise  # 1/8: Sobel's weights sum to 8 per direction; 1/σ: noise units
    gx = cv2.Sobel(guide, cv2.CV_32F, 1, 0, ksize=3, scale=scale, borderType=_BORDER)
    gy = cv2.Sobel(guide, cv2.CV_32F, 0, 1, ksize=3, scale=scale, borderType=_BORDER)
    gradient2 = cv2.multiply(gx, gx)
    cv2.accumulateSquare(gy, gradient2)
    return gradient2


def adaptive_weight(gradient2: np.ndarray, texture2: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """eq. 2: ω = λ1·ĝ + λ2·T̂ with ĝ = g²/(g²+κ_g²), T̂ = T²/(T²+κ_T²) (g, T in units of σ)."""
    shape = np.shape(gradient2)
    # OpenCV reads a 1-D array of up to 4 numbers as a scalar: work on 2-D views.
    g2, t2 = (np.asarray(x, np.float32).reshape(-1, shape[-1] if shape else 1) for x in (gradient2, texture2))
    g_hat = cv2.divide(g2, g2 + np.float32(params.gradient_scale**2))
    t_hat = cv2.divide(t2, t2 + np.float32(params.texture_scale**2))
    return cv2.addWeighted(g_hat, params.lambda1, t_hat, params.lambda2, 0.0).reshape(shape)


def white_point(illumination: np.ndarray, params: EnhancementParams) -> float:
    """P: the ``white_percentile`` of L over a strided grid, floored at MIN_WHITE."""
    sample = illumination[::WHITE_POINT_STRIDE, ::WHITE_POINT_STRIDE]
    return max(percentile(sample, params.white_percentile), MIN_WHITE)


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


@dataclass(frozen=True)
class ReflectanceMix:
    """Step 5's R̃ = ω·box_f(I)/(box_f(V)+δ) + (1−ω)·box_c(I)/(box_c(V)+δ); ω None means ω ≡ 0."""

    weight: np.ndarray | None
    fine_prior: np.ndarray | None  # box_f(V); unused when ω ≡ 0
    coarse_prior: np.ndarray  # box_c(V)
    fine_radius: int
    coarse_radius: int

    def factors(self, level: np.ndarray | None, scale: float) -> list[tuple[int, np.ndarray]]:
        """[(r, f_r)] with Σ_r window_sum_r(I_c)·f_r = 255·scale·level·R̃_c for every colour plane c.

        box_r(I_c) = window_sum_r(I_c)/(255·k_r²), k_r = 2r+1; ``level`` None stands for 1.
        """
        delta = np.float32(DELTA)
        fine_k2 = (2 * self.fine_radius + 1) ** 2
        coarse_k2 = (2 * self.coarse_radius + 1) ** 2
        if self.weight is None:
            if level is None:
                return [(self.coarse_radius, np.float32(scale / coarse_k2) / (self.coarse_prior + delta))]
            return [
                (self.coarse_radius, cv2.divide(level, self.coarse_prior + delta, scale=scale / coarse_k2))
            ]
        assert self.fine_prior is not None
        fine_share = self.weight if level is None else cv2.multiply(self.weight, level)
        coarse_share = (1.0 - self.weight) if level is None else level - fine_share
        return [
            (self.fine_radius, cv2.divide(fine_share, self.fine_prior + delta, scale=scale / fine_k2)),
            (
                self.coarse_radius,
                cv2.divide(coarse_share, self.coarse_prior + delta, scale=scale / coarse_k2),
            ),
        ]


def weighted_window_sums(planes: list[np.ndarray], terms: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
    """Per uint8 plane c: Σ_r window_sum_r(I_c)·f_r (float32 HxW each)."""
    totals = []
    for plane in planes:
        (radius, factor), *others = terms
        total = cv2.multiply(window_sums(plane, radius), factor)
        for radius, factor in others:
            cv2.accumulateProduct(window_sums(plane, radius), factor, total)
        totals.append(total)
    return totals


def _to_u8(grey_levels: np.ndarray) -> np.ndarray:
    """Round to nearest (ties to even) and saturate to 0..255, like cv2's arithmetic with dtype=CV_8U."""
    return cv2.add(grey_levels, 0.0, dtype=cv2.CV_8U)


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


def _reconstruct(
    bgr_u8: np.ndarray,
    planes: list[np.ndarray],
    illumination: np.ndarray,
    coefficients: tuple[np.ndarray, np.ndarray] | None,
    mix: ReflectanceMix,
    params: EnhancementParams,
    *,
    keep_float: bool,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Steps 5-6, I_out = R̃ · A(L) (eq. 1) at full resolution: (uint8, optional float in [0, 1], P).

    ``planes`` and ``illumination`` are at the processing resolution; ``coefficients`` (A, B of
    L = A·V + B there) are needed only when that is smaller than ``bgr_u8``.
    """
    white = white_point(illumination, params)
    h, w = bgr_u8.shape[:2]
    if planes[0].shape == (h, w):
        # Processed at its own size: A(L) folds into the two per-pixel factors of each plane's sum.
        gain = reconstruction_gain(illumination, white, params)
        if isinstance(gain, float):
            totals = weighted_window_sums(planes, mix.factors(illumination, gain))
        else:
            totals = weighted_window_sums(planes, mix.factors(illumination * gain, 1.0))
        out_u8 = cv2.merge([_to_u8(t) for t in totals])
        if not keep_float:
            return out_u8, None, white
        out_float = cv2.merge([np.clip(t * np.float32(1.0 / 255.0), 0.0, 1.0) for t in totals])
        return out_u8, out_float, white
    # Fast guided filter transfer: coefficients and R̃ upsampled, applied to the full-resolution V.
    assert coefficients is not None
    reflectance = weighted_window_sums(planes, mix.factors(None, 1.0 / 255.0))
    coeff_a, coeff_b = (cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in coefficients)
    full_planes = colour_planes(bgr_u8)
    full_illumination = coeff_a * prior_of_planes(full_planes) + coeff_b
    gain = reconstruction_gain(full_illumination, white, params)
    # A(L) = gain·L; a scalar gain goes into the multiplications' scale.
    adjusted, scale = (
        (full_illumination, gain) if isinstance(gain, float) else (full_illumination * gain, 1.0)
    )
    upsampled = [cv2.resize(r, (w, h), interpolation=cv2.INTER_LINEAR) for r in reflectance]
    out_u8 = cv2.merge([cv2.multiply(r, adjusted, scale=255.0 * scale, dtype=cv2.CV_8U) for r in upsampled])
    if not keep_float:
        return out_u8, None, white
    out_float = cv2.merge([np.clip(cv2.multiply(r, adjusted, scale=scale), 0.0, 1.0) for r in upsampled])
    return out_u8, out_float, white


@dataclass(frozen=True)
class _MultiScale:
    """Steps 1-4 at the processing resolution: what the output and every intermediate are made of."""

    factor: int
    planes: list[np.ndarray]
    prior: np.ndarray
    noise: float
    large_a: np.ndarray
    large_b: np.ndarray
    small: np.ndarray
    small_a: np.ndarray
    small_b: np.ndarray
    gradient2: np.ndarray
    texture2: np.ndarray
    weight: np.ndarray
    mix: ReflectanceMix

    def large(self) -> np.ndarray:
        return self.large_a * self.prior + self.large_b

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of L = A·V + B: A = ω·a_s + (1−ω)·a_l, B = ω·b_s + (1−ω)·b_l."""
        w = self.weight
        return self.large_a + w * (self.small_a - self.large_a), self.large_b + w * (
            self.small_b - self.large_b
        )


def _multi_scale(bgr_u8: np.ndarray, params: EnhancementParams) -> _MultiScale:
    factor = processing_factor(bgr_u8.shape[0], params)
    planes = colour_planes(_processing_frame(bgr_u8, factor))
    prior = prior_of_planes(planes)
    noise = noise_sigma(planes[1])
    var_n = noise * noise
    prior_sq = prior * prior
    a_l, b_l, texture2 = large_scale_coefficients(
        prior, params.large_radius, params.large_eps * var_n, params.large_subsample, noise, prior_sq
    )
    a_s, b_s, local_prior, _ = guided_coefficients(
        prior, params.small_radius, params.small_eps * var_n, prior_sq
    )
    small = a_s * prior + b_s
    gradient2 = squared_gradient(small, noise)
    weight = adaptive_weight(gradient2, texture2, params)  # eq. 2
    chroma_prior = (
        local_prior if params.chroma_radius == params.small_radius else box_mean(prior, params.chroma_radius)
    )
    # R̃ at the two scales mixed by the same ω: fine chroma at edges and texture, smooth in flat regions.
    mix = ReflectanceMix(weight, local_prior, chroma_prior, params.small_radius, params.chroma_radius)
    return _MultiScale(
        factor, planes, prior, noise, a_l, b_l, small, a_s, b_s, gradient2, texture2, weight, mix
    )


def _illumination(
    scales: _MultiScale,
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """L = ω·L_s + (1−ω)·L_l at the processing resolution; L_l if that needed it; (A, B) to transfer."""
    if scales.factor == 1:
        large = scales.large()
        return large + scales.weight * (scales.small - large), large, None
    coeff_a, coeff_b = scales.coefficients()
    return coeff_a * scales.prior + coeff_b, None, (coeff_a, coeff_b)


def multiscale_retinex(
    bgr_u8: np.ndarray, params: EnhancementParams, *, keep_float: bool = False
) -> RetinexResult:
    """Section 3.2 RGB enhancement (eqs. 1-2) of an HxWx3 uint8 BGR frame, with intermediates."""
    scales = _multi_scale(bgr_u8, params)
    illumination, large, coefficients = _illumination(scales)
    if large is None:
        large = scales.large()
    out_u8, out_float, white = _reconstruct(
        bgr_u8, scales.planes, illumination, coefficients, scales.mix, params, keep_float=keep_float
    )
    reflectance = cv2.merge(weighted_window_sums(scales.planes, scales.mix.factors(None, 1.0 / 255.0)))
    return RetinexResult(
        out_u8,
        out_float,
        scales.prior,
        large,
        scales.small,
        scales.gradient2,
        scales.texture2,
        scales.weight,
        illumination,
        reflectance,
        scales.noise,
        white,
        scales.factor,
    )


def enhance_low_light(bgr_u8: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """Section 3.2 RGB enhancement of an HxWx3 uint8 BGR frame (same size, uint8 BGR).

    ``multiscale_retinex(...).output`` without the intermediates that only analysis needs.
    """
    scales = _multi_scale(bgr_u8, params)
    illumination, _, coefficients = _illumination(scales)
    return _reconstruct(
        bgr_u8, scales.planes, illumination, coefficients, scales.mix, params, keep_float=False
    )[0]


def fixed_scale_retinex(bgr_u8: np.ndarray, params: EnhancementParams) -> np.ndarray:
    """The "without multi-scale weights" ablation: one guided filter at a fixed scale, no ω.

    L = GF(V) at ``fixed_radius``/``fixed_eps``; reflectance, reconstruction and processing
    resolution as in the proposed method, so the difference measures eq. 2's weighting alone.
    """
    factor = processing_factor(bgr_u8.shape[0], params)
    planes = colour_planes(_processing_frame(bgr_u8, factor))
    prior = prior_of_planes(planes)
    noise = noise_sigma(planes[1])
    coeff_a, coeff_b, mean, _ = guided_coefficients(
        prior, params.fixed_radius, params.fixed_eps * noise * noise
    )
    # One scale: ω ≡ 0 with the chroma window at the fixed radius too.
    mix = ReflectanceMix(None, None, mean, params.fixed_radius, params.fixed_radius)
    illumination = coeff_a * prior + coeff_b
    return _reconstruct(bgr_u8, planes, illumination, (coeff_a, coeff_b), mix, params, keep_float=False)[0]
