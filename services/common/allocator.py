"""glibc's allocator, tuned once per process for frame- and activation-sized buffers.

Every frame set (section 3.2) and every network pass (the deformable convolution's
[N, C, 9, H, W] samples) allocates and frees the same multi-megabyte temporaries. With glibc's
defaults each is a fresh mmap, page-faulted in on first touch and unmapped on free; raising the
mmap and trim thresholds keeps them in the heap for reuse. Measured on these machines: the
colour path at 640×360 from ~17 to ~9 ms, the model server's fuse() ~1.4x faster
(docs/models.md). Process-wide, so services, the model server, training and the benches call
it at start; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# blocks below this come from the heap (glibc versions that refuse it get their own maximum, 32 MiB)
MMAP_THRESHOLD = 256 * 1024 * 1024
MMAP_THRESHOLD_FALLBACK = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024  # free memory at the heap's top kept before it goes back to the OS

_lock = threading.Lock()
_result: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds (once); False where that is not possible."""
    global _result
    with _lock:
        if _result is None:
            _result = _tune()
        return _result


def _tune() -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or libc.mallopt(
            M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK
        )
        return bool(ok and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False
