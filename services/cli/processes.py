"""Child-process supervision for `classroom demo` and `classroom bench pipeline`.

Children run in their own process group (the terminal's Ctrl-C reaches only the supervisor,
which then stops them in order), die with the supervisor if it is killed (PR_SET_PDEATHSIG),
and are stopped with SIGTERM, a grace period, then SIGKILL: no process is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int = 0
    started: float = field(default_factory=time.monotonic)
    module: str = ""
    env: dict[str, str] = field(default_factory=dict)  # what it was started with, for a restart

    def alive(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []

    def start(self, name: str, module: str, env: dict[str, str], *, metrics_port: int = 0) -> Child:
        """Start ``python -m module``; a child of the same name that has exited is replaced."""
        if any(c.name == name and c.alive() for c in self.children):
            raise RuntimeError(f"{name} is already running")
        self.children = [c for c in self.children if c.name != name]
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        child = Child(name, process, log_path, metrics_port, module=module, env=dict(env))
        self.children.append(child)
        return child

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no child named {name}")

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's whole process group (its worker processes too)."""
        os.killpg(self.child(name).process.pid, sig)

    def failed(self) -> list[Child]:
        return [c for c in self.children if not c.alive() and c.process.returncode not in (0, None)]

    def stop(self, names: list[str] | None = None, *, grace_s: float = 15.0) -> None:
        """SIGTERM the named children (all by default) in the given order, wait, then SIGKILL."""
        targets = [c for c in self.children if names is None or c.name in names]
        if names is not None:
            targets.sort(key=lambda c: names.index(c.name))
        for child in targets:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in targets:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def tail(self, child: Child, lines: int = 20) -> str:
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
