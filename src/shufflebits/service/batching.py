"""Dynamic batching: concurrent requests share one model call.

On CPU a forward of 16 crops costs far less than 16 forwards of one, so the
server's one model thread takes the first waiting request, gathers whatever
else arrives within ``max_wait_ms`` (up to ``max_batch`` images), runs the
extractor once and hands every request its own rows. ``max_batch=1`` is the
unbatched server: one request per model call. The model only ever runs in
this thread, so it needs no lock and no thread safety.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..ciphers.base import Sealed

_STOP = object()


class Batcher:
    """``batcher.run(images)`` from any thread: the extractor's output rows for ``images``."""

    def __init__(self, extractor: Callable[[Sequence], Any], max_batch: int = 32, max_wait_ms: float = 10.0):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be positive and max_wait_ms non-negative")
        self.extractor = extractor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, images: list) -> Any:
        """Rows of ``extractor(images)`` (an array, or a ``Sealed`` from an in-graph model)."""
        self._ensure_started()
        job: Future = Future()
        self._jobs.put((images, job))
        return job.result()

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join(timeout=10)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="shufflebits-model", daemon=True)
                self._thread.start()

    def _gather(self, first) -> list:
        batch, count = [first], len(first[0])
        deadline = time.monotonic() + self.max_wait
        while count < self.max_batch:
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                self._jobs.put(_STOP)
                break
            batch.append(job)
            count += len(job[0])
        return batch

    def _loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                return
            batch = self._gather(first)
            images = [image for job_images, _ in batch for image in job_images]
            try:
                output = self.extractor(images)
                parts = _split(output, [len(job_images) for job_images, _ in batch])
            except BaseException as error:  # every waiting request learns why
                for _, job in batch:
                    job.set_exception(error)
                continue
            for (_, job), part in zip(batch, parts, strict=True):
                job.set_result(part)


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
        )
        for start, stop in itertools.pairwise(bounds)
    ]
