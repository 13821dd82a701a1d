"""Integration fixtures: the embedded broker, fresh topics per test, PostgreSQL, a TCP fault proxy,
and a runner for services in a background thread. Real parts, no mocks."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.common.embedded_broker import EmbeddedBroker
from services.common.topics import ensure_topics, topic_specs

POSTGRES_URL = os.environ.get(
    "CLASSROOM_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture()
def topic_prefix(broker: EmbeddedBroker) -> str:
    """A fresh set of the suite's topics (2 partitions each) under a unique prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(broker.bootstrap, topic_specs(prefix, partitions=2))
    return prefix


def postgres_available(url: str = POSTGRES_URL) -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture()
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema, dropped at teardown."""
    from sqlalchemy import create_engine, text

    if not postgres_available():
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (set CLASSROOM_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"drop schema {schema} cascade"))
    admin.dispose()


class ServiceThread:
    """Runs a service's ``run()`` coroutine on its own event loop in a daemon thread."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.exit_code = self.loop.run_until_complete(self.service.run())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> ServiceThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.stop.set, "test")
            self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("service did not stop in time")
        if self.error is not None:
            raise self.error
        return self.exit_code


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


class ModelServerThread:
    """A real model server (untrained weights) on its own loop in a thread."""

    def __init__(self, port: int) -> None:
        from services.modelserver.config import ModelServerSettings
        from services.modelserver.server import ModelServer

        self.server = ModelServer(
            ModelServerSettings(port=port, device="cpu", checkpoint="untrained", max_delay_ms=2)
        )
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> ModelServerThread:
        self.thread.start()
        assert self.ready.wait(120), "model server did not start"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
