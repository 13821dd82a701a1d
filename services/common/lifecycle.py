"""Graceful shutdown: SIGINT/SIGTERM only set a stop flag; loops poll with a timeout and check it."""

from __future__ import annotations

import asyncio
import signal
import threading


class StopFlag:
    """Set once by a signal (or by code); loops check ``is_set`` and await ``wait`` with a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason = ""

    def set(self, reason: str = "requested") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` passes; True when set."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def install_signal_handlers(self) -> None:
        """Route SIGINT/SIGTERM to this flag (main thread only; tests run services in threads)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.set, signal.Signals(sig).name)
