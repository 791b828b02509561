"""Giving freed memory back to the system after a one-time burst of large temporaries."""

from __future__ import annotations

import ctypes


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc only; elsewhere nothing happens).

    Loading a large tract layer, or decoding a copy of one, frees tens of MB of temporaries.
    Once glibc's mmap threshold has grown past their size they come from the heap, which keeps
    them after they are freed: unreturned, they stay in the worker's resident memory.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
