"""Keep the hub's resident memory close to what it uses (glibc's allocator only).

Video checks run FFmpeg and OpenCV in worker threads, and glibc gives every thread that
allocates at once an arena of its own (up to eight per core), each keeping the memory freed
in it for reuse instead of handing it back. With sixteen checks at a time that held ~100 MB
of freed decoder and picture buffers (docs/performance.md). :func:`limit_arenas` caps the
arenas; :func:`give_back` returns what is free in them to the system, after each check.

Both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Final

log = logging.getLogger(__name__)

M_ARENA_MAX: Final = -8
"""``mallopt`` parameter number (glibc's malloc.h)."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def limit_arenas(count: int) -> bool:
    """Let threads share at most ``count`` malloc arenas (from now on); whether it was set."""
    libc = _libc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, count))
    log.debug("malloc arenas limited to %d: %s", count, ok)
    return ok


def give_back() -> None:
    """Return the allocator's free memory to the system (blocks for a few milliseconds)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
