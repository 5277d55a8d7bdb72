"""The server's memory budget: what admitted requests reserve, never more than the limit, always given back.

Accounting only (no resident-memory readings here: ``scripts/bench_service_memory.py``
measures them): concurrent reservations stay under the limit, every way a
request ends releases what it held, and freed heap is trimmed after decodes
and when the queue drains.
"""

from __future__ import annotations

import io
import platform
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

import shufflebits.service.app as app_module
from shufflebits.errors import ShuffleBitsError
from shufflebits.service import BackgroundServer, create_app, memory
from shufflebits.service.memory import DECODE_BYTES_PER_PIXEL, MemoryBudget
from test_service_limits import half_sent_reply

TOKEN = "budget-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Fake:
    name, feature_dim, input_size = "fake", 8, (32, 16)

    def __call__(self, images):
        return np.zeros((len(images), self.feature_dim), dtype=np.float32)


def png(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def post(url: str, blobs: list[bytes]) -> httpx.Response:
    files = [("images", (f"{index}.png", blob, "image/png")) for index, blob in enumerate(blobs)]
    return httpx.post(f"{url}/v1/features", files=files, headers=AUTH, timeout=60)


def idle(budget: MemoryBudget) -> bool:
    usage = budget.usage()
    return usage["held"] == usage["decoding"] == 0


def test_concurrent_reservations_never_exceed_the_budget():
    budget = MemoryBudget(1000, 400, trim=lambda: None)
    live, most, lock = [0], [0], threading.Lock()
    sizes = random.Random(0).choices(range(1, 401), k=200)

    def one(nbytes: int) -> bool:
        with budget.holding() as hold:
            if not hold.resize(nbytes // 16):
                return False
            with budget.decoding(nbytes, timeout=30):
                with lock:
                    live[0] += nbytes
                    most[0] = max(most[0], live[0])
                time.sleep(0.001)
                with lock:
                    live[0] -= nbytes
        return True

    with ThreadPoolExecutor(16) as pool:
        answered = list(pool.map(one, sizes))
    assert all(answered)  # 16 holds of at most 25 bytes never fill the 600 held bytes
    assert most[0] <= budget.decode_share
    assert budget.usage()["peak"] <= budget.limit
    assert idle(budget)


def test_holds_never_take_the_decode_share_and_are_released_on_errors():
    budget = MemoryBudget(100, 40, trim=lambda: None)
    with pytest.raises(RuntimeError), budget.holding() as hold:
        assert hold.resize(60)
        assert not hold.resize(61) and hold.nbytes == 60  # unchanged when growing does not fit
        assert hold.resize(10)
        raise RuntimeError("the request failed")
    assert idle(budget)
    with pytest.raises(ValueError, match="never fit"), budget.decoding(41, timeout=1):
        pass


def test_a_decode_waits_its_turn_and_gives_up_after_its_timeout():
    budget = MemoryBudget(100, 40, trim=lambda: None)
    started, finish = threading.Event(), threading.Event()

    def costly() -> None:
        with budget.decoding(40, timeout=1):
            started.set()
            finish.wait(30)

    worker = threading.Thread(target=costly)
    worker.start()
    assert started.wait(30)
    with pytest.raises(TimeoutError), budget.decoding(1, timeout=0.05):
        pass
    assert budget.usage()["decoding"] == 40  # the one that gave up reserved nothing
    finish.set()
    worker.join()
    with budget.decoding(40, timeout=1):  # the whole share is free again
        pass
    assert idle(budget)


def test_the_heap_is_trimmed_after_every_trim_every_bytes_of_decodes():
    trims = []
    budget = MemoryBudget(100, 40, trim=lambda: trims.append(1), trim_every=10)
    for _ in range(2):
        with budget.decoding(4, timeout=1):
            pass
    assert trims == []
    with budget.decoding(4, timeout=1):
        pass
    assert trims == [1]


def test_decodes_past_the_share_wait_for_each_other_in_the_server(monkeypatch):
    side = 64
    decoding, most, lock = [0], [0], threading.Lock()
    original = app_module.decode_image

    def watched(*args, **kwargs):
        with lock:
            decoding[0] += 1
            most[0] = max(most[0], decoding[0])
        try:
            time.sleep(0.01)  # long enough for another request's decode to overlap, were it let in
            return original(*args, **kwargs)
        finally:
            with lock:
                decoding[0] -= 1

    monkeypatch.setattr(app_module, "decode_image", watched)
    # the decode share holds one image of max_pixels, and decode_workers would let two in
    app = create_app(Fake(), TOKEN, max_pixels=side * side, max_request_pixels=2 * side * side)
    budget = app.state.memory_budget
    assert budget.decode_share == DECODE_BYTES_PER_PIXEL * side * side
    with BackgroundServer(app) as server, ThreadPoolExecutor(6) as pool:
        blobs = [png(side, side, seed) for seed in range(2)]
        codes = list(pool.map(lambda _: post(server.url, blobs).status_code, range(6)))
        usage = httpx.get(f"{server.url}/v1/health", headers=AUTH).json()["memory_budget"]
    assert codes == [200] * 6
    assert most[0] == 1
    assert usage["peak"] <= usage["limit"] and usage["held"] == usage["decoding"] == 0


def test_every_way_a_request_ends_releases_its_reservations():
    app = create_app(Fake(), TOKEN, max_request_pixels=64 * 64, request_timeout=0.5)
    budget = app.state.memory_budget
    with BackgroundServer(app) as server:
        assert post(server.url, [png(32, 16)]).status_code == 200
        assert idle(budget)
        assert post(server.url, [b"not an image"]).status_code == 400
        assert idle(budget)
        assert post(server.url, [png(64, 64), png(64, 64)]).status_code == 413  # pixels, from the headers
        assert idle(budget)
        assert half_sent_reply(server.url, TOKEN).startswith(b"HTTP/1.1 408")
        assert idle(budget)


def test_a_taken_budget_answers_503_with_retry_after_and_keeps_nothing():
    app = create_app(Fake(), TOKEN, request_timeout=0.5)
    budget = app.state.memory_budget
    blob = png(32, 16)
    with BackgroundServer(app) as server:
        with budget.holding() as hold:  # every held byte taken: refused before the body is read
            assert hold.resize(budget.limit - budget.decode_share)
            refused = post(server.url, [blob])
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        assert "memory budget" in refused.json()["detail"]
        assert idle(budget)
        with budget.decoding(budget.decode_share, timeout=1):  # every decode byte taken: waits, then gives up
            timed_out = post(server.url, [blob])
        assert timed_out.status_code == 503 and timed_out.headers["retry-after"].isdigit()
        assert idle(budget)
        assert post(server.url, [blob]).status_code == 200


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_heap_is_trimmed_off_the_event_loop_when_the_queue_drains(monkeypatch):
    trims, threads = [], set()

    def trim():
        threads.add(threading.current_thread().name)
        trims.append(1)

    monkeypatch.setattr(app_module, "release_free_memory", trim)
    entered, release = threading.Event(), threading.Event()

    def slow(images):
        entered.set()
        release.wait(30)
        return Fake()(images)

    slow.input_size = (32, 16)
    with BackgroundServer(create_app(slow, TOKEN)) as server:
        answers = []
        worker = threading.Thread(target=lambda: answers.append(post(server.url, [png(32, 16)])))
        worker.start()
        assert entered.wait(30)
        assert trims == []  # a request is still in progress
        release.set()
        worker.join()
        assert answers[0].status_code == 200 and _until(lambda: trims == [1])
        assert post(server.url, [png(32, 16)]).status_code == 200
        assert _until(lambda: trims == [1, 1])
    assert {name.split("_")[0] for name in threads} == {"shufflebits-trim"}  # never the event loop's thread


def test_trimming_does_nothing_without_malloc_trim(monkeypatch):
    if platform.libc_ver()[0] == "glibc":
        assert memory._malloc_trim() is not None
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    memory.release_free_memory()  # musl, macOS: nothing to call, nothing raised


def test_the_budget_must_hold_one_largest_request_beside_one_largest_decode():
    with pytest.raises(ShuffleBitsError, match="at least"):
        create_app(Fake(), TOKEN, memory_budget_bytes=64 * 1024 * 1024)
    # a larger body cap raises the default instead of refusing it
    large = create_app(Fake(), TOKEN, max_request_bytes=256 * 1024 * 1024).state.memory_budget
    assert large.limit - large.decode_share >= 2 * 256 * 1024 * 1024
