"""In-memory frame sets: what a capture source yields before encoding, in sensor-native form."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class CapturedFrameSet:
    """One synchronised trimodal capture, each image at its own sensor's resolution.

    rgb: HxWx3 uint8 BGR; depth_mm: HxW uint16 millimetres (0 = invalid);
    thermal_c: HxW float32 degrees Celsius (radiometric). Timestamps are each
    sensor's own capture time in microseconds since the epoch.
    """

    sequence: int
    rgb: np.ndarray
    depth_mm: np.ndarray
    thermal_c: np.ndarray
    rgb_ts_us: int
    depth_ts_us: int
    thermal_ts_us: int
    # Ground truth when the source knows it (simulator, labelled recordings). It never
    # travels in frame messages; capture can write it to a side file for evaluation.
    annotations: dict | None = field(default=None)
