"""Memory given back to the system between collections (glibc's allocator, where it is the one).

An exporter of 10,000 queues allocates a few megabytes at a time (an answer, an exposition), from
several threads. glibc's defaults keep that memory: a heap per thread (up to 8 per core), and an
mmap threshold that rises after each large free until large blocks come from the heaps, which
fragment. Fixed thresholds and two arenas keep large blocks mapped (returned when freed) and
the heaps trimmed; :func:`trim` hands back what a collection freed. Elsewhere (musl, macOS) both
do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
_THRESHOLD = 128 << 10


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()


def tune() -> None:
    """Fixed thresholds and two arenas; call before the threads start."""
    if _LIBC is not None:
        for option, value in ((M_MMAP_THRESHOLD, _THRESHOLD), (M_TRIM_THRESHOLD, _THRESHOLD), (M_ARENA_MAX, 2)):
            _LIBC.mallopt(option, value)


def trim() -> None:
    """Return the heaps' free memory to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
