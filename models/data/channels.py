"""The channel layout of a student crop (docs/contracts.md, "Student crops"): which channel holds
which modality, and the scales that put each in network units. What the networks index by;
``models/data/crops.py`` fills them. Plain constants and one unit conversion, so the networks
import no image library."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CROP_CHANNELS: tuple[str, ...] = ("blue", "green", "red", "depth", "thermal_c", "thermal_equalised")
COLOUR = slice(0, 3)
DEPTH = 3
THERMAL = 4
THERMAL_EQUALISED = 5
NUM_CHANNELS = len(CROP_CHANNELS)

DEPTH_SCALE_MM = 500.0  # half a metre per unit: an arm stretched toward the camera is ~1
DEPTH_CLIP = 3.0
THERMAL_CENTRE_C = 30.0  # skin ~34 C maps to +0.4, a 22 C room to -0.8
THERMAL_SCALE_C = 10.0


def thermal_celsius(normalised: torch.Tensor) -> torch.Tensor:
    """Crop channel 4 (``THERMAL``) back to degrees Celsius."""
    return normalised * THERMAL_SCALE_C + THERMAL_CENTRE_C
