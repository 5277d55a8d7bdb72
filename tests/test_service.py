"""The black box over real HTTP: a uvicorn server on 127.0.0.1 and the client.

The extractor is a small fake (features = SHA-256 of the pixels, viewed as
float32) so the tests exercise the HTTP layer exactly, NaN bit patterns included.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from shufflebits.ciphers import spec
from shufflebits.errors import ShuffleBitsError
from shufflebits.service import BackgroundServer, HttpBlackBox, InProcessBlackBox, create_app
from shufflebits.service.wire import (
    REQUEST_ID_HEADER,
    answer_context,
    concatenate_results,
    decode_array,
    decode_result,
    encode_array,
    encode_result,
)

TOKEN = "s3cret-token"
NAN_WORD = 0x7FA00001  # a signalling-NaN payload that any float round trip would alter


class FakeExtractor:
    """Deterministic 16-d 'features' from the pixels, with a NaN word in column 0."""

    name = "fake"
    feature_dim = 16
    input_size = (32, 16)

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        rows = [np.frombuffer(hashlib.sha256(image.tobytes()).digest() * 2, dtype=np.uint32).copy() for image in images]
        words = np.stack(rows)
        words[:, 0] = NAN_WORD
        return words.view(np.float32)


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)) for _ in range(count)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def post(url: str, blobs: list[bytes], token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    files = [("images", (f"{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]
    return httpx.post(f"{url}/v1/features", files=files, headers=headers, timeout=30)


class Counting:
    """ASGI wrapper counting feature requests and failing the first ``fail`` with 503."""

    def __init__(self, app, fail: int = 0):
        self.app, self.fail, self.requests = app, fail, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/v1/features":
            self.requests += 1
            if self.requests <= self.fail:
                await JSONResponse({"detail": "busy"}, status_code=503)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def plain_server():
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, max_request_bytes=256 * 1024, max_images=8)) as server:
        yield server


def test_wire_round_trip_keeps_nan_bit_patterns():
    words = np.array([[NAN_WORD, 0x7F800000, 0xFFFFFFFF, 0]], dtype=np.uint32)
    decoded = decode_array(*encode_array(words.view(np.float32)))
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded.view(np.uint32), words)
    big_endian = words.astype(">u4").view(">f4")
    assert encode_array(big_endian) == encode_array(words.view(np.float32))
    with pytest.raises(ShuffleBitsError, match="does not match shape"):
        decode_array(encode_array(words)[0], [2, 4], "uint32")
    with pytest.raises(ShuffleBitsError, match="dtype"):
        decode_array(encode_array(words)[0], [1, 4], "object")


@pytest.mark.parametrize("name", ["shufflebits-otp", "aes-gcm"])
def test_wire_sealed_round_trip_and_inconsistent_metadata(name):
    from shufflebits.registry import create_cipher

    cipher = create_cipher(name)
    x = np.random.default_rng(6).standard_normal((3, 5)).astype(np.float32)
    rid = "0" * 32
    body = encode_result(cipher.encrypt(x, authenticate=True, context=answer_context(rid, 3)), rid)
    assert body["encryption"]["mode"] == spec(name).mode
    joined = concatenate_results([decode_result(body), decode_result(body)])
    assert joined.shape == (6, 5) and cipher.decrypt(joined).tobytes() == np.concatenate([x, x]).tobytes()
    for field, value, message in [
        ("plaintext_shape", [3, 4], "declares plaintext shape"),
        ("plaintext_dtype", "float64", "malformed encryption metadata"),
        ("cipher", "rot13", "unknown cipher"),
    ]:
        bad = {**body, "encryption": {**body["encryption"], field: value}}
        with pytest.raises(ShuffleBitsError, match=message):
            decode_result(bad)


def test_unversioned_answers_are_decoded_only_where_the_construction_is_unchanged():
    """Wire version 1 answers (no ``version``): fixed ShuffleBits decodes; one-time, ChaCha20, AES-GCM refused."""
    from shufflebits.registry import create_cipher

    x = np.random.default_rng(7).standard_normal((2, 4)).astype(np.float32)
    rid = "1" * 32
    for name, readable in [("shufflebits", True), ("shufflebits-otp", False), ("chacha20", False), ("aes-gcm", False)]:
        cipher = create_cipher(name)
        body = encode_result(cipher.encrypt(x), rid)
        old = {key: value for key, value in body.items() if key not in ("version", "response_id")}
        if readable:
            assert cipher.decrypt(decode_result(old)).tobytes() == x.tobytes()
        else:
            with pytest.raises(ShuffleBitsError, match="older than wire version 2"):
                decode_result(old)
    with pytest.raises(ShuffleBitsError, match="wire version 3"):
        decode_result({**body, "version": 3})


def test_token_required(plain_server):
    blob = png_bytes(make_images(1)[0])
    assert post(plain_server.url, [blob], token=None).status_code == 401
    assert post(plain_server.url, [blob], token="wrong").status_code == 401
    assert post(plain_server.url, [blob], token=TOKEN + "x").status_code == 401
    answer = post(plain_server.url, [blob])
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")


def test_features_are_the_extractor_bytes(plain_server):
    images = make_images(3)
    body = post(plain_server.url, [png_bytes(image) for image in images]).json()
    assert body["dtype"] == "float32" and body["shape"] == [3, 16] and body["encryption"] is None
    assert "NaN" not in post(plain_server.url, [png_bytes(images[0])]).text
    expected = FakeExtractor()(images)
    assert decode_array(body["features"], body["shape"], body["dtype"]).tobytes() == expected.tobytes()


def test_bad_requests_get_clear_4xx(plain_server):
    answer = post(plain_server.url, [png_bytes(make_images(1)[0]), b"not an image at all"])
    assert answer.status_code == 400
    assert "images[1]" in answer.json()["detail"] and "not a decodable image" in answer.json()["detail"]
    big = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)))
    assert len(big) > 256 * 1024
    assert post(plain_server.url, [big]).status_code == 413
    assert post(plain_server.url, [png_bytes(make_images(1)[0])] * 9).status_code == 413
    auth = {"Authorization": f"Bearer {TOKEN}"}
    empty = httpx.post(f"{plain_server.url}/v1/features", data={"other": "x"}, headers=auth)
    assert empty.status_code == 422


def test_health_needs_no_token(plain_server):
    health = httpx.get(f"{plain_server.url}/v1/health").json()
    assert health["model"] == "fake" and health["feature_dim"] == 16 and health["input_size"] == [32, 16]
    assert health["encrypted"] is False and health["key_fingerprint"] is None


def test_client_matches_in_process_for_every_input_kind(plain_server, tmp_path):
    images = make_images(5, seed=2)
    path = tmp_path / "crop.png"
    images[1].save(path)
    sources = [images[0], path, png_bytes(images[2]), np.asarray(images[3]), str(path)]
    expected = InProcessBlackBox(FakeExtractor()).features(sources)
    with HttpBlackBox(plain_server.url, TOKEN, batch_size=2) as box:
        got = box.features(sources)
        single = box.features(str(path))  # one path, not a list of its characters
    assert got.dtype == np.float32 and got.shape == (5, 16)
    assert got.tobytes() == expected.tobytes()
    assert got[1].tobytes() == got[4].tobytes() == single.tobytes()


def test_client_reports_4xx_without_retrying():
    counting = Counting(create_app(FakeExtractor(), TOKEN))
    with BackgroundServer(counting) as server, HttpBlackBox(server.url, "wrong", retries=3, backoff=0) as box:
        with pytest.raises(ShuffleBitsError, match="HTTP 401"):
            box.features(make_images(1))
    assert counting.requests == 1


def test_client_batches_and_retries_5xx():
    counting = Counting(create_app(FakeExtractor(), TOKEN), fail=1)
    images = make_images(7, seed=3)
    with BackgroundServer(counting) as server, HttpBlackBox(server.url, TOKEN, batch_size=3, backoff=0.01) as box:
        got = box.features(images)
    assert counting.requests == 1 + 3  # one 503, then batches of 3, 3 and 1
    assert got.tobytes() == FakeExtractor()(images).tobytes()


def test_client_gives_up_on_unreachable_server():
    with BackgroundServer(create_app(FakeExtractor(), TOKEN)) as server:
        url = server.url
    with HttpBlackBox(url, TOKEN, retries=2, backoff=0.01, timeout=2) as box:
        with pytest.raises(ShuffleBitsError, match="failed after 3 attempts"):
            box.features(make_images(1))


def test_concurrent_requests_are_all_correct():
    extractor = FakeExtractor()
    inside, overlap = [0], [False]
    guard = threading.Lock()

    def exclusive(images):
        with guard:
            inside[0] += 1
            overlap[0] |= inside[0] > 1
        try:
            return extractor(images)
        finally:
            with guard:
                inside[0] -= 1

    image_sets = [make_images(3, seed=10 + i) for i in range(8)]
    with BackgroundServer(create_app(exclusive, TOKEN)) as server, HttpBlackBox(server.url, TOKEN) as box:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda images: box.features(images * 4), image_sets))
    for images, got in zip(image_sets, results):
        assert got.tobytes() == FakeExtractor()(images * 4).tobytes()
    assert 1 <= extractor.calls <= 8 and not overlap[0]  # batched across requests, never run concurrently


def test_unbatched_server_runs_one_request_per_call():
    extractor = FakeExtractor()
    image_sets = [make_images(1, seed=40 + i) for i in range(3)]
    app = create_app(extractor, TOKEN, max_batch=1, max_wait_ms=5000)
    with BackgroundServer(app) as server, HttpBlackBox(server.url, TOKEN) as box:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(box.features, image_sets))
    assert extractor.calls == 3
    assert [got.tobytes() for got in results] == [FakeExtractor()(images).tobytes() for images in image_sets]


def test_create_app_refuses_empty_token():
    with pytest.raises(ShuffleBitsError, match="token"):
        create_app(FakeExtractor(), "")


@pytest.fixture(scope="module", params=["shufflebits", "shufflebits-otp", "chacha20", "aes-gcm"])
def sealed_server(request):
    from shufflebits.registry import create_cipher

    cipher = create_cipher(request.param)
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, cipher)) as server:
        yield server, cipher


def test_encrypted_answers_decrypt_bit_exact(sealed_server):
    server, cipher = sealed_server
    images = make_images(5, seed=4)
    with HttpBlackBox(server.url, TOKEN, batch_size=2) as box:
        sealed = box.features(images)
    assert sealed.cipher == cipher.name and sealed.key_fingerprint == cipher.key.fingerprint
    assert sealed.shape == (5, 16) and sealed.data.shape[0] == 5
    assert cipher.decrypt(sealed).tobytes() == FakeExtractor()(images).tobytes()
    body = post(server.url, [png_bytes(images[0])]).json()
    assert body["encryption"]["cipher"] == cipher.name
    assert body["encryption"]["key_fingerprint"] == cipher.key.fingerprint
    if not spec(cipher.name).format_preserving:
        assert body["dtype"] == "uint8" and body["shape"] == [1, 16 * 4 + spec(cipher.name).tag_bytes]
    else:
        assert body["dtype"] == "float32" and body["shape"] == [1, 16]
    health = httpx.get(f"{server.url}/v1/health").json()
    assert health["encrypted"] is True and health["key_fingerprint"] is None  # only behind the token
    wrong = httpx.get(f"{server.url}/v1/health", headers={"Authorization": "Bearer wrong"}).json()
    assert wrong["key_fingerprint"] is None
    health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert health["key_fingerprint"] == cipher.key.fingerprint


def test_nonces_are_fresh_per_vector_and_request(sealed_server):
    server, cipher = sealed_server
    image = make_images(1, seed=5)[0]
    with HttpBlackBox(server.url, TOKEN) as box:
        first, second = box.features([image, image]), box.features([image])
    words = {row.tobytes() for row in np.concatenate([first.words(), second.words()])}
    if spec(cipher.name).nonce_bytes == 0:  # the paper's fixed mode: deterministic by design, no nonces
        assert first.nonces is None and len(words) == 1
    else:
        assert len({row.tobytes() for row in np.concatenate([first.nonces, second.nonces])}) == 3
        assert len(words) == 3


def test_serve_cli_refuses_to_run_without_a_token(monkeypatch, capsys):
    from shufflebits.cli import main

    monkeypatch.delenv("SHUFFLEBITS_TOKEN", raising=False)
    assert main(["serve", "--model", "osnet_x0_25", "--port", "8123"]) == 2
    assert "token" in capsys.readouterr().err
    for budget, said in (
        ("0", "--memory-budget-mib must be a positive number"),
        ("inf", "--memory-budget-mib must be a positive number"),
        ("8", "cannot hold one largest request"),
    ):
        code = main(["serve", "--model", "osnet_x0_25", "--token", "t", "--memory-budget-mib", budget])
        err = capsys.readouterr().err
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1


def test_serve_cli_runs_a_real_model_with_a_key(tmp_path):
    from shufflebits.ciphers import cipher_for_key, generate_key, load_key, save_key

    save_key(tmp_path / "server.key", generate_key("shufflebits-otp"))
    cipher = cipher_for_key(load_key(tmp_path / "server.key"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "shufflebits",
        "serve",
        "--model",
        "osnet_x0_25",
        "--size",
        "64x32",
        "--port",
        str(port),
        "--encrypt-with",
        str(tmp_path / "server.key"),
        "--memory-budget-mib",
        "320",
    ]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, env={**os.environ, "SHUFFLEBITS_TOKEN": TOKEN}, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                health = httpx.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health["model"] == "osnet_x0_25" and health["input_size"] == [64, 32] and health["feature_dim"] == 512
        assert health["key_fingerprint"] == cipher.key.fingerprint
        assert health["memory_budget"]["limit"] == 320 * 2**20  # --memory-budget-mib reaches the app
        with HttpBlackBox(url, TOKEN) as box:
            features = cipher.decrypt(box.features(make_images(2)))
        assert features.shape == (2, 512) and features.dtype == np.float32 and np.isfinite(features).all()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_serve_reports_a_taken_port_in_one_line():
    import socket as socket_module

    from shufflebits.service.server import serve

    with socket_module.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ShuffleBitsError, match=r"cannot listen on 127\.0\.0\.1"):
            serve(None, "127.0.0.1", port)


def lying_server(rows_for, width_for):
    """An app answering ``rows_for(n)`` rows of ``width_for(call)`` values for n uploaded images."""
    app, calls = FastAPI(), [0]

    @app.post("/v1/features")
    async def features(request: Request) -> dict:
        async with request.form() as form:
            n = len(form.getlist("images"))
        calls[0] += 1
        answer = np.zeros((rows_for(n), width_for(calls[0])), dtype=np.float32)
        return encode_result(answer, request.headers[REQUEST_ID_HEADER])

    return app


@pytest.mark.parametrize(
    "rows_for, width_for, message",
    [
        (lambda n: n - 1, lambda call: 16, "shape \\[1, 16\\] for 2 images"),
        (lambda n: n + 1, lambda call: 16, "for 2 images"),
        (lambda n: n, lambda call: 0, "at least one value"),
        (lambda n: n, lambda call: 16 + call, "different widths \\(17, 18\\)"),
    ],
)
def test_client_checks_rows_and_width_of_every_answer(rows_for, width_for, message):
    with BackgroundServer(lying_server(rows_for, width_for)) as server, HttpBlackBox(server.url, TOKEN) as box:
        box.batch_size = 2
        with pytest.raises(ShuffleBitsError, match=message):
            box.features(make_images(4))


@pytest.mark.parametrize("token", ["tökén", "", " padded", "line\nbreak"])
def test_client_refuses_tokens_http_cannot_carry(token):
    with pytest.raises(ShuffleBitsError, match="printable ASCII"):
        HttpBlackBox("http://127.0.0.1:9", token)
