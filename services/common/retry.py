"""One retry policy for every dependency outage (model server, database, broker send).

A call that fails because a dependency is unavailable is tried again after a jittered,
capped exponential delay (tenacity's ``wait_random_exponential``: uniform in
[0, min(``RETRY_CAP_S``, ``RETRY_FIRST_S`` × 2^attempt)]). The low cap is the point: work
resumes at most ``RETRY_CAP_S`` after the dependency is back, and the jitter keeps a
campus of replicas from retrying in step. Every retry is reported to ``on_retry`` (metric,
log line, health beat) with the delay before the next try; ``sleep`` is the caller's own
wait, so a service that is stopping can end the wait (by raising) instead of sleeping on.
``Dependency`` is the one report of an outage every service gives: the readiness state, the
retry metric, the log line while it lasts and the line when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

RETRY_FIRST_S = 0.1
RETRY_CAP_S = 1.0

T = TypeVar("T")


def backoff() -> wait_random_exponential:
    """The wait strategy: jittered exponential from ``RETRY_FIRST_S``, capped at ``RETRY_CAP_S``."""
    return wait_random_exponential(multiplier=RETRY_FIRST_S, max=RETRY_CAP_S)


async def call_until_available(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, float], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it returns without raising one of ``retry_on``; any other error
    propagates at once. ``on_retry(error, delay)`` runs before each wait."""

    def report(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            on_retry(error, delay)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=backoff(),
        sleep=sleep,
        before_sleep=report,
        reraise=True,
    )

    async def attempt() -> T:  # tenacity awaits only coroutine functions, not a lambda's coroutine
        return await call()

    return await retrying(attempt)


class Dependency:
    """One dependency's state as readiness and the logs report it (model server, database, a
    stage's downstream): ``unavailable`` is the ``on_retry`` of ``call_until_available`` (the
    first failure flips readiness, every retry is counted in ``classroom_retries_total`` under
    the dependency's name, logged with its delay, and beats ``beat`` so a long outage is not
    mistaken for a hung process); ``available`` ends the outage with one log line."""

    def __init__(
        self,
        name: str,
        *,
        log: logging.Logger | logging.LoggerAdapter[Any],
        count_retry: Callable[[str], None],
        beat: Callable[[], None] | None = None,
        ok: bool = True,
        detail: str = "ok",
    ) -> None:
        self.name, self.log, self.count_retry, self.beat = name, log, count_retry, beat
        self.ok, self.detail = ok, detail

    def unavailable(self, exc: BaseException, delay: float) -> None:
        self.ok, self.detail = False, str(exc)
        self.count_retry(self.name.replace(" ", "_"))
        self.log.warning(
            f"{self.name} unavailable, retrying", extra={"error": self.detail, "retry_in_s": round(delay, 3)}
        )
        if self.beat is not None:
            self.beat()

    def available(self) -> None:
        if not self.ok:
            self.log.info(f"{self.name} available")
        self.ok, self.detail = True, "ok"

    async def call(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        retry_on: tuple[type[BaseException], ...],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        """``call_until_available`` reporting here; the dependency is available once it returns."""
        result = await call_until_available(call, retry_on=retry_on, on_retry=self.unavailable, sleep=sleep)
        self.available()
        return result
