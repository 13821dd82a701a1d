"""The one retry policy: jittered, capped at RETRY_CAP_S (work resumes within it once a dependency
is back), other errors pass at once, and a stopping service ends the wait."""

from __future__ import annotations

import asyncio

import pytest

from services.common.bus import DependencyUnavailable
from services.common.retry import RETRY_CAP_S, call_until_available


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
