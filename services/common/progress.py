"""Progress of a long command: a tqdm bar (rate, ETA) on a terminal, plain lines elsewhere.

A log file or CI output gets one line every ``every_s`` seconds and one at the end, e.g.
``train windows: 240/720 window (3.9/s, 2:03 left)``, never carriage-return redraws.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class PlainProgress:
    """tqdm's interface (update, set_postfix, close, iteration), printed as plain lines."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        every_s: float = 10.0,
        file: TextIO | None = None,
        clock=time.monotonic,  # injectable for tests
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = initial
        self.every_s = every_s
        self.file = file or sys.stderr
        self._clock = clock
        self._began = self._last = clock()
        self._postfix = ""
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(now)

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._began, 1e-9)
        rate = (self.n - self._start) / elapsed
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        parts = [f"{rate:.2f}/s" if rate < 10 else f"{rate:.0f}/s"]
        if self.total is not None and rate > 0 and self.n < self.total:
            parts.append(f"{_clock((self.total - self.n) / rate)} left")
        elif self.total is not None and self.n >= self.total:
            parts.append(f"done in {_clock(elapsed)}")
        if self._postfix:
            parts.append(self._postfix)
        return f"{self.desc}: {done} {self.unit} ({', '.join(parts)})"

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(self._clock())


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    initial: int = 0,
) -> Any:
    """A tqdm bar where stderr is a terminal, PlainProgress elsewhere; ``disable``: neither."""
    from tqdm import tqdm

    if disable:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
