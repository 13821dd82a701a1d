"""Every tunable of section 3.2 in one frozen object, saved as the checkpoint's ``enhancement.json``.

The NumPy/OpenCV path (``services/enhancement``) and the torch path
(``models/networks/enhancement.py``) read the same object, so what training learns (eq. 2's λ1 and
λ2 and the other learnable scalars marked below) is what the service serves.

RGB filtering runs at a processing resolution of about ``processing_height`` lines (a
1920×1080 frame is area-averaged 3×3 first, see ``retinex.py``), and RGB radii are in
processing pixels, so one parameter set means the same at every analysis resolution.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# Parameters with their own range checks below; every other one must be positive.
_MAY_BE_ZERO = frozenset(
    {
        "lambda1",
        "lambda2",
        "depth_guide_radius",
        "thermal_low_percentile",
        "thermal_high_percentile",
        "colour_method",
    }
)
# The colour enhancement the service runs: section 3.2's, or one it is compared against (the paper's
# baselines, services/enhancement/baselines.py), so a baseline is served the enhancement it was trained on.
COLOUR_METHODS: tuple[str, ...] = (
    "mswgf",
    "single_scale_retinex",
    "histogram_equalisation",
    "fixed_scale_gf",
)


@dataclass(frozen=True)
class EnhancementParams:
    """Section 3.2 parameters with their defaults. (L) marks scalars the torch path learns."""

    # Which colour enhancement runs (COLOUR_METHODS); "mswgf" is section 3.2, the others are baselines.
    colour_method: str = "mswgf"

    # --- RGB: Retinex with multi-scale weighted guided filtering (eqs. 1-2) ---
    # Frames taller than this are filtered area-averaged by an integer factor (fast guided filter transfer).
    processing_height: int = 360
    # Large-scale guided filter: the global illumination distribution; runs ``large_subsample`` times
    # smaller again (fast guided filter). Every eps is in units of the frame's noise variance σ².
    large_radius: int = 2
    large_eps: float = 2.0
    large_subsample: int = 1
    # Small-scale guided filter: local illumination detail, and the edge-preserving denoiser of colour.
    small_radius: int = 1
    small_eps: float = 2.0
    # Optimised reflectance R̃_c = box(I_c)/box(V) over (2·chroma_radius+1)² windows (chroma denoising).
    chroma_radius: int = 3
    # eq. 2: ω = λ1·|∇G| + λ2·T, with λ1 + λ2 = 1 (normalised; the torch path keeps them on the simplex). (L)
    lambda1: float = 0.5
    lambda2: float = 0.5
    # |∇G| and T are in units of the noise level σ, mapped to [0, 1) by x²/(x²+κ²). (L)
    gradient_scale: float = 0.5
    texture_scale: float = 0.5
    # Reconstruction: adjusted illumination A(L) = white_target · (L/P)^γ, P the frame's illumination
    # white point (``white_percentile`` of L). (L) for white_target and illumination_gamma.
    white_percentile: float = 99.0
    white_target: float = 0.95
    illumination_gamma: float = 1.0
    # Per-pixel gain A(L)/L is kept in [1, max_gain]: never darken, and do not amplify pure noise forever.
    max_gain: float = 12.0
    # "Without multi-scale weights" ablation and baseline: one guided filter at this fixed scale.
    fixed_radius: int = 1
    fixed_eps: float = 2.0

    # --- Depth: bilateral filter, morphological closing, region filling ---
    depth_min_mm: int = 250
    depth_max_mm: int = 10000
    bilateral_diameter: int = 5
    bilateral_sigma_mm: float = 40.0
    bilateral_sigma_px: float = 2.0
    closing_kernel: int = 5
    # RGB guidance: filled depth (in the colour frame) is re-estimated by a guided filter steered by the
    # enhanced colour's luma, so invented depth follows colour edges; eps in units of the [0, 1] luma.
    # 0 turns it off (the default: it did not lower the depth error on the test scenes).
    depth_guide_radius: int = 0
    depth_guide_eps: float = 0.001

    # --- Thermal: CLAHE + pseudo-colour; radiometric °C kept beside ---
    # CLAHE works on 8 bits: the frame's [low, high] percentile window of °C is stretched to 0..255.
    thermal_low_percentile: float = 1.0
    thermal_high_percentile: float = 99.0
    # Never stretch a window narrower than this (°C): a uniform scene must not become noise.
    thermal_min_span_c: float = 4.0
    clahe_clip_limit: float = 2.0
    clahe_tiles: int = 8

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name} must be finite")
        problems += [
            f"{f.name} must be > 0"
            for f in fields(self)
            if f.name not in _MAY_BE_ZERO and not getattr(self, f.name) > 0
        ]
        if (
            self.lambda1 < 0
            or self.lambda2 < 0
            or not math.isclose(self.lambda1 + self.lambda2, 1.0, abs_tol=1e-6)
        ):
            problems.append(
                f"lambda1 and lambda2 must be >= 0 and sum to 1 (eq. 2), got {self.lambda1}, {self.lambda2}"
            )
        if not 0 < self.white_target <= 1:
            problems.append("white_target must be in (0, 1]")
        if not 50 <= self.white_percentile <= 100:
            problems.append("white_percentile must be in [50, 100]")
        if not 0 < self.illumination_gamma <= 1:
            problems.append("illumination_gamma must be in (0, 1]")
        if self.depth_guide_radius < 0:
            problems.append("depth_guide_radius must be >= 0 (0 = no RGB guidance)")
        if self.max_gain < 1:
            problems.append("max_gain must be >= 1")
        if not 0 <= self.thermal_low_percentile < self.thermal_high_percentile <= 100:
            problems.append("thermal percentiles must satisfy 0 <= low < high <= 100")
        if not 0 < self.depth_min_mm < self.depth_max_mm <= 65535:
            problems.append("depth range must satisfy 0 < depth_min_mm < depth_max_mm <= 65535")
        if self.colour_method not in COLOUR_METHODS:
            problems.append(
                f"colour_method must be one of {', '.join(COLOUR_METHODS)}, got {self.colour_method!r}"
            )
        if problems:
            raise ValueError("invalid EnhancementParams: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> EnhancementParams:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown enhancement parameters: {', '.join(unknown)}")
        typed: dict[str, Any] = {}  # int or float, as each field declares
        for name, value in values.items():
            if known[name].type in ("str", str):
                typed[name] = str(value)
            else:
                typed[name] = int(value) if known[name].type in ("int", int) else float(value)
        if "lambda1" in typed or "lambda2" in typed:
            # eq. 2's coefficients are normalised; accept any non-negative pair and normalise it.
            l1, l2 = typed.get("lambda1", cls.lambda1), typed.get("lambda2", cls.lambda2)
            if l1 < 0 or l2 < 0 or l1 + l2 <= 0:
                raise ValueError(f"lambda1, lambda2 must be non-negative and not both 0, got {l1}, {l2}")
            typed["lambda1"], typed["lambda2"] = l1 / (l1 + l2), l2 / (l1 + l2)
        return cls(**typed)

    @classmethod
    def from_json(cls, path: str | Path) -> EnhancementParams:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read enhancement parameters from {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of enhancement parameters")
        return cls.from_dict(values)

    def digest(self) -> str:
        """A short name of these values, for caches of what they produced. The default colour method
        is left out of it, so caches made before ``colour_method`` existed keep their names."""
        values = asdict(self)
        if values["colour_method"] == "mswgf":
            del values["colour_method"]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
