"""Dynamic batching: which requests share a model call, and that sharing changes no answer.

``Batcher`` is driven directly where the order of arrivals matters, so no test
depends on timing: a gathering call waits only for announced requests, and the
waits that must not happen are given a ``max_wait_ms`` of ten minutes.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import numpy as np
import pytest
from PIL import Image

from shufflebits.runtime import serving_threads
from shufflebits.service import BackgroundServer, HttpBlackBox, create_app
from shufflebits.service.batching import Batcher

TOKEN = "batching-token"
FOREVER_MS = 600_000.0


class FakeExtractor:
    """Deterministic 8-d 'features' of each image's pixels (their SHA-256 as float32 words)."""

    name, feature_dim, input_size = "fake", 8, (32, 16)

    def __call__(self, images):
        rows = [np.frombuffer(hashlib.sha256(image.tobytes()).digest(), dtype=np.uint32) for image in images]
        return np.stack(rows).view(np.float32)


def make_images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)) for _ in range(count)]


class Rows:
    """A model whose rows are its inputs, counting its calls and the images of each."""

    def __init__(self):
        self.calls: list[list[int]] = []

    def __call__(self, images):
        self.calls.append(list(images))
        return np.asarray(images, dtype=np.float32).reshape(-1, 1)


def answered(function, *args) -> threading.Thread:
    """``function(*args)`` started in a thread (joined by the test with a generous bound)."""
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def test_announced_requests_share_one_model_call():
    model = Rows()
    batcher = Batcher(model, max_batch=32, max_wait_ms=FOREVER_MS)
    results = {}
    with ExitStack() as stack:
        submits = [stack.enter_context(batcher.expecting()) for _ in range(4)]

        def one(index: int) -> None:
            results[index] = submits[index]([index, 10 + index])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(4)))
    batcher.close()
    assert len(model.calls) == 1 and sorted(model.calls[0]) == sorted([0, 1, 2, 3, 10, 11, 12, 13])
    for index, rows in results.items():  # each request gets its own rows back
        assert rows.ravel().tolist() == [index, 10 + index]
    assert batcher.call_sizes() == {8: 1}


def test_a_lone_request_does_not_wait_out_max_wait():
    model = Rows()
    batcher = Batcher(model, max_batch=32, max_wait_ms=FOREVER_MS)
    thread = answered(batcher.run, [7])
    thread.join(timeout=60)
    assert not thread.is_alive() and model.calls == [[7]]
    batcher.close()


def test_a_withdrawn_request_is_not_waited_for():
    model = Rows()
    batcher = Batcher(model, max_batch=32, max_wait_ms=FOREVER_MS)
    with batcher.expecting() as first:
        with batcher.expecting():  # announced, then refused before its images are ready
            thread = answered(first, [1])
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert model.calls == [[1]]
    batcher.close()


def test_max_batch_caps_a_call_without_splitting_a_request():
    model = Rows()
    batcher = Batcher(model, max_batch=3, max_wait_ms=FOREVER_MS)
    with ExitStack() as stack:
        submits = [stack.enter_context(batcher.expecting()) for _ in range(3)]
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda pair: pair[0](pair[1]), zip(submits, [[1, 2], [3, 4], [5]])))
    batcher.close()
    assert [rows.ravel().tolist() for rows in results] == [[1, 2], [3, 4], [5]]
    assert all(len(call) <= 4 for call in model.calls) and sum(map(len, model.calls)) == 5
    assert len(model.calls) >= 2


def test_a_failing_model_call_fails_every_request_in_it():
    def broken(images):
        raise RuntimeError("model exploded")

    batcher = Batcher(broken, max_batch=32, max_wait_ms=FOREVER_MS)
    errors = []

    def one(submit, images):
        try:
            submit(images)
        except RuntimeError as error:
            errors.append(str(error))

    with ExitStack() as stack:
        submits = [stack.enter_context(batcher.expecting()) for _ in range(3)]
        threads = [answered(one, submit, [index]) for index, submit in enumerate(submits)]
        for thread in threads:
            thread.join(timeout=60)
    batcher.close()
    assert errors == ["model exploded"] * 3


def test_batched_ciphertext_equals_unbatched_for_a_deterministic_cipher():
    from shufflebits.registry import create_cipher

    cipher = create_cipher("shufflebits")  # fixed permutation: no nonces, the same words every time
    image_sets = [make_images(1 + index % 3, seed=50 + index) for index in range(8)]
    answers = {}
    for max_batch in (32, 1):
        app = create_app(FakeExtractor(), TOKEN, cipher, max_batch=max_batch, max_wait_ms=50)
        with BackgroundServer(app) as server, HttpBlackBox(server.url, TOKEN) as box:
            with ThreadPoolExecutor(8) as pool:
                answers[max_batch] = list(pool.map(box.features, image_sets))
    for images, batched, unbatched in zip(image_sets, answers[32], answers[1], strict=True):
        reference = cipher.encrypt(FakeExtractor()(images))  # independent of any server
        assert batched.payload().tobytes() == unbatched.payload().tobytes() == reference.payload().tobytes()
        assert cipher.decrypt(batched, require_authenticated=True).tobytes() == FakeExtractor()(images).tobytes()


def test_health_counts_images_per_model_call_for_the_token_holder_only():
    image_sets = [make_images(2, seed=70 + index) for index in range(5)]
    with BackgroundServer(create_app(FakeExtractor(), TOKEN)) as server, HttpBlackBox(server.url, TOKEN) as box:
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(box.features, image_sets))
        calls = box.health()["images_per_model_call"]
        public = httpx.get(f"{server.url}/v1/health").json()
    assert public["images_per_model_call"] is None
    assert sum(int(size) * count for size, count in calls.items()) == 10
    assert all(int(size) % 2 == 0 for size in calls)  # two-image requests are never split


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (16, 15), (None, 1)])
def test_the_server_leaves_one_core_to_http(monkeypatch, cores, threads):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert serving_threads() == threads
