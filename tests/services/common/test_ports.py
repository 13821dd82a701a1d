"""Ports are bound by the process that serves them (0: any free one) and announced; a port in
use is one clear line, never a silent share or another program's address."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dashboards.cli import serve_ready
from services.common.embedded_broker import EmbeddedBroker
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.ports import (
    PORTS_FILE_ENV,
    PortInUse,
    announce_ports,
    read_ports,
    retry_on_port_conflict,
)
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import ModelServer


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port another program listens on for the length of the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_announced_ports_merge_into_one_file(tmp_path):
    path = tmp_path / "ports" / "svc.json"
    assert read_ports(path) is None
    announce_ports(path, metrics=4100)
    announce_ports(path, grpc=4101)
    assert read_ports(path) == {"metrics": 4100, "grpc": 4101}
    announce_ports(None, metrics=1)  # no file named anywhere: nothing happens


def test_health_server_binds_port_zero_and_announces_it(tmp_path, monkeypatch):
    path = tmp_path / "health.json"
    monkeypatch.setenv(PORTS_FILE_ENV, str(path))

    async def scenario() -> int:
        server = HealthServer(ServiceMetrics("test"), readiness=lambda: (True, "ok"))
        port = await server.start("127.0.0.1", 0)
        await server.stop()
        return port

    port = asyncio.run(scenario())
    assert port > 0 and read_ports(path) == {"metrics": port}


def test_a_metrics_port_in_use_is_one_line_naming_the_setting(busy_port):
    async def scenario() -> None:
        server = HealthServer(ServiceMetrics("test"), readiness=lambda: (True, "ok"))
        await server.start("127.0.0.1", busy_port, setting="STORE_METRICS_PORT")

    with pytest.raises(PortInUse, match=f"metrics port {busy_port} .* in use .* STORE_METRICS_PORT"):
        asyncio.run(scenario())


def test_a_service_started_on_a_port_in_use_exits_with_that_line(busy_port, tmp_path):
    env = {
        **os.environ,
        "STORE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "STORE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "STORE_METRICS_PORT": str(busy_port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.store"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"store: metrics port {busy_port} on 127.0.0.1 is in use by another program: stop it, or set "
        "STORE_METRICS_PORT to a free port (0 picks one)"
    )


def test_the_model_server_does_not_share_a_grpc_port(busy_port, tmp_path, monkeypatch):
    monkeypatch.setenv(PORTS_FILE_ENV, str(tmp_path / "model.json"))

    async def scenario(port: int) -> int:
        server = ModelServer(ModelServerSettings(port=port, device="cpu", checkpoint="untrained"))
        try:
            return await server.start()
        finally:
            await server.shutdown()

    with pytest.raises(PortInUse, match=f"gRPC port {busy_port} .* MODELSERVER_PORT"):
        asyncio.run(scenario(busy_port))
    port = asyncio.run(scenario(0))
    assert read_ports(tmp_path / "model.json") == {"grpc": port}


def test_the_embedded_broker_refuses_a_given_port_in_use(busy_port):
    with pytest.raises(PortInUse, match=f"broker port {busy_port}"):
        EmbeddedBroker(busy_port).start(timeout_s=10)


def test_a_port_taken_between_choice_and_bind_is_retried_on_another():
    tried: list[int] = []

    def start(port: int) -> int:
        tried.append(port)
        if len(tried) < 3:
            raise PortInUse(f"port {port} taken")
        return port

    assert retry_on_port_conflict(start) == tried[-1] and len(tried) == 3
    with pytest.raises(PortInUse):
        retry_on_port_conflict(lambda port: (_ for _ in ()).throw(PortInUse("always")), attempts=2)


def test_the_dashboard_never_shows_another_programs_address(busy_port, tmp_path):
    with pytest.raises(PortInUse, match=f"dashboard port {busy_port} .* --port"):
        serve_ready(f"sqlite:///{tmp_path / 'd.db'}", busy_port)


def test_the_demo_refuses_a_dashboard_port_in_use_before_starting_anything(busy_port, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "demo",
            "--seconds",
            "5",
            "--workdir",
            str(tmp_path),
            "--dashboard-port",
            str(busy_port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert f"dashboard port {busy_port}" in done.stderr and "--dashboard-port" in done.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started
