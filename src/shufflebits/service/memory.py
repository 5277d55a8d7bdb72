"""Give freed heap memory back to the OS after a request has decoded its images.

Pillow allocates decoded images in blocks below glibc's mmap threshold, so after
a large upload is freed the pages stay in the process (RSS does not come down)
until ``malloc_trim`` returns them. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return getattr(library, "malloc_trim", None)


def release_free_memory() -> None:
    """Return free heap pages to the OS where the C library can (glibc's ``malloc_trim``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
