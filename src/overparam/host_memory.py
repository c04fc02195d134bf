"""Large CPU tensors without page faults at every step.

glibc's malloc hands every block above its mmap threshold (32 MB at most, by default) back to the kernel
when it is freed, and the next block of that size comes back as fresh pages that the kernel faults in and
zeroes one by one. A wide network's step allocates such tensors (a stacked width-1024 layer of 9 members
is 58 MB in float64), so it paid that again at every step: a 58 MB subtraction took 39 ms instead of 8 on
this project's 2-core machines. With large blocks served from the heap and freed memory kept for reuse,
the process's memory stays at its peak instead of going back to the kernel between steps.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
LARGEST_HEAP_BLOCK = 1 << 30  # larger blocks are still mapped on their own
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


@functools.cache  # once per process
def keep_freed_memory() -> bool:
    """Have glibc serve blocks up to 1 GiB from its heap and keep what is freed there. Nothing changes
    where malloc is not glibc's or the user chose its settings (`MALLOC_MMAP_THRESHOLD_`,
    `MALLOC_TRIM_THRESHOLD_`, `GLIBC_TUNABLES`, or another allocator through `LD_PRELOAD`). Returns
    whether the settings are ours."""
    if not sys.platform.startswith("linux") or any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)) and bool(
        mallopt(M_TRIM_THRESHOLD, LARGEST_HEAP_BLOCK)
    )
