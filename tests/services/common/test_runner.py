"""The service skeleton (services/common/runner.py) with a small runner of its own: the exit code
and log of a loop that raises, SIGTERM to shutdown steps in order within the grace time, and the
health server up before the loop and down after it."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import runner as skeleton
from services.common.lifecycle import StopFlag
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.ports import PortInUse
from services.common.runner import ShutdownStep, run_service

NAME = "skeleton-test"


class FakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKELETON_TEST_", frozen=True)

    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    shutdown_grace_s: float = 0.3


class FakeRunner:
    """A runner whose loop is ``body`` and whose shutdown steps record their names in ``done``."""

    name = NAME

    def __init__(self, body: Callable[[FakeRunner], Awaitable[int]], *, hang: str = "") -> None:
        self.settings = FakeSettings()
        self.stop = StopFlag()
        self.metrics = ServiceMetrics(NAME)
        self.health = HealthServer(self.metrics, readiness=lambda: (True, "ok"))
        self.body = body
        self.hang = hang  # the shutdown step that never finishes
        self.done: list[str] = []
        self.seen: dict[str, int] = {}  # what the loop got from the health server

    async def serve(self, metrics_port: int) -> int:
        return await self.body(self)

    def shutdown_steps(self) -> list[ShutdownStep]:
        return [(name, self._step(name)) for name in ("consumer", "dependencies", "producer")]

    def _step(self, name: str) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            if name == self.hang:
                await asyncio.sleep(3600)
            self.done.append(name)

        return step

    def stopped_fields(self) -> dict[str, Any]:
        return {"processed": 7}


@pytest.fixture()
def signal_handlers() -> Iterator[None]:
    """The test's loop takes SIGINT/SIGTERM; what pytest had is put back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


async def status(port: int, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as reply:
        return reply.status


def refused(port: int) -> bool:
    async def probe() -> bool:
        try:
            await status(port, "/healthz")
        except aiohttp.ClientConnectionError:
            return True
        return False

    return asyncio.run(probe())


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == NAME]


def test_a_loop_that_raises_exits_1_logs_it_and_still_shuts_down(caplog, signal_handlers) -> None:
    async def broken(runner: FakeRunner) -> int:
        raise RuntimeError("the camera library crashed")

    runner = FakeRunner(broken)
    with caplog.at_level(logging.INFO, logger=NAME):
        assert asyncio.run(run_service(runner)) == 1
    failed = [r for r in caplog.records if r.name == NAME and r.getMessage() == "failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert failed[0].error == "RuntimeError: the camera library crashed"  # type: ignore[attr-defined]
    assert runner.done == ["consumer", "dependencies", "producer"]
    assert messages(caplog) == ["failed", "stopped"]  # no stop was asked for: no "stopping"
    assert refused(runner.health.port)


def test_sigterm_runs_the_shutdown_steps_in_order_within_the_grace_time(
    caplog, signal_handlers, monkeypatch
) -> None:
    monkeypatch.setattr(skeleton, "CLOSE_MARGIN_S", 0.2)
    stopped_at: list[float] = []

    async def until_stopped(runner: FakeRunner) -> int:
        asyncio.get_running_loop().call_later(0.1, signal.raise_signal, signal.SIGTERM)
        while not await runner.stop.wait(0.05):
            pass
        stopped_at.append(time.monotonic())
        return 0

    runner = FakeRunner(until_stopped, hang="dependencies")
    with caplog.at_level(logging.INFO, logger=NAME):
        assert asyncio.run(run_service(runner)) == 0
    shutdown_s = time.monotonic() - stopped_at[0]
    assert runner.stop.reason == "SIGTERM"
    # the hung step is cut at grace + margin; the step after it still runs
    assert runner.done == ["consumer", "producer"]
    assert 0.5 <= shutdown_s < 2.0
    assert messages(caplog) == ["stopping", "shutdown step cut: grace time spent", "stopped"]
    cut = next(r for r in caplog.records if r.getMessage().startswith("shutdown step cut"))
    assert cut.step == "dependencies"  # type: ignore[attr-defined]
    assert caplog.records[-1].processed == 7  # type: ignore[attr-defined]


def test_the_health_server_is_up_before_the_loop_and_down_after(signal_handlers) -> None:
    async def probe(runner: FakeRunner) -> int:
        runner.seen = {path: await status(runner.health.port, path) for path in ("/healthz", "/readyz")}
        return 3  # the loop's exit code is the process's

    runner = FakeRunner(probe)
    assert asyncio.run(run_service(runner)) == 3
    assert runner.seen == {"/healthz": 200, "/readyz": 200}
    assert refused(runner.health.port)


def test_a_port_in_use_reaches_the_entry_point_after_the_shutdown(signal_handlers) -> None:
    """The entry point turns PortInUse into one line and exit code 2 (the model server's gRPC port)."""

    async def busy(runner: FakeRunner) -> int:
        raise PortInUse("gRPC port 50051 on 127.0.0.1 is in use (set SKELETON_TEST_PORT)")

    runner = FakeRunner(busy)
    with pytest.raises(PortInUse):
        asyncio.run(run_service(runner))
    assert runner.done == ["consumer", "dependencies", "producer"]
    assert refused(runner.health.port)
