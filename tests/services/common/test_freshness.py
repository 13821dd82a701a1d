"""A frame stage's watch over frame-set ages: shed and counted always; a classroom none of whose
frame sets is usable for ``shed_after_s`` named once in the log, with the likely cause."""

from __future__ import annotations

import logging

import pytest

from services.common.freshness import FrameAgeWatch
from services.common.metrics import ServiceMetrics


class StageClock:
    """The stage's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> StageClock:
    return StageClock()


@pytest.fixture()
def watch(clock: StageClock) -> FrameAgeWatch:
    return FrameAgeWatch(
        30.0, metrics=ServiceMetrics("enhancement"), log=logging.getLogger("enhancement"), clock=clock
    )


def arrive(
    watch: FrameAgeWatch, clock: StageClock, classroom: str, ages: list[float], *, every_s: float, behind: int
) -> list[bool]:
    shed = []
    for age in ages:
        shed.append(watch.arrived(classroom, age, messages_behind=behind))
        clock.now += every_s
    return shed


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def value(metric, *labels: str) -> float:
    return metric.labels("enhancement", *labels)._value.get()


def test_a_backlog_shed_after_a_restart_is_counted_and_not_taken_for_a_starving_classroom(
    watch, clock, caplog
) -> None:
    # 200 frame sets of the outage, 95 s old down to 31 s, shed within a second, then fresh ones
    shed = arrive(watch, clock, "room-1", [95 - 0.32 * k for k in range(200)], every_s=0.004, behind=4000)
    shed += arrive(watch, clock, "room-1", [12.0, 11.0], every_s=0.1, behind=3800)
    assert shed == [True] * 200 + [False, False]
    assert value(watch.metrics.shed, "room-1") == 200
    assert not caplog.records


def test_a_classroom_whose_frame_sets_all_arrive_late_is_named_once_with_the_cause(
    watch, clock, caplog
) -> None:
    with caplog.at_level(logging.INFO):
        # at the partition's end, every frame set 40 s old for a minute: the clock, not the lag
        arrive(watch, clock, "room-1", [40.0] * 480, every_s=0.125, behind=3)
        arrive(watch, clock, "room-2", [0.3] * 10, every_s=0.125, behind=3)  # another classroom is fine
        (clock_line,) = warnings(caplog)
        # a fresh frame set ends the run; a lagging stage is named as the cause next time
        arrive(watch, clock, "room-1", [1.0], every_s=0.125, behind=3)
        arrive(watch, clock, "room-1", [50.0] * 400, every_s=0.125, behind=9000)
    first, lag_line = warnings(caplog)
    assert first is clock_line
    assert clock_line.getMessage() == (
        "classroom room-1: all frame sets arrive older than 30 s and are shed — check the camera clock / the lag"
    )
    assert clock_line.classroom == "room-1" and clock_line.frame_sets == 241 and clock_line.for_s == 30.0
    assert clock_line.likely_cause.startswith("clock: this stage is at its partition's end")
    assert lag_line.likely_cause.startswith("lag:") and lag_line.messages_behind == 9000
    back = [r for r in caplog.records if r.getMessage() == "classroom room-1: frame sets usable again"]
    assert len(back) == 1 and back[0].frame_sets == 480
    assert value(watch.metrics.shed, "room-1") == 880 and value(watch.metrics.shed, "room-2") == 0
    assert value(watch.metrics.frame_age, "room-1") == 50.0


def test_frame_sets_from_the_future_are_processed_counted_and_named(watch, clock, caplog) -> None:
    # the edge box's clock runs 2 minutes ahead of this stage's
    shed = arrive(watch, clock, "room-3", [-120.0] * 300, every_s=0.125, behind=0)
    assert not any(shed)
    assert value(watch.metrics.ahead, "room-3") == 300 and value(watch.metrics.shed, "room-3") == 0
    assert value(watch.metrics.frame_age, "room-3") == -120.0
    (line,) = warnings(caplog)
    assert line.getMessage().startswith(
        "classroom room-3: all frame sets arrive more than 30 s ahead of this host's"
    )
    assert "edge box (NTP)" in line.getMessage()
