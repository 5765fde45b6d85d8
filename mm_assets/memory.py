"""Giving freed memory back to the operating system.

Arrow's memory pool and glibc's heap both keep pages a process has freed, to serve its next allocations.
A process that runs one large job after another (the CLI's cycle and backfills, the benchmark: each run in
process) therefore holds the high-water mark of everything it ran: after a backfill of eleven yearly ingests
the process held a gigabyte it did not use, and that gigabyte sat beside the training workers it then started.
The same holds within one step that frees a large batch (a dataset cut, a staged batch, a worker's file) and goes
on: ``release_freed`` is the one way the project gives memory back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _glibc_trim():
    """glibc's ``malloc_trim``, or None where the C library is another (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed() -> None:
    """Return the memory this process has freed: Arrow's pool's cached buffers, then glibc's free heap pages."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _glibc_trim()
    if trim is not None:
        trim(0)
