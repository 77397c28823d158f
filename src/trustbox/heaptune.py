"""The C heap's settings for processes that stream large bodies (glibc on Linux).

A registry receiving a layer, or ``trustbox copy`` moving one, allocates and frees a buffer of a
few hundred KiB to 1 MiB for every chunk of it. glibc's defaults hand such buffers back to the
kernel as soon as they are freed (a dynamic ``mmap`` threshold that starts at 128 KiB, and a heap
trimmed whenever 128 KiB or more is free at its top), so the next chunk's buffer is fresh memory
again: a page fault and a zeroed page for every 4 KiB received. Measured on a 2-core machine
(``bench/migrate_bench.py``, and a registry receiving 1 GiB from 4 clients), that was ~20 % of
the registry's CPU per byte uploaded.

:func:`keep_stream_buffers` sets fixed thresholds instead: blocks below ``MMAP_THRESHOLD`` come
from the heap, and up to ``TRIM_THRESHOLD`` of free heap is kept for the next ones. The cost is
memory that stays mapped after a burst of transfers (at most ``TRIM_THRESHOLD`` per malloc arena,
and only if it was used). Elsewhere (musl, macOS, no libc found) nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

#: blocks of this size and larger are mapped for themselves (and unmapped when freed)
MMAP_THRESHOLD = 4 * 1024 * 1024
#: free memory kept at the top of a heap before it is given back to the kernel
TRIM_THRESHOLD = 32 * 1024 * 1024

# glibc's <malloc.h> parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_done: bool | None = None


def keep_stream_buffers() -> bool:
    """Set the thresholds above (once per process); True if the C library took them.

    Never raises: where there is no glibc ``mallopt`` this is a no-op that returns False.
    """
    global _done
    if _done is None:
        _done = _set(((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return _done


def _set(settings: tuple[tuple[int, int], ...]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
            return False
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in settings)
