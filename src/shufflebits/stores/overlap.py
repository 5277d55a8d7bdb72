"""Overlap reading, ciphering and writing a store: Arrow's Parquet I/O releases the GIL.

Each helper keeps one item in flight, so memory stays at a few row groups.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """``items`` in order, the next one produced in a worker thread while the caller uses this one."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = worker.submit(next, items, _END)
            yield item


@contextlib.contextmanager
def written_behind(write: Callable[[T], None]) -> Iterator[Callable[[T], None]]:
    """``put(item)`` hands ``item`` to ``write`` in a worker thread (after the previous one is written)."""
    pending: list[Future] = []

    def put(item: T) -> None:
        if pending:
            pending.pop().result()
        pending.append(worker.submit(write, item))

    with ThreadPoolExecutor(max_workers=1) as worker:
        yield put
        if pending:
            pending.pop().result()
