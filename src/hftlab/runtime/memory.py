"""Giving freed memory back to the operating system during long runs.

glibc's malloc raises its mmap threshold to the size of the largest block freed (up to 32 MiB), so once a
record table of a few MiB has been spilled, the next tables and Parquet buffers of that size come from
the heap and stay in the process after they are freed: over a 20-day window that is ~100 MiB of peak
memory holding nothing. :func:`release_freed_memory` returns it (``malloc_trim``) and Arrow's pool's
unused memory; it is called after each spill and each column read of stored records. Elsewhere than
glibc only Arrow's pool is released.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any

import pyarrow as pa


@cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory() -> None:
    """Return freed heap pages (glibc ``malloc_trim(0)``) and Arrow's unused pool memory to the OS."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
