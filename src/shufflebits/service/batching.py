"""Dynamic batching: concurrent requests share one model call.

On CPU a forward of 16 crops costs far less than 16 forwards of one, so the
server's one model thread takes the requests waiting for it and, while fewer
than ``max_batch`` images are gathered, waits up to ``max_wait_ms`` for more,
but only while requests are on their way (announced with ``expecting``:
admitted, their bodies being read and decoded). When none is on its way it
runs at once: waiting for clients that have not sent anything only leaves the
model idle (and a lone client paid ``max_wait_ms`` on every request). ``max_batch=1`` is the
unbatched server: one request per model call. The model only ever runs in
this thread, so it needs no lock and no thread safety.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..ciphers.base import Sealed


class Batcher:
    """``batcher.run(images)`` from any thread: the extractor's output rows for ``images``."""

    def __init__(self, extractor: Callable[[Sequence], Any], max_batch: int = 32, max_wait_ms: float = 10.0):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be positive and max_wait_ms non-negative")
        self.extractor = extractor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._sizes: Counter[int] = Counter()  # images per model call -> how many calls had that many
        self._waiting: list[tuple[list, Future]] = []  # (images, answer), oldest first
        self._coming = 0  # announced requests that have not reached the model thread yet
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def run(self, images: list) -> Any:
        """Rows of ``extractor(images)`` (an array, or a ``Sealed`` from an in-graph model)."""
        with self.expecting() as submit:
            return submit(images)

    @contextmanager
    def expecting(self) -> Iterator[Callable[[list], Any]]:
        """Announce a request before its images are ready; ``submit(images)`` inside gives its rows.

        While it is announced, a model call that is gathering waits for it (up
        to ``max_wait_ms``); leaving the block without submitting withdraws it.
        """
        announced = [True]
        with self._changed:
            self._coming += 1

        def submit(images: list) -> Any:
            answer: Future = Future()
            with self._changed:
                if self._closed:
                    raise RuntimeError("the batcher is closed")
                self._start()
                if announced[0]:
                    self._coming -= 1
                    announced[0] = False
                self._waiting.append((images, answer))
                self._changed.notify_all()
            return answer.result()

        try:
            yield submit
        finally:
            with self._changed:
                if announced[0]:
                    self._coming -= 1
                    self._changed.notify_all()

    def close(self) -> None:
        """Answer what is waiting, then stop the model thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="shufflebits-model", daemon=True)
            self._thread.start()

    def _gather(self) -> list[tuple[list, Future]]:
        """The next model call's requests, oldest first; empty once closed with nothing waiting."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            if not self._waiting:
                return []
            deadline = time.monotonic() + self.max_wait
            while (
                self._coming
                and not self._closed
                and sum(len(images) for images, _ in self._waiting) < self.max_batch
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._changed.wait(remaining)
            batch, count = [], 0
            while self._waiting and count < self.max_batch:  # a request is never split; the last may overshoot
                batch.append(self._waiting.pop(0))
                count += len(batch[-1][0])
            self._sizes[count] += 1
            return batch

    def call_sizes(self) -> dict[int, int]:
        """How many model calls ran with each number of images, so far."""
        with self._changed:
            return dict(sorted(self._sizes.items()))

    def _loop(self) -> None:
        while batch := self._gather():
            images = [image for job_images, _ in batch for image in job_images]
            try:
                output = self.extractor(images)
                parts = _split(output, [len(job_images) for job_images, _ in batch])
            except BaseException as error:  # every waiting request learns why
                for _, answer in batch:
                    answer.set_exception(error)
                continue
            for (_, answer), part in zip(batch, parts, strict=True):
                answer.set_result(part)


def _split(output: Any, counts: list[int]) -> list:
    """One part of ``output`` per request, in order; refuses an output with the wrong row count."""
    rows = output.shape[0] if isinstance(output, Sealed) else np.asarray(output).shape[0]
    if rows != sum(counts):
        raise RuntimeError(f"extractor returned {rows} rows for {sum(counts)} images")
    bounds = np.cumsum([0, *counts])
    if not isinstance(output, Sealed):
        array = np.asarray(output)
        return [array[start:stop] for start, stop in itertools.pairwise(bounds)]
    return [  # an in-graph model's raw, untagged ciphertext: rows slice cleanly
        Sealed.from_words(
            output.payload()[start:stop],
            cipher=output.cipher,
            key_fingerprint=output.key_fingerprint,
            dtype=output.dtype,
            nonces=None if output.nonces is None else output.nonces[start:stop],
            params=output.params,
        )
        for start, stop in itertools.pairwise(bounds)
    ]
