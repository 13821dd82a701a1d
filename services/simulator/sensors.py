"""Sensor models: what the colour, depth and thermal cameras make of the rendered scene.

- Colour: optics blur, auto-exposure with a ceiling on exposure and gain, photon shot noise
  and read noise in electrons, a tone curve (gamma 2.2, steeper in low light), 8-bit BGR.
- Depth (Azure Kinect NFOV-like): z in millimetres with noise growing with the square of
  distance, invalid pixels at depth edges and in one-sided shadow bands, range limits,
  material dropouts (glass, dark hair, screens), the corners outside the NFOV field, and
  hole blobs under the depth-holes condition. uint16, 0 = no measurement.
- Thermal (radiometric microbolometer): optics blur, NETD noise, fixed column pattern,
  vignetting and a drifting offset between flat-field corrections. Float32 degrees Celsius.

Random numbers come from large pre-drawn banks sliced at per-frame random offsets: drawing
700k fresh normals per frame would cost more than rendering the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from services.common.calibration import Intrinsics
from services.simulator.rig import DEPTH_RANGE_MM

_BANK_SIZE = 1 << 23  # 8.4M values: more than one 1920x1080x3 frame
_BANK_SEED = 20260311


@lru_cache(maxsize=1)
def _normal_bank() -> np.ndarray:
    bank = np.random.default_rng(_BANK_SEED).standard_normal(_BANK_SIZE, dtype=np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=1)
def _uniform_bank() -> np.ndarray:
    bank = np.random.default_rng(_BANK_SEED + 1).random(_BANK_SIZE, dtype=np.float32)
    bank.setflags(write=False)
    return bank


def normal_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values of ``shape`` (read-only view into the bank)."""
    n = int(np.prod(shape))
    if n > _BANK_SIZE:
        raise ValueError(f"noise field of {n} values exceeds the bank ({_BANK_SIZE})")
    offset = int(rng.integers(0, _BANK_SIZE - n + 1))
    return _normal_bank()[offset : offset + n].reshape(shape)


def uniform_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    offset = int(rng.integers(0, _BANK_SIZE - n + 1))
    return _uniform_bank()[offset : offset + n].reshape(shape)


# --- colour --------------------------------------------------------------------------------------

RGB_TARGET_MEAN = 0.2  # linear mean the auto-exposure aims for
RGB_TARGET_ELECTRONS = 1500.0  # electrons collected by a mean pixel at full exposure
RGB_MIN_MEAN_AT_FULL_EXPOSURE = 0.15  # darker scenes hit the exposure ceiling
RGB_MAX_EXTRA_GAIN = 2.0
RGB_READ_NOISE_E = 3.5


@dataclass(frozen=True)
class Exposure:
    electrons_per_unit: float
    gain: float  # linear output per electron
    gamma: float


def auto_exposure(mean_radiance: float, low_light: bool) -> Exposure:
    mean = max(mean_radiance, 1e-6)
    e_max = RGB_TARGET_ELECTRONS / RGB_MIN_MEAN_AT_FULL_EXPOSURE
    e = min(e_max, RGB_TARGET_ELECTRONS / mean)
    base_gain = RGB_TARGET_MEAN / RGB_TARGET_ELECTRONS
    gain = min(RGB_MAX_EXTRA_GAIN * base_gain, RGB_TARGET_MEAN / (mean * e))
    return Exposure(e, gain, 2.4 if low_light else 2.2)


def _blur3(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (3, 3), sigma, borderType=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class RgbStats:
    """How well the colour camera was exposed: signal-to-noise of a mean pixel, brightness reached."""

    snr_db: float
    brightness: float  # achieved mean / auto-exposure target (1 = fully exposed)

    @property
    def quality(self) -> str:
        if self.snr_db >= 28.0 and self.brightness >= 0.8:
            return "good"
        if self.snr_db >= 20.0 and self.brightness >= 0.35:
            return "fair"
        return "poor"


def rgb_stats(exposure: Exposure, mean_radiance: float, noise_scale: float = 1.0) -> RgbStats:
    signal = mean_radiance * exposure.electrons_per_unit
    noise = (
        math.sqrt(signal * noise_scale**2 + (RGB_READ_NOISE_E * noise_scale) ** 2)
        if noise_scale > 0
        else 1e-9
    )
    snr = 20.0 * math.log10(max(signal, 1e-9) / max(noise, 1e-9))
    return RgbStats(snr_db=snr, brightness=signal * exposure.gain / RGB_TARGET_MEAN)


def expose_rgb(
    radiance: np.ndarray, rng: np.random.Generator | None, *, low_light: bool, noise_scale: float = 1.0
) -> tuple[np.ndarray, RgbStats]:
    """Linear BGR radiance HxWx3 float32 to an 8-bit BGR image; ``rng=None`` renders noise-free."""
    blurred = _blur3(radiance, 0.6)
    mean = float(np.mean(cv2.mean(blurred)[:3]))
    exposure = auto_exposure(mean, low_light)
    # In place on two frame-sized buffers: at 1920x1080 each temporary is 25 MB.
    electrons = blurred
    electrons *= np.float32(exposure.electrons_per_unit)
    if rng is not None and noise_scale > 0:
        read = RGB_READ_NOISE_E * noise_scale
        # Shot noise (Poisson, variance = signal) and read noise, as one Gaussian.
        sigma = np.maximum(electrons, 0.0)
        if noise_scale != 1.0:  # (a product by 1 is exact; skipping it saves a pass)
            sigma *= np.float32(noise_scale * noise_scale)
        sigma += np.float32(read * read)
        cv2.sqrt(sigma, sigma)
        sigma *= normal_field(rng, electrons.shape)
        electrons += sigma
    value = electrons
    value *= np.float32(exposure.gain)
    np.clip(value, 0.0, 1.0, out=value)
    toned = cv2.pow(value, 1.0 / exposure.gamma, value)
    stats = rgb_stats(exposure, mean, noise_scale if rng is not None else 0.0)
    return cv2.convertScaleAbs(toned, alpha=255.0), stats


# --- depth ---------------------------------------------------------------------------------------


def depth_noise_sigma_mm(z_mm: np.ndarray | float, scale: float = 1.0) -> np.ndarray | float:
    """Random depth error (1 sigma) of the simulated ToF sensor at distance ``z_mm``."""
    z_m = np.asarray(z_mm, dtype=np.float32) / np.float32(1000.0)
    return (np.float32(1.5) + np.float32(0.6) * z_m * z_m) * np.float32(scale)


@lru_cache(maxsize=8)
def nfov_mask(intrinsics: Intrinsics) -> np.ndarray:
    """Pixels inside the NFOV illumination field (its corners are cut off, as on the device)."""
    w, h = intrinsics.width, intrinsics.height
    x = (np.arange(w) - intrinsics.cx) / (w / 2.0)
    y = (np.arange(h) - intrinsics.cy) / (h / 2.0)
    inside = np.abs(x)[None, :] + np.abs(y)[:, None] <= 1.55
    inside.setflags(write=False)
    return inside


def depth_holes_mask(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Blobs of missing depth for one clip (absorbing materials, multipath, sensor faults)."""
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        centre = (int(rng.uniform(0, w)), int(rng.uniform(h * 0.2, h)))
        axes = (int(rng.uniform(6, 30) * w / 320), int(rng.uniform(4, 18) * h / 288))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def sense_depth(
    z_mm: np.ndarray,
    dropout_probability: np.ndarray,
    rng: np.random.Generator,
    intrinsics: Intrinsics,
    *,
    holes: np.ndarray | None = None,
    noise_scale: float = 1.0,
    edge_dropout: float = 0.6,
) -> np.ndarray:
    """Camera z (mm, float32) to a Kinect-like uint16 depth map (0 = invalid)."""
    z = np.ascontiguousarray(z_mm, dtype=np.float32)
    finite = np.isfinite(z)
    z = np.where(finite, z, np.float32(0.0))
    noisy = z + depth_noise_sigma_mm(z, noise_scale) * normal_field(rng, z.shape)
    # Flying pixels: the sensor's filter drops mixed returns on the far side of depth edges.
    behind = z - cv2.erode(z, np.ones((3, 3), np.uint8))
    edge = behind > (np.float32(40.0) + np.float32(0.015) * z)
    invalid = edge & (uniform_field(rng, z.shape) < edge_dropout)
    # One-sided shadow band: surfaces just left of a nearer object get no returned light.
    right_min = cv2.erode(z, np.ones((1, 2), np.uint8), anchor=(0, 0))
    invalid |= right_min < z - np.float32(250.0)
    invalid |= uniform_field(rng, z.shape) < dropout_probability
    invalid |= (z < DEPTH_RANGE_MM[0]) | (z > DEPTH_RANGE_MM[1]) | ~finite
    invalid |= ~nfov_mask(intrinsics)
    if holes is not None:
        invalid |= holes
    out = np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)
    out[invalid] = 0
    return out


# --- thermal -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThermalSensorState:
    """Per-clip thermal camera state: fixed pattern, vignetting and drift parameters."""

    column_offsets: np.ndarray  # [W] float32 °C
    vignette: np.ndarray  # HxW float32 °C
    drift_amplitude_c: float
    drift_period_s: float
    drift_phase: float
    ffc_interval_s: float
    ffc_ramp_c: float
    netd_c: float

    @classmethod
    def sample(
        cls, rng: np.random.Generator, size: tuple[int, int], *, drift: bool, noise_scale: float = 1.0
    ) -> ThermalSensorState:
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        return cls(
            column_offsets=(rng.normal(0.0, 0.04, w) * noise_scale).astype(np.float32),
            vignette=(r2 * np.float32(rng.uniform(-0.35, 0.1))).astype(np.float32),
            drift_amplitude_c=float(rng.uniform(0.8, 1.8) if drift else rng.uniform(0.05, 0.2)),
            drift_period_s=float(rng.uniform(20.0, 90.0)),
            drift_phase=float(rng.uniform(0, 2 * math.pi)),
            ffc_interval_s=float(rng.uniform(15.0, 60.0)),
            ffc_ramp_c=float(rng.uniform(0.3, 0.8) if drift else rng.uniform(0.0, 0.1)),
            netd_c=float(0.06 * noise_scale),
        )

    def offset_c(self, t_s: float) -> float:
        """Radiometric offset at time ``t_s``: a slow wave plus a ramp reset at each flat-field correction."""
        wave = self.drift_amplitude_c * math.sin(2 * math.pi * t_s / self.drift_period_s + self.drift_phase)
        ramp = self.ffc_ramp_c * ((t_s % self.ffc_interval_s) / self.ffc_interval_s)
        return wave + ramp


def sense_thermal(
    temperature_c: np.ndarray, rng: np.random.Generator, state: ThermalSensorState, t_s: float
) -> np.ndarray:
    """Scene temperatures (°C, float32) to a radiometric frame with the camera's errors."""
    blurred = cv2.GaussianBlur(temperature_c, (5, 5), 0.8, borderType=cv2.BORDER_REPLICATE)
    noise = normal_field(rng, blurred.shape) * np.float32(state.netd_c)
    out = blurred + noise + state.column_offsets[None, :] + state.vignette + np.float32(state.offset_c(t_s))
    return out.astype(np.float32, copy=False)
