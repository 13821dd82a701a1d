"""Camera sources for the capture agent; each yields ``CapturedFrameSet`` at sensor-native resolution.

A source that cannot open its camera raises ``CameraUnavailable`` with a message naming the
device; the agent reports it, stays up (not ready) and tries again. A source built from two
cameras keeps going when one of them is out, where the other still makes a usable frame set:
the Kinect source yields frame sets whose ``thermal_c`` is ``NO_THERMAL`` while its thermal
camera is out, and says why in ``degraded``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from services.common.calibration import CameraCalibration
from services.common.frames import CapturedFrameSet
from services.common.pb.classroom.v1 import frames_pb2


class CameraUnavailable(Exception):
    """The camera (or recording) cannot be opened or stopped delivering frames."""


# The thermal image of a frame set whose thermal camera delivered none (compared by identity,
# never published): the agent sends that frame set without its thermal image, the wire's mark
# of a missing modality (docs/contracts.md, "Capture when a camera is out").
NO_THERMAL = np.zeros((1, 1), np.float32)
NO_THERMAL.flags.writeable = False


class FrameSource(Protocol):
    @property
    def calibration(self) -> CameraCalibration | None: ...  # None: the campus file's (the replay camera)

    frame_rate: float
    live: bool  # a live camera paces itself; recordings and the simulator are paced by the agent
    degraded: str  # why frame sets go out incomplete now (one camera of a pair out); "" otherwise

    # decoded frame sets, or (the replay camera) frame sets already encoded for the wire
    def __iter__(self) -> Iterator[CapturedFrameSet | frames_pb2.FrameSet]: ...

    def close(self) -> None: ...
