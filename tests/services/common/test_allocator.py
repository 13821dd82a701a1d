"""One allocator tuner for every process; idempotent, and honest where it cannot tune."""

from __future__ import annotations

import ctypes.util

from services.common import allocator


def test_tuning_is_done_once_and_reports_whether_it_took(monkeypatch):
    monkeypatch.setattr(allocator, "_result", None)
    calls = []
    monkeypatch.setattr(allocator, "_tune", lambda: calls.append(1) or True)
    assert allocator.tune_allocator() and allocator.tune_allocator()
    assert calls == [1]


def test_no_glibc_no_tuning(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    assert allocator._tune() is False


def test_glibc_takes_the_thresholds():
    assert allocator._tune() is True  # Linux with glibc: the suite's platform
