"""One memory budget for all admitted requests, and freed heap given back to the OS.

A request keeps its body and its decoded images (at the model's input size)
while it runs: that is *held*, from ``limit - decode_share``, without waiting
(a request that does not fit is refused, as when the queue is full). Each
image's full-size decode reserves its header-estimated cost from
``decode_share`` while it decodes, waiting its turn, oldest first. The share
is sized for the costliest image, and a decode needs nothing else, so every
decode gets its turn once those before it finish: no request waits on one
that waits on it, and the total stays under ``limit`` whatever the queue.

Pillow allocates decoded images in blocks that glibc serves from per-thread
heaps, which keep freed pages resident: the next decode on another thread
grows its own heap instead of reusing them, so the resident set grows with
the threads that ever decoded. ``malloc_trim`` returns free pages to the OS;
the budget calls it after every ``TRIM_EVERY_BYTES`` of finished decodes and
the app when its last request leaves. Without glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Full size, converted to RGB (a copy; the original is then freed) and turned
# upright (a copy): Pillow keeps every mode in at most 4 bytes a pixel, RGB included.
DECODE_BYTES_PER_PIXEL = 8
HELD_BYTES_PER_PIXEL = 4  # the RGB image the model is given
TRIM_EVERY_BYTES = 16 * 1024 * 1024  # Pillow's block size: smaller decodes leave little behind


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


class MemoryBudget:
    """At most ``limit`` bytes reserved at once, ``decode_share`` of them for decodes in progress."""

    def __init__(
        self,
        limit: int,
        decode_share: int,
        trim: Callable[[], None] = release_free_memory,
        trim_every: int = TRIM_EVERY_BYTES,
    ):
        if not 0 < decode_share < limit:
            raise ValueError(f"decode_share must be positive and below limit, got {decode_share} of {limit}")
        self.limit = limit
        self.decode_share = decode_share
        self._trim = trim
        self._trim_every = trim_every
        self._held = self._decoding = self._peak = self._finished = 0
        self._turns: deque[object] = deque()  # decodes waiting, oldest first
        self._changed = threading.Condition()

    def usage(self) -> dict[str, int]:
        """Bytes: the limits, what is reserved now and the most ever reserved at once."""
        with self._changed:
            return {
                "limit": self.limit,
                "decode_share": self.decode_share,
                "held": self._held,
                "decoding": self._decoding,
                "peak": self._peak,
            }

    @contextmanager
    def holding(self) -> Iterator[Hold]:
        """A request's held bytes, released when the block ends (however it ends)."""
        hold = Hold(self)
        try:
            yield hold
        finally:
            hold.resize(0)

    def _change_held(self, change: int) -> bool:
        with self._changed:
            if change > 0 and self._held + change > self.limit - self.decode_share:
                return False
            self._held += change
            self._peak = max(self._peak, self._held + self._decoding)
            return True

    @contextmanager
    def decoding(self, nbytes: int, timeout: float) -> Iterator[None]:
        """Reserve ``nbytes`` of the decode share for the block; ``TimeoutError`` after ``timeout`` s in line."""
        if nbytes > self.decode_share:
            raise ValueError(f"a decode of {nbytes} bytes can never fit the decode share of {self.decode_share}")
        deadline = time.monotonic() + timeout
        turn = object()
        with self._changed:
            self._turns.append(turn)
            try:
                while self._turns[0] is not turn or self._decoding + nbytes > self.decode_share:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"no room to decode {nbytes} bytes within {timeout:g} s")
                    self._changed.wait(remaining)
            finally:
                self._turns.remove(turn)
                self._changed.notify_all()  # the next in line may fit too
            self._decoding += nbytes
            self._peak = max(self._peak, self._held + self._decoding)
        try:
            yield
        finally:
            with self._changed:
                self._decoding -= nbytes
                self._finished += nbytes
                trim = self._finished >= self._trim_every
                if trim:
                    self._finished = 0
                self._changed.notify_all()
            if trim:  # before another thread's heap grows instead of reusing these pages
                self._trim()


class Hold:
    """The bytes one request holds from its budget."""

    def __init__(self, budget: MemoryBudget):
        self._budget = budget
        self.nbytes = 0

    def resize(self, nbytes: int) -> bool:
        """Hold ``nbytes`` in all from now on; False, holding what it held, when growing does not fit."""
        if not self._budget._change_held(nbytes - self.nbytes):
            return False
        self.nbytes = nbytes
        return True
