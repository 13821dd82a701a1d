"""A live camera's clock against its capture host's: measured at every frame set, and put back
on the host's clock when it is off by more than a tolerance.

A frame set reaches the host after it was captured, so its capture time minus its arrival time
is the camera clock's offset less a delivery delay that is never negative. The largest of the
last ``WINDOW`` differences is the estimate: the least-delayed frame set says the most, as NTP's
clock filter keeps its least-delayed sample. An estimate above the tolerance is a clock that
runs ahead (no delay makes a capture time later than its arrival), and one frame set shows it.
An estimate below minus the tolerance over a whole window is a clock that runs behind (a live
camera's driver queues only a few frames, so no delivery is that late throughout). Either way
the step that brings the estimate to zero is returned, as GStreamer's sinks resynchronise a
clock that drifted past their tolerance.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

# frame sets the estimate is taken over: 1-2 s of a live camera at 8-15 fps
WINDOW = 16

Direction = Literal["ahead", "behind"]


class CameraClock:
    """The offset estimate of one camera run and the step that corrects it."""

    def __init__(self, tolerance_us: int) -> None:
        self.tolerance_us = tolerance_us
        self.recent: deque[int] = deque(maxlen=WINDOW)  # capture time - arrival time, µs

    def reset(self) -> None:
        """A camera (re)opened: its timeline is measured afresh."""
        self.recent.clear()

    def offset_us(self) -> int | None:
        """The camera clock's offset from the host's (positive: ahead); None before a frame set."""
        return max(self.recent) if self.recent else None

    def step(self, capture_us: int, arrival_us: int) -> tuple[int, Direction | None]:
        """Take one frame set's capture and arrival times; the step to add to capture times from
        this one on (0 while within the tolerance), and which way the clock was off."""
        self.recent.append(capture_us - arrival_us)
        offset = max(self.recent)
        if offset > self.tolerance_us:
            direction: Direction = "ahead"
        elif len(self.recent) == WINDOW and offset < -self.tolerance_us:
            direction = "behind"
        else:
            return 0, None
        self.recent.clear()
        return -offset, direction
