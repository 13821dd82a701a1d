"""How old each classroom's frame sets are when they reach a frame stage, and what is said when
none of them is usable for a while.

A frame stage sheds a frame set older than ``shed_after_s`` since capture (``FrameStageSettings``;
the capture time is the record's timestamp). One shed frame set is overload or a backlog, and
only counted. A classroom whose every frame set is shed for ``shed_after_s`` of this stage's own
time starves, and that is logged once, with the likely cause: a stage near the end of its
partition reads frame sets as they are written, so they were old when written (the capturing
host's clock runs behind, or capture publishes late); a stage far from it is behind (lag).
Likewise a classroom whose every frame set arrives more than ``shed_after_s`` ahead of this
stage's clock: its frame sets are processed and counted, and the capturing host's clock is
named. The end of such a run is logged too. Every frame set's age is a per-classroom gauge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.common.metrics import ServiceMetrics

# A stage at most this many messages from its partition's end reads frame sets about as they
# are written: a frame set that is old there was old when it was written.
CAUGHT_UP_MESSAGES = 64

Unusable = Literal["old", "ahead"]


@dataclass
class UnusableRun:
    """A classroom's current run of frame sets that are all too old, or all too far ahead."""

    kind: Unusable
    since: float  # this stage's monotonic time at the run's first frame set
    frame_sets: int = 0
    warned: bool = False


class FrameAgeWatch:
    """Per classroom: the age of each frame set on arrival, whether it is shed, and the log lines."""

    def __init__(
        self,
        limit_s: float,
        *,
        metrics: ServiceMetrics,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.runs: dict[str, UnusableRun] = {}

    def arrived(self, classroom: str, age_s: float, *, messages_behind: int | None) -> bool:
        """Record one frame set's age on arrival; True: older than the limit, to be shed (counted)."""
        self.metrics.set_frame_age(classroom, age_s)
        kind: Unusable | None = None
        if age_s > self.limit_s:
            kind = "old"
            self.metrics.count_shed(classroom)
        elif age_s < -self.limit_s:
            kind = "ahead"
            self.metrics.count_ahead(classroom)
        self._follow(classroom, kind, age_s, messages_behind)
        return kind == "old"

    def _follow(self, classroom: str, kind: Unusable | None, age_s: float, behind: int | None) -> None:
        """Extend, end or start the classroom's run; warn once when it has lasted ``limit_s``."""
        run = self.runs.get(classroom)
        if run is not None and run.kind != kind:
            self._ended(classroom, self.runs.pop(classroom))
            run = None
        if kind is None:
            return
        if run is None:
            run = self.runs[classroom] = UnusableRun(kind, self.clock())
        run.frame_sets += 1
        if not run.warned and self.clock() - run.since >= self.limit_s:
            run.warned = True
            self._warn(classroom, run, age_s, behind)

    def _warn(self, classroom: str, run: UnusableRun, age_s: float, behind: int | None) -> None:
        fields = {
            "classroom": classroom,
            "frame_sets": run.frame_sets,
            "for_s": round(self.clock() - run.since, 1),
            "age_s": round(age_s, 1),
            "messages_behind": behind,
        }
        if run.kind == "ahead":
            self.log.warning(
                f"classroom {classroom}: all frame sets arrive more than {self.limit_s:g} s ahead of this "
                "host's clock (processed) — check the clock of the classroom's edge box (NTP)",
                extra=fields,
            )
            return
        caught_up = behind is not None and behind <= CAUGHT_UP_MESSAGES
        self.log.warning(
            f"classroom {classroom}: all frame sets arrive older than {self.limit_s:g} s and are shed "
            "— check the camera clock / the lag",
            extra={
                **fields,
                "likely_cause": "clock: this stage is at its partition's end, so the frame sets were old when "
                "written (the edge box's clock runs behind, or capture publishes late)"
                if caught_up
                else "lag: this stage is behind its partition's end",
            },
        )

    def _ended(self, classroom: str, run: UnusableRun) -> None:
        if run.warned:
            self.log.info(
                f"classroom {classroom}: frame sets usable again",
                extra={
                    "classroom": classroom,
                    "unusable": run.kind,
                    "frame_sets": run.frame_sets,
                    "for_s": round(self.clock() - run.since, 1),
                },
            )
