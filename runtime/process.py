"""Settings for a process that runs module updates (an actor, or a benchmark baseline)."""

from __future__ import annotations

import ctypes
import ctypes.util

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 256 * 2**20, trim_threshold: int = 512 * 2**20) -> bool:
    """Keep freed blocks in the heap instead of returning them to the OS at once.

    glibc hands blocks over 128 KiB back to the OS when freed, so a training loop that
    frees and reallocates megabyte tensors every step page-faults them in again each
    time. Raising the thresholds keeps them for reuse: measured here, VAE epochs ran 44 ->
    39 ms. No library exposes mallopt, hence ctypes; a no-op (False) without glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
