"""Give freed heap back to the operating system, once per round of ticks.

A thousand ticks a round parse API and PromQL responses and build status patches; CPython frees
those objects, but glibc keeps the pages in its heap for reuse, so resident memory stays at the
high-water mark of the busiest moment (the start-up burst, a slow round). `malloc_trim` returns
the free pages; it walks the heap, which costs milliseconds once per round. A no-op where glibc
is not the allocator.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (glibc `malloc_trim(0)`)."""
    trim = _trim()
    if trim is not None:
        trim(0)
