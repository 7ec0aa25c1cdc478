"""How the C allocator serves this process's large blocks (glibc; elsewhere nothing changes).

A node of a million files holds its tables as arrays of megabytes that grow by reallocation and
are dropped between versions. glibc serves a block above its mmap threshold from a mapping of its
own, but raises that threshold (up to 32 MiB) each time such a block is freed: from then on those
arrays come from the heap, where a reallocation leaves a hole behind and a freed array stays in
the resident set. A fixed threshold keeps every block of 128 KiB or more in its own mapping: grown
in place (mremap) and given back to the system when freed.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3          # mallopt's parameter number (malloc.h)
BIG_BLOCK = 128 * 1024          # glibc's default threshold, kept fixed


def map_big_blocks() -> bool:
    """Fix glibc's mmap threshold at `BIG_BLOCK`; False on another C library (nothing done)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    # (gnu_get_libc_version is glibc's own: musl's mallopt does nothing, macOS has none)
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, BIG_BLOCK))
