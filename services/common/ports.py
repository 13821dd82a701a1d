"""Ports: the process that serves binds them, then says which it got.

A port chosen by one process and bound by another (bind, release, hand over) can be taken in
between; so every listener of the suite binds what it is configured with, 0 meaning any free
port, and reports the port it got. A supervisor (``classroom demo``, ``classroom bench
pipeline``) learns it from a small JSON file named by ``$CLASSROOM_PORTS_FILE``, which the
child writes atomically once it listens: ``{"metrics": 40123, "grpc": 40125}``. A port that is
already in use is one line naming it and what to do.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PORTS_FILE_ENV = "CLASSROOM_PORTS_FILE"


class PortInUse(RuntimeError):
    """A configured port that another program holds; the message says which and what to do."""


def port_in_use_message(what: str, host: str, port: int, setting: str) -> str:
    return (
        f"{what} port {port} on {host} is in use by another program: stop it, or set {setting} "
        "to a free port (0 picks one)"
    )


def is_address_in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def announce_ports(path: str | os.PathLike[str] | None = None, **ports: int) -> None:
    """Merge ``ports`` into the ports file (``$CLASSROOM_PORTS_FILE`` unless ``path``); no file, no-op."""
    target = path if path is not None else os.environ.get(PORTS_FILE_ENV)
    if not target:
        return
    file = Path(target)
    current = read_ports(file) or {}
    current.update({name: int(port) for name, port in ports.items()})
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(current, out)
    os.replace(tmp, file)


def read_ports(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """The ports a child announced, or None while it has announced none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def bind_free_port(host: str = "127.0.0.1") -> int:
    """A port free at this instant. Only for a program that cannot bind port 0 itself (the
    embedded broker, Streamlit): its caller must retry with another one when the program
    reports the port taken (``retry_on_port_conflict``)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def retry_on_port_conflict(start: Callable[[int], T], *, host: str = "127.0.0.1", attempts: int = 5) -> T:
    """``start(port)`` on a free port; again on another one while it raises PortInUse."""
    last: PortInUse | None = None
    for _ in range(attempts):
        try:
            return start(bind_free_port(host))
        except PortInUse as exc:
            last = exc
    assert last is not None
    raise last
