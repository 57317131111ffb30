"""Keep freed arrays in the process for reuse between fits (glibc's ``mallopt``).

A fit allocates and frees the same few dozen arrays in every EM and Newton iteration, and
the next fit of a similar model allocates them again. glibc hands freed memory above its
(self-adjusting) thresholds back to the operating system, so new arrays come as fresh pages
that fault in one by one, which is expensive on a virtual machine. :func:`keep_freed_pages`
raises the thresholds once per process, at the first fit: arrays up to
:data:`KEEP_MMAP_BYTES` come from the heap, and up to :data:`KEEP_TRIM_BYTES` of free memory
stay there for reuse instead of being unmapped. Measured on the 2-core benchmark machine,
a warm gaussian k = 3 fit took 14 -> 10.5 ms at n = 1e4 and 90 -> 61 ms at n = 1e5
(benchmarks/README.md). The cost is memory: a process keeps up to
:data:`KEEP_TRIM_BYTES` of freed memory it would otherwise have returned.

This is a setting of the process's allocator, not of bayesfmm: it is made only on glibc
(Linux), and ``BAYESFMM_KEEP_PAGES=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache

from bayesfmm.errors import environment_switch

__all__ = ["keep_freed_pages", "KEEP_MMAP_BYTES", "KEEP_TRIM_BYTES"]

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_MMAP_BYTES = 32 * 2**20  # glibc's largest mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
KEEP_TRIM_BYTES = 256 * 2**20  # free memory kept at the top of the heap


@lru_cache(maxsize=1)
def keep_freed_pages() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); True when they were set.

    Examples
    --------
    >>> isinstance(keep_freed_pages(), bool)
    True
    """
    if not environment_switch("BAYESFMM_KEEP_PAGES") or not sys.platform.startswith("linux"):
        return False
    try:
        # glibc's soname on every Linux architecture; ctypes.util.find_library("c") would
        # run ldconfig in a subprocess (3-4 ms of the first fit)
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_BYTES))
