"""The one retry policy: jittered, capped at RETRY_CAP_S (work resumes within it once a dependency
is back), other errors pass at once, and a stopping service ends the wait; the one outage report
(``Dependency``): readiness, the retry metric under the dependency's name, one line when it ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.common.bus import DependencyUnavailable
from services.common.retry import RETRY_CAP_S, Dependency, call_until_available


def _flaky(failures: int):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise DependencyUnavailable(f"down ({calls['n']})")
        return "answered"

    return call, calls


def test_retries_with_jittered_capped_delays_until_the_dependency_answers() -> None:
    call, calls = _flaky(30)
    slept: list[float] = []
    reported: list[tuple[str, float]] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    result = asyncio.run(
        call_until_available(
            lambda: call(),  # a plain callable returning an awaitable, as the services pass
            retry_on=(DependencyUnavailable,),
            on_retry=lambda exc, delay: reported.append((str(exc), delay)),
            sleep=sleep,
        )
    )
    assert result == "answered" and calls["n"] == 31
    assert len(slept) == 30 and [d for _, d in reported] == slept
    assert reported[0][0] == "down (1)"
    assert all(0.0 <= d <= RETRY_CAP_S for d in slept) and RETRY_CAP_S <= 1.0
    assert len({round(d, 6) for d in slept}) > 20  # jittered, not in step with other replicas


def test_other_errors_pass_at_once_and_a_stop_ends_the_wait() -> None:
    async def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(
            call_until_available(broken, retry_on=(DependencyUnavailable,), on_retry=lambda e, d: None)
        )

    call, calls = _flaky(100)

    class Stopped(Exception):
        pass

    async def stop_on_third(delay: float) -> None:
        if calls["n"] >= 3:
            raise Stopped

    with pytest.raises(Stopped):
        asyncio.run(
            call_until_available(
                call, retry_on=(DependencyUnavailable,), on_retry=lambda e, d: None, sleep=stop_on_third
            )
        )
    assert calls["n"] == 3


def test_an_outage_is_reported_once_per_retry_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    beats: list[int] = []
    model_server = Dependency(
        "model server",
        log=logging.getLogger("test-dependency"),
        count_retry=counted.append,
        beat=lambda: beats.append(1),
        ok=False,
        detail="not contacted yet",
    )
    assert (model_server.ok, model_server.detail) == (False, "not contacted yet")
    call, calls = _flaky(3)
    details: list[tuple[bool, str]] = []

    async def no_wait(delay: float) -> None:
        details.append((model_server.ok, model_server.detail))  # what readiness says mid-outage

    with caplog.at_level(logging.INFO, logger="test-dependency"):
        assert (
            asyncio.run(model_server.call(call, retry_on=(DependencyUnavailable,), sleep=no_wait))
            == "answered"
        )
    assert calls["n"] == 4 and counted == ["model_server"] * 3 and len(beats) == 3
    assert details == [(False, "down (1)"), (False, "down (2)"), (False, "down (3)")]
    assert (model_server.ok, model_server.detail) == (True, "ok")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["model server unavailable, retrying"] * 3 + ["model server available"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test-dependency"):  # answering at once: nothing to say
        asyncio.run(model_server.call(_flaky(0)[0], retry_on=(DependencyUnavailable,), sleep=no_wait))
    assert caplog.records == [] and counted == ["model_server"] * 3
