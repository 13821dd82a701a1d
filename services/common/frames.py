"""In-memory frame sets: the three images of one capture and their capture times.

``FrameSet`` is the one in-memory form of a frame set, what ``classroom.v1.FrameSet`` carries
on the wire (``codecs.encode_frame_set`` / ``codecs.decode_frame_set`` convert); code that
needs pixels and capture times takes it. Richer frame sets are frame sets: a capture
source's ``CapturedFrameSet`` adds its sequence number and ground truth, the simulator's
``RenderedFrame`` (services/simulator/scene.py) its clean references, the data-set writer's
``FrameData`` (services/dataset/writer.py) the frame's annotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class FrameSet:
    """One synchronised trimodal capture, each image at its own sensor's resolution.

    rgb: HxWx3 uint8 BGR; depth_mm: HxW uint16 millimetres (0 = invalid);
    thermal_c: HxW float32 degrees Celsius (radiometric). Timestamps are each
    sensor's own capture time in microseconds since the epoch.
    """

    rgb: np.ndarray
    depth_mm: np.ndarray
    thermal_c: np.ndarray
    rgb_ts_us: int
    depth_ts_us: int
    thermal_ts_us: int


@dataclass(slots=True, kw_only=True)
class CapturedFrameSet(FrameSet):
    """A frame set as a capture source yields it: its number in the source's run and, when the
    source knows it, its ground truth (data the wire message's images do not carry)."""

    sequence: int
    # Ground truth when the source knows it (simulator, labelled recordings). It never
    # travels in frame messages; capture can write it to a side file for evaluation.
    annotations: dict | None = field(default=None)
