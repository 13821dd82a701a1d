"""Section 3.2 in torch: the same math as ``services/enhancement``, batched, differentiable, GPU-capable.

Every function here mirrors one in the NumPy/OpenCV library, step for step and with the
same border rule (reflect-101), so the two agree to float32 rounding
(``tests/models/networks/test_enhancement_torch.py`` states the tolerances). The NumPy path regroups
a few products for speed (``retinex.py``'s module docstring lists them: b = mean·eps/(var+eps),
A(L) folded into the reflectance sums, ...); here they stay in the textbook form, which is
the same quantity and easier to differentiate:

- ``MultiScaleRetinex``: eqs. 1-2 (``services/enhancement/retinex.py``) on [B, 3, H, W] BGR in
  [0, 1]. eq. 2's λ1, λ2 are learnable and kept normalised (softmax of two logits, so
  λ1 + λ2 = 1 as the paper says); the Wiener scales κ_g, κ_T, the two guided-filter eps
  factors and the white target are learnable too (log / logit parametrised so they stay in
  range); γ is learnable on request. ``export_params()`` writes them back into an
  ``EnhancementParams`` (the checkpoint's enhancement.json), ``from_params`` loads one.
  ``multi_scale=False`` is the "without multi-scale weights" ablation.
- ``SingleScaleRetinex`` and ``ConventionalEnhancement``: the colour baselines the paper's
  Table 3 row 1 and Table 4 baseline use (fixed, nothing to learn).
- ``restore_depth``, ``splat_depth``, ``thermal_maps``/``remap``, ``equalise_thermal`` (CLAHE
  as OpenCV computes it), and ``TrimodalEnhancer``, the whole frame set on a device in
  batches, for the GPU benchmark. Registration tables come from the NumPy library
  (computed once per camera) and are moved to the device.

``create_enhancement(name)`` builds the module a method's config names ("mswgf",
"single_scale_gf", "retinex", "conventional"); models/networks/registry.py calls it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import torch
import torch.nn.functional as F
from torch import nn

from services.enhancement.alignment import registration_tables
from services.enhancement.params import EnhancementParams
from services.enhancement.retinex import DELTA, MIN_NOISE, MIN_WHITE, NOISE_KERNEL, WHITE_POINT_STRIDE

# section 3.2's constants: the NumPy path's (the enhancement service), never a second copy
_NOISE_KERNEL = NOISE_KERNEL.tolist()
_SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]


# --- primitives (reflect-101 borders, as OpenCV's default) ---------------------------------


def reflect_indices(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-n axis padded by ``pad`` with reflect-101, any pad (OpenCV's borderInterpolate)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-101 padding of the last two axes by any amount (F.pad's 'reflect' needs pad < size)."""
    h, w = x.shape[-2:]
    if pad_h < h and pad_w < w:
        return F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    x = x.index_select(-2, reflect_indices(h, pad_h, x.device))
    return x.index_select(-1, reflect_indices(w, pad_w, x.device))


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over (2r+1)² windows of [B, C, H, W], separable, reflect-101 border (cv2.boxFilter).

    Small windows (the section 3.2 radii are 1 to 3) sum shifted slices, which measured 1.6-4.6x
    faster than avg_pool2d forward + backward on the CPU; larger ones use avg_pool2d.
    """
    if radius <= 0:
        return x
    k = 2 * radius + 1
    x = reflect_pad(x, radius, radius)
    if radius > 4:
        x = F.avg_pool2d(x, (1, k), stride=1)
        return F.avg_pool2d(x, (k, 1), stride=1)
    h, w = x.shape[-2] - 2 * radius, x.shape[-1] - 2 * radius
    rows = x[..., :w]
    for i in range(1, k):
        rows = rows + x[..., i : i + w]
    total = rows[..., :h, :]
    for i in range(1, k):
        total = total + rows[..., i : i + h, :]
    return total * (1.0 / (k * k))


def sobel_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """3×3 Sobel derivatives of [B, 1, H, W] scaled by 1/8 (per-pixel differences), reflect-101."""
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device) / 8.0
    kernels = torch.stack([kx, kx.t()])[:, None]
    d = F.conv2d(reflect_pad(x, 1, 1), kernels)
    return d[:, :1], d[:, 1:]


def noise_sigma(green_u8: torch.Tensor) -> torch.Tensor:
    """Immerkær's noise estimate per image of [B, 1, H, W] integer grey levels 0..255; [B] in [0, 1] units."""
    b, _, h, w = green_u8.shape
    if h < 3 or w < 3:
        return torch.full((b,), MIN_NOISE, dtype=green_u8.dtype, device=green_u8.device)
    kernel = torch.tensor(_NOISE_KERNEL, dtype=green_u8.dtype, device=green_u8.device)[None, None]
    response = F.conv2d(green_u8, kernel).abs().double().sum(dim=(1, 2, 3))
    sigma = math.sqrt(math.pi / 2.0) / 6.0 * response / ((h - 2) * (w - 2)) / 255.0
    return sigma.clamp_min(MIN_NOISE).to(green_u8.dtype)


def guided_coefficients(
    prior: torch.Tensor, radius: int, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-guided filter of V [B, 1, H, W]: (mean_a, mean_b, box(V), var_w(V)); eps is [B] or scalar."""
    eps = eps.reshape(-1, 1, 1, 1) if eps.dim() else eps
    mean = box_mean(prior, radius)
    var = box_mean(prior * prior, radius) - mean * mean
    a = var / (var + eps)
    b = mean - a * mean
    return box_mean(a, radius), box_mean(b, radius), mean, var


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


# --- RGB: eqs. 1-2 -------------------------------------------------------------------------


class MultiScaleRetinex(nn.Module):
    """Retinex with multi-scale weighted guided filtering (eqs. 1-2), [B, 3, H, W] BGR in [0, 1] → same."""

    learnable = True
    # one of the two, per learn_gamma (annotations only: nn.Module keeps these out of __dict__)
    gamma_logit: nn.Parameter
    gamma_value: torch.Tensor

    def __init__(
        self, params: EnhancementParams | None = None, *, multi_scale: bool = True, learn_gamma: bool = False
    ):
        super().__init__()
        p = params or EnhancementParams()
        self.fixed = p  # radii, percentiles, limits: not learned
        self.multi_scale = multi_scale
        lam = torch.tensor([max(p.lambda1, 1e-6), max(p.lambda2, 1e-6)], dtype=torch.float32)
        self.lambda_logits = nn.Parameter(lam.log())  # eq. 2: λ = softmax(logits), λ1 + λ2 = 1
        self.log_gradient_scale = nn.Parameter(torch.tensor(math.log(p.gradient_scale)))
        self.log_texture_scale = nn.Parameter(torch.tensor(math.log(p.texture_scale)))
        self.log_small_eps = nn.Parameter(torch.tensor(math.log(p.small_eps)))
        self.log_large_eps = nn.Parameter(torch.tensor(math.log(p.large_eps)))
        self.log_fixed_eps = nn.Parameter(torch.tensor(math.log(p.fixed_eps)))
        self.white_target_logit = nn.Parameter(torch.tensor(_logit(p.white_target)))
        if learn_gamma:
            self.gamma_logit = nn.Parameter(torch.tensor(_logit(min(p.illumination_gamma, 0.999))))
        else:
            self.register_buffer("gamma_value", torch.tensor(p.illumination_gamma))

    # learned scalars, in the units of EnhancementParams
    @property
    def lambdas(self) -> torch.Tensor:
        return torch.softmax(self.lambda_logits, dim=0)

    @property
    def white_target(self) -> torch.Tensor:
        return torch.sigmoid(self.white_target_logit)

    @property
    def gamma(self) -> torch.Tensor:
        return torch.sigmoid(self.gamma_logit) if hasattr(self, "gamma_logit") else self.gamma_value

    @classmethod
    def from_params(cls, params: EnhancementParams, **kwargs) -> MultiScaleRetinex:
        return cls(params, **kwargs)

    def export_params(self) -> EnhancementParams:
        """The learned values written back into EnhancementParams (the checkpoint's enhancement.json)."""
        lam = self.lambdas.detach().cpu().double()
        gamma = float(self.gamma.detach().cpu())
        return replace(
            self.fixed,
            lambda1=float(lam[0] / lam.sum()),
            lambda2=float(lam[1] / lam.sum()),
            gradient_scale=float(self.log_gradient_scale.detach().exp()),
            texture_scale=float(self.log_texture_scale.detach().exp()),
            small_eps=float(self.log_small_eps.detach().exp()),
            large_eps=float(self.log_large_eps.detach().exp()),
            fixed_eps=float(self.log_fixed_eps.detach().exp()),
            white_target=float(self.white_target.detach()),
            illumination_gamma=1.0 if gamma > 0.9995 else gamma,
        )

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        return self.forward_details(colour)["output"]

    def _prior(self, colour: torch.Tensor) -> torch.Tensor:
        return colour.amax(dim=1, keepdim=True)

    def _white_point(self, illumination: torch.Tensor) -> torch.Tensor:
        sample = illumination[:, 0, ::WHITE_POINT_STRIDE, ::WHITE_POINT_STRIDE].flatten(1)
        return torch.quantile(sample, self.fixed.white_percentile / 100.0, dim=1).clamp_min(MIN_WHITE)

    def _gain(self, illumination: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
        """A(L)/L with A(L) = white_target·(L/P)^γ, clamped to [1, max_gain]."""
        level = illumination.clamp_min(DELTA)
        adjusted = self.white_target * (level / white.reshape(-1, 1, 1, 1)).pow(self.gamma)
        return (adjusted / level).clamp(1.0, self.fixed.max_gain)

    def _reflectance(self, colour, prior, local_prior, weight) -> torch.Tensor:
        """R̃ = ω·box_s(I)/(box_s(V)+δ) + (1−ω)·box_c(I)/(box_c(V)+δ)."""
        p = self.fixed
        fine = box_mean(colour, p.small_radius) / (local_prior + DELTA)
        coarse = box_mean(colour, p.chroma_radius) / (box_mean(prior, p.chroma_radius) + DELTA)
        return coarse + weight * (fine - coarse)

    def forward_details(self, colour: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output and intermediates (names as in retinex.RetinexResult) of a batch [B, 3, H, W]."""
        p = self.fixed
        full = colour
        height, width = colour.shape[-2:]
        factor = max(1, round(height / p.processing_height))
        if factor > 1:  # processing resolution: the uint8 frame area-averaged s×s, as cv2.INTER_AREA
            size = (height // factor, width // factor)
            colour = torch.round(F.interpolate(colour * 255.0, size=size, mode="area")) / 255.0
        prior = self._prior(colour)
        noise = noise_sigma(torch.round(colour[:, 1:2] * 255.0))
        var_n = noise * noise
        if self.multi_scale:
            coeff_a, coeff_b, weight, details = self._multi_scale(prior, noise, var_n)
            reflectance = self._reflectance(colour, prior, details["local_prior"], weight)
        else:
            eps = self.log_fixed_eps.exp() * var_n
            coeff_a, coeff_b, _, _ = guided_coefficients(prior, p.fixed_radius, eps)
            weight = torch.zeros_like(prior)
            reflectance = box_mean(colour, p.fixed_radius) / (box_mean(prior, p.fixed_radius) + DELTA)
            details = {}
        illumination = coeff_a * prior + coeff_b
        white = self._white_point(illumination)
        if factor > 1:
            coeff_a, coeff_b, reflectance = (
                F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
                for x in (coeff_a, coeff_b, reflectance)
            )
            full_illumination = coeff_a * self._prior(full) + coeff_b
        else:
            full_illumination = illumination
        adjusted = full_illumination * self._gain(full_illumination, white)  # A(L)
        output = (reflectance * adjusted).clamp(0.0, 1.0)  # eq. 1: I_out = R̃·A(L)
        return {
            "output": output,
            "prior": prior,
            "illumination": illumination,
            "weight": weight,
            "reflectance": reflectance,
            "noise": noise,
            "white": white,
            **details,
        }

    def _multi_scale(self, prior, noise, var_n):
        p = self.fixed
        nv = noise.reshape(-1, 1, 1, 1)
        if p.large_subsample > 1:
            h, w = prior.shape[-2:]
            coarse = F.interpolate(prior, size=(h // p.large_subsample, w // p.large_subsample), mode="area")
            window_noise_var = (nv / p.large_subsample) ** 2
        else:
            coarse, window_noise_var = prior, nv * nv
        a_l, b_l, _, var_l = guided_coefficients(coarse, p.large_radius, self.log_large_eps.exp() * var_n)
        texture2 = (var_l - window_noise_var).clamp_min(0.0) / (nv * nv)
        if p.large_subsample > 1:
            size = prior.shape[-2:]
            a_l, b_l, texture2 = (
                F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                for x in (a_l, b_l, texture2)
            )
        a_s, b_s, local_prior, _ = guided_coefficients(
            prior, p.small_radius, self.log_small_eps.exp() * var_n
        )
        large = a_l * prior + b_l
        small = a_s * prior + b_s
        gx, gy = sobel_xy(small)
        gradient2 = (gx * gx + gy * gy) / (nv * nv)
        lam = self.lambdas
        g_hat = gradient2 / (gradient2 + self.log_gradient_scale.exp() ** 2)
        t_hat = texture2 / (texture2 + self.log_texture_scale.exp() ** 2)
        weight = lam[0] * g_hat + lam[1] * t_hat  # eq. 2
        coeff_a = a_l + weight * (a_s - a_l)  # L = ω·L_s + (1−ω)·L_l as A·V + B
        coeff_b = b_l + weight * (b_s - b_l)
        details = {"large": large, "small": small, "gradient2": gradient2, "texture2": texture2}
        details["local_prior"] = local_prior
        return coeff_a, coeff_b, weight, details


class SingleScaleRetinex(nn.Module):
    """SSR baseline (services/enhancement/baselines.py): log I − log(G_σ ∗ I), simplest colour balance."""

    learnable = False

    def __init__(self, sigma: float = 80.0, clip_percent: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.clip_percent = clip_percent

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        image = colour * 255.0 + 1.0
        retinex = image.log() - gaussian_surround(image, self.sigma).log()
        return simplest_colour_balance(retinex, self.clip_percent)


def gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """OpenCV's float Gaussian: ksize = round(8σ + 1) | 1, normalised."""
    ksize = round(sigma * 8 + 1) | 1
    x = torch.arange(ksize, dtype=torch.float64, device=device) - (ksize - 1) / 2
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    return (k / k.sum()).to(dtype)


def gaussian_surround(image: torch.Tensor, sigma: float, large_sigma: float = 20.0) -> torch.Tensor:
    """G_σ ∗ image with reflect-101 borders; σ ≥ 20 on an area-downsampled copy (as the NumPy baseline)."""
    h, w = image.shape[-2:]
    factor = max(1.0, sigma / large_sigma)
    small = image
    if factor > 1.0:
        small = F.interpolate(image, size=(max(1, round(h / factor)), max(1, round(w / factor))), mode="area")
    s = sigma / factor
    kernel = gaussian_kernel(s, image.dtype, image.device)
    r = kernel.numel() // 2
    c = small.shape[1]
    blurred = F.conv2d(reflect_pad(small, 0, r), kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    blurred = F.conv2d(reflect_pad(blurred, r, 0), kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    if factor > 1.0:
        blurred = F.interpolate(blurred, size=(h, w), mode="bilinear", align_corners=False)
    return blurred


def simplest_colour_balance(image: torch.Tensor, clip_percent: float) -> torch.Tensor:
    """Per image and channel: clip ``clip_percent`` % at each end, stretch to [0, 1]."""
    flat = image.flatten(2)
    q = torch.tensor(
        [clip_percent / 100.0, 1.0 - clip_percent / 100.0], dtype=image.dtype, device=image.device
    )
    low, high = torch.quantile(flat, q, dim=2)  # [B, C] each
    low, high = low[..., None, None], high[..., None, None]
    return ((image - low) / (high - low).clamp_min(1e-6)).clamp(0.0, 1.0)


class ConventionalEnhancement(nn.Module):
    """Table 4's conventional colour enhancement: global histogram equalisation of luma (YCrCb)."""

    learnable = False

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        b, g, r = (colour[:, i : i + 1] * 255.0 for i in range(3))
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cr, cb = (r - y) * 0.713, (b - y) * 0.564
        y8 = y.round().clamp(0, 255)
        lut = equalisation_lut(y8)
        y_eq = torch.gather(lut, 1, y8.long().flatten(1)).view_as(y)
        r, g, b = y_eq + 1.403 * cr, y_eq - 0.714 * cr - 0.344 * cb, y_eq + 1.773 * cb
        return (torch.cat([b, g, r], dim=1) / 255.0).clamp(0.0, 1.0)


def equalisation_lut(grey: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist's lookup table per image of [B, 1, H, W] integer levels: [B, 256] float."""
    bsz = grey.shape[0]
    levels = grey.long().flatten(1)
    hist = torch.zeros(bsz, 256, device=grey.device, dtype=torch.float64)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float64))
    total = hist.sum(dim=1, keepdim=True)
    first = (hist > 0).float().argmax(dim=1, keepdim=True)
    first_count = torch.gather(hist, 1, first)
    cdf = hist.cumsum(dim=1) - first_count
    scale = 255.0 / (total - first_count).clamp_min(1.0)
    lut = torch.round(cdf * scale).clamp(0, 255)
    lut = torch.where(torch.arange(256, device=grey.device)[None] <= first, torch.zeros_like(lut), lut)
    return lut.to(grey.dtype)


# --- depth: bilateral, closing, push-pull region filling ----------------------------------


def _neighbourhood(x: torch.Tensor, radius: int, mode: str) -> torch.Tensor:
    """[B, 1, H, W] → [B, (2r+1)², H, W]: each pixel's window; ``mode`` "reflect" (101) or "replicate"."""
    k = 2 * radius + 1
    h, w = x.shape[-2:]
    padded = (
        reflect_pad(x, radius, radius) if mode == "reflect" else F.pad(x, (radius,) * 4, mode="replicate")
    )
    return F.unfold(padded, k).view(x.shape[0], k * k, h, w)


def bilateral_depth(depth: torch.Tensor, params: EnhancementParams) -> torch.Tensor:
    """cv2.bilateralFilter of float32 depth [B, 1, H, W]: circular window of radius d/2, exact exp."""
    radius = params.bilateral_diameter // 2
    k = 2 * radius + 1
    offsets = torch.arange(k, device=depth.device, dtype=depth.dtype) - radius
    r2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).flatten()
    inside = r2 <= radius * radius
    space = torch.exp(-0.5 * r2 / params.bilateral_sigma_px**2) * inside
    window = _neighbourhood(depth, radius, "reflect")
    weight = space.view(1, -1, 1, 1) * torch.exp(-0.5 * ((window - depth) / params.bilateral_sigma_mm) ** 2)
    return (weight * window).sum(dim=1, keepdim=True) / weight.sum(dim=1, keepdim=True)


def _ellipse(k: int, device: torch.device) -> torch.Tensor:
    # OpenCV's own structuring element, so both paths close with the same shape
    return torch.from_numpy(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).to(device).flatten().bool()


def close_small_holes(depth: torch.Tensor, holes: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Morphological closing (elliptic kernel, replicate border) taken only at hole pixels."""
    mask = _ellipse(kernel_size, depth.device).view(1, -1, 1, 1)
    radius = kernel_size // 2
    dilated = (
        _neighbourhood(depth, radius, "replicate").masked_fill(~mask, float("-inf")).amax(dim=1, keepdim=True)
    )
    closed = (
        _neighbourhood(dilated, radius, "replicate")
        .masked_fill(~mask, float("inf"))
        .amin(dim=1, keepdim=True)
    )
    return torch.where(holes, closed, depth)


def fill_regions(depth: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Push-pull filling (Gortler et al. 1996) of ``holes`` in [B, 1, H, W], per image."""
    weight = (~holes).to(depth.dtype)
    levels = [(depth * weight, weight)]
    while bool((levels[-1][1] <= 0).any()) and min(levels[-1][1].shape[-2:]) > 1:
        value, w = levels[-1]
        h, wd = value.shape[-2:]
        size = (max(1, (h + 1) // 2), max(1, (wd + 1) // 2))
        levels.append(
            (F.interpolate(value, size=size, mode="area"), F.interpolate(w, size=size, mode="area"))
        )
    value, w = levels[-1]
    filled = value / w.clamp_min(1e-12)
    for value, w in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=value.shape[-2:], mode="bilinear", align_corners=False)
        trust = w.clamp(max=1.0)
        own = torch.where(w > 0, value / w.clamp_min(1e-12), torch.zeros_like(value))
        filled = own * trust + coarse * (1.0 - trust)
    return torch.where(holes, filled, depth)


def restore_depth(depth_mm: torch.Tensor, params: EnhancementParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilateral → closing → push-pull of [B, 1, H, W] millimetres; returns (depth, filled mask)."""
    valid = (depth_mm >= params.depth_min_mm) & (depth_mm <= params.depth_max_mm)
    depth = torch.where(valid, depth_mm, torch.zeros_like(depth_mm))
    depth = torch.where(valid, bilateral_depth(depth, params), torch.zeros_like(depth))
    depth = close_small_holes(depth, ~valid, params.closing_kernel)
    has_depth = valid.flatten(1).any(dim=1).view(-1, 1, 1, 1)
    remaining = (depth <= 0) & has_depth
    if bool(remaining.any()):
        depth = fill_regions(depth, remaining)
    depth = torch.where(has_depth, depth, torch.zeros_like(depth))
    return depth, (~valid) & (depth > 0)


# --- registration and thermal ----------------------------------------------------------------


_TABLE_ARRAYS = (
    "depth_ray_z",
    "depth_grid0_x",
    "depth_grid0_y",
    "depth_grid1_x",
    "depth_grid1_y",
    "thermal_map0_x",
    "thermal_map0_y",
    "thermal_map1_x",
    "thermal_map1_y",
)


class RegistrationTensors(nn.Module):
    """The NumPy library's per-camera tables (alignment.registration_tables) as device buffers."""

    # buffers registered in __init__ (_TABLE_ARRAYS, then the fields of view)
    depth_ray_z: torch.Tensor
    depth_grid0_x: torch.Tensor
    depth_grid0_y: torch.Tensor
    depth_grid1_x: torch.Tensor
    depth_grid1_y: torch.Tensor
    thermal_map0_x: torch.Tensor
    thermal_map0_y: torch.Tensor
    thermal_map1_x: torch.Tensor
    thermal_map1_y: torch.Tensor
    fov_grid: torch.Tensor
    fov: torch.Tensor

    def __init__(self, tables) -> None:
        super().__init__()
        for name in _TABLE_ARRAYS:
            self.register_buffer(name, torch.from_numpy(getattr(tables, name)).float(), persistent=False)
        self.register_buffer("fov_grid", torch.from_numpy(tables.depth_field_of_view_grid), persistent=False)
        self.register_buffer("fov", torch.from_numpy(tables.depth_field_of_view), persistent=False)
        self.depth_t_z = tables.depth_t_z
        self.inverse_working_distance = tables.inverse_working_distance
        self.grid_size = (tables.grid.height, tables.grid.width)
        self.analysis_size = (tables.analysis.height, tables.analysis.width)


def splat_depth(depth: torch.Tensor, tables: RegistrationTensors) -> torch.Tensor:
    """Z-buffered forward projection of [B, 1, h, w] sensor depth onto the colour splat grid."""
    b = depth.shape[0]
    gh, gw = tables.grid_size
    z = depth[:, 0]
    z_rgb = z * tables.depth_ray_z + tables.depth_t_z
    keep = (z > 0) & (z_rgb > 1.0)
    t = (1.0 / tables.inverse_working_distance) / z.clamp_min(1e-6)  # q / q_wd
    u = tables.depth_grid0_x + t * (tables.depth_grid1_x - tables.depth_grid0_x)
    v = tables.depth_grid0_y + t * (tables.depth_grid1_y - tables.depth_grid0_y)
    ui, vi = torch.floor(u + 0.5).long(), torch.floor(v + 0.5).long()
    keep &= (ui >= 0) & (ui < gw) & (vi >= 0) & (vi < gh)
    cells = (vi * gw + ui).clamp(0, gh * gw - 1) + torch.arange(b, device=depth.device).view(-1, 1, 1) * (
        gh * gw
    )
    values = torch.where(keep, z_rgb, torch.full_like(z_rgb, float("inf")))
    zbuffer = torch.full((b * gh * gw,), float("inf"), dtype=depth.dtype, device=depth.device)
    zbuffer.scatter_reduce_(0, cells.flatten(), values.flatten(), reduce="amin", include_self=True)
    zbuffer = torch.where(torch.isinf(zbuffer), torch.zeros_like(zbuffer), zbuffer)
    return zbuffer.view(b, 1, gh, gw)


def thermal_maps(depth_rgb: torch.Tensor, tables: RegistrationTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Thermal pixel coordinates of each analysis pixel via registered depth (0: working distance)."""
    q = torch.where(
        depth_rgb > 0,
        1.0 / depth_rgb.clamp_min(1e-6),
        torch.full_like(depth_rgb, tables.inverse_working_distance),
    )
    t = (q / tables.inverse_working_distance)[:, 0]
    map_x = tables.thermal_map0_x + t * (tables.thermal_map1_x - tables.thermal_map0_x)
    map_y = tables.thermal_map0_y + t * (tables.thermal_map1_y - tables.thermal_map0_y)
    return map_x, map_y


def remap(
    image: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor, border: torch.Tensor
) -> torch.Tensor:
    """Bilinear cv2.remap of [B, C, h, w] at pixel coordinates [B, H, W], constant border value [B]."""
    h, w = image.shape[-2:]
    grid = torch.stack([2.0 * map_x / max(w - 1, 1) - 1.0, 2.0 * map_y / max(h - 1, 1) - 1.0], dim=-1)
    border = border.view(-1, 1, 1, 1)
    sampled = F.grid_sample(image - border, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled + border


def temperature_window(thermal_c: torch.Tensor, params: EnhancementParams) -> tuple[torch.Tensor, ...]:
    """(low, high, median) °C per image of [B, 1, H, W], widened to thermal_min_span_c."""
    sample = thermal_c[:, 0, ::2, ::2].flatten(1)
    q = torch.tensor(
        [params.thermal_low_percentile / 100, 0.5, params.thermal_high_percentile / 100],
        dtype=thermal_c.dtype,
        device=thermal_c.device,
    )
    low, median, high = torch.quantile(sample, q, dim=1)
    centre, span = 0.5 * (low + high), (high - low).clamp_min(params.thermal_min_span_c)
    narrow = (high - low) < params.thermal_min_span_c
    low = torch.where(narrow, centre - 0.5 * span, low)
    high = torch.where(narrow, centre + 0.5 * span, high)
    return low, high, median


def clahe(grey: torch.Tensor, clip_limit: float, tiles: int) -> torch.Tensor:
    """OpenCV's CLAHE of [B, 1, H, W] integer levels 0..255 (H, W divisible by ``tiles``); float levels."""
    b, _, h, w = grey.shape
    if h % tiles or w % tiles:
        raise ValueError(f"CLAHE here needs the image ({w}x{h}) to divide into {tiles}x{tiles} tiles")
    th, tw = h // tiles, w // tiles
    area = th * tw
    levels = grey.long().view(b, tiles, th, tiles, tw).permute(0, 1, 3, 2, 4).reshape(b, tiles * tiles, area)
    hist = torch.zeros(b, tiles * tiles, 256, device=grey.device, dtype=torch.long)
    hist.scatter_add_(2, levels, torch.ones_like(levels))
    limit = max(int(clip_limit * area / 256), 1)
    excess = (hist - limit).clamp_min(0).sum(dim=2, keepdim=True)
    hist = hist.clamp(max=limit) + excess // 256
    residual = excess % 256  # OpenCV hands the remainder out one by one, every (256 // residual)-th bin
    step = (256 // residual.clamp_min(1)).clamp_min(1)
    index = torch.arange(256, device=grey.device).view(1, 1, -1)
    hist = hist + ((index % step == 0) & (index // step < residual)).long()
    lut = torch.round(hist.cumsum(dim=2).double() * (255.0 / area)).clamp(0, 255).float()  # [B, T², 256]
    lut = lut.view(b, tiles, tiles, 256)
    # Bilinear blend of the four nearest tiles' mappings, as CLAHE_Interpolation_Body.
    ys = torch.arange(h, device=grey.device, dtype=torch.float32) * (1.0 / th) - 0.5
    xs = torch.arange(w, device=grey.device, dtype=torch.float32) * (1.0 / tw) - 0.5
    y1, x1 = ys.floor(), xs.floor()
    ya, xa = ys - y1, xs - x1
    y1i, x1i = y1.long(), x1.long()
    y2i, x2i = (y1i + 1).clamp(max=tiles - 1), (x1i + 1).clamp(max=tiles - 1)
    y1i, x1i = y1i.clamp(min=0), x1i.clamp(min=0)
    v = grey.long()[:, 0]
    bi = torch.arange(b, device=grey.device).view(-1, 1, 1)

    def at(ty, tx):
        return lut[bi, ty.view(1, -1, 1), tx.view(1, 1, -1), v]

    top = at(y1i, x1i) * (1 - xa) + at(y1i, x2i) * xa
    bottom = at(y2i, x1i) * (1 - xa) + at(y2i, x2i) * xa
    out = top * (1 - ya.view(-1, 1)) + bottom * ya.view(-1, 1)
    return torch.round(out).clamp(0, 255)[:, None]


def equalise_thermal(thermal_c: torch.Tensor, params: EnhancementParams) -> tuple[torch.Tensor, torch.Tensor]:
    """CLAHE view (float levels 0..255) and median °C per image, as thermal.equalise_thermal."""
    low, high, median = temperature_window(thermal_c, params)
    scale = (255.0 / (high - low)).view(-1, 1, 1, 1)
    display = torch.round((thermal_c - low.view(-1, 1, 1, 1)).clamp_min(0.0) * scale).clamp(0, 255)
    return clahe(display, params.clahe_clip_limit, params.clahe_tiles), median


class TrimodalEnhancer(nn.Module):
    """Section 3.2 for a batch of frame sets of one camera on a device (the GPU benchmark's path).

    forward(rgb [B, 3, H, W] BGR 0..1 at the colour sensor's size, depth [B, 1, h, w] mm float,
    thermal [B, 1, h', w'] °C) → dict of rgb [B, 3, Ha, Wa], depth_mm [B, 1, Ha, Wa],
    thermal_c [B, 1, Ha, Wa], thermal_equalised [B, 1, Ha, Wa] (levels 0..255), at the analysis size.
    """

    def __init__(self, calibration, analysis_size: tuple[int, int], params: EnhancementParams | None = None):
        super().__init__()
        self.params = params or EnhancementParams()
        self.retinex = MultiScaleRetinex(self.params)
        self.tables = RegistrationTensors(registration_tables(calibration, tuple(analysis_size)))

    def forward(
        self, rgb: torch.Tensor, depth: torch.Tensor, thermal: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ah, aw = self.tables.analysis_size
        if rgb.shape[-2:] != (ah, aw):
            shrink = rgb.shape[-2] > ah
            rgb = (
                torch.round(
                    F.interpolate(rgb * 255.0, size=(ah, aw), mode="area" if shrink else "bilinear") / 1.0
                )
                / 255.0
            )
        colour = self.retinex(rgb)
        restored, _ = restore_depth(depth, self.params)
        grid = splat_depth(restored, self.tables)
        fov = self.tables.fov_grid.view(1, 1, *self.tables.grid_size)
        grid = close_small_holes(grid, (grid <= 0) & fov, 3)
        large_holes = (grid <= 0) & fov & (depth.flatten(1) > 0).any(dim=1).view(-1, 1, 1, 1)
        if bool(large_holes.any()):
            grid = fill_regions(grid, large_holes)
        registered = F.interpolate(grid, size=(ah, aw), mode="nearest")
        equalised, ambient = equalise_thermal(thermal, self.params)
        map_x, map_y = thermal_maps(registered, self.tables)
        return {
            "rgb": colour,
            "depth_mm": registered,
            "thermal_c": remap(thermal, map_x, map_y, ambient),
            "thermal_equalised": remap(equalised, map_x, map_y, torch.zeros_like(ambient)),
        }


def create_enhancement(name: str, params: EnhancementParams | None = None) -> nn.Module:
    """The colour enhancement of a method's config: mswgf, single_scale_gf, retinex or conventional."""
    if name == "mswgf":
        return MultiScaleRetinex(params)
    if name == "single_scale_gf":
        return MultiScaleRetinex(params, multi_scale=False)
    if name == "retinex":
        return SingleScaleRetinex()
    if name == "conventional":
        return ConventionalEnhancement()
    raise ValueError(
        f"unknown enhancement {name!r}: mswgf, single_scale_gf, retinex, conventional or identity"
    )
