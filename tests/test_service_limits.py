"""The server's bounds: memory per request and in total, admission, slow bodies, decoding near the input size.

The memory test runs the server in its own process on loopback and reads its
resident memory from /proc while decompression-bomb PNGs (a few KiB that decode
to 4096x4096 RGBA, the most bytes per pixel a PNG gives) are posted to it.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from shufflebits.data.images import decode_image, load_image, read_image
from shufflebits.service import BackgroundServer, create_app

TOKEN = "limits-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024
BOMB_SIDE = 4096


class Recording:
    """A fake extractor that keeps the size of every image it is given."""

    name = "recording"
    feature_dim = 8
    input_size = (32, 16)
    interpolation = "bilinear"

    def __init__(self):
        self.images: list[Image.Image] = []

    def __call__(self, images):
        self.images.extend(images)
        rows = [np.frombuffer(hashlib.sha256(image.tobytes()).digest(), dtype=np.uint32) for image in images]
        return np.stack(rows).view(np.float32)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def bomb() -> bytes:
    return encoded(Image.new("RGBA", (BOMB_SIDE, BOMB_SIDE)), compress_level=9)


def post(url: str, blobs: list[bytes], timeout: float = 120) -> httpx.Response:
    files = [("images", (f"{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]
    return httpx.post(f"{url}/v1/features", files=files, headers=AUTH, timeout=timeout)


def noise(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


SERVER = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from shufflebits.service import create_app
    from shufflebits.service.server import serve

    class Fake:
        name, feature_dim, input_size = "fake", 8, (256, 128)
        def __call__(self, images):
            rows = [np.frombuffer(hashlib.sha256(i.tobytes()).digest(), dtype=np.uint32) for i in images]
            return np.stack(rows).view(np.float32)

    serve(create_app(Fake(), "TOKEN"), port=int(sys.argv[1]), log_level="warning")
    """
).replace("TOKEN", TOKEN)


def memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of ``pid`` in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_worst_case_requests_stay_within_the_memory_bounds(tmp_path):
    from shufflebits.service.app import DEFAULT_MAX_REQUEST_PIXELS

    script = tmp_path / "server.py"
    script.write_text(SERVER)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, str(script), str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert server.poll() is None
            try:
                httpx.get(f"{url}/v1/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert post(url, [encoded(noise(128, 64))]).status_code == 200  # warm: every import done
        baseline = memory(server.pid)["VmRSS"]
        blob = bomb()
        assert len(blob) < 100 * 1024
        fits = DEFAULT_MAX_REQUEST_PIXELS // (BOMB_SIDE * BOMB_SIDE)
        assert fits >= 1
        assert post(url, [blob] * fits).status_code == 200
        assert memory(server.pid)["VmHWM"] - baseline <= 256
        refused = post(url, [blob] * 32)  # the 66 KiB request that added 2 GiB
        assert refused.status_code == 413 and "pixels" in refused.json()["detail"]
        codes = []

        def worst_case() -> None:
            codes.append(post(url, [blob] * fits).status_code)

        threads = [threading.Thread(target=worst_case) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == [200, 200, 200]
        after = memory(server.pid)
        assert after["VmHWM"] - baseline <= 512
        assert after["VmRSS"] - baseline <= 64
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_pixel_budget_is_checked_on_headers_before_decoding():
    extractor = Recording()
    app = create_app(extractor, TOKEN, max_request_pixels=3 * 64 * 32)
    with BackgroundServer(app) as server:
        small = encoded(noise(64, 32))
        assert post(server.url, [small] * 3).status_code == 200
        refused = post(server.url, [small] * 4)
        assert refused.status_code == 413 and str(3 * 64 * 32) in refused.json()["detail"]
    assert len(extractor.images) == 3  # the refused request reached neither decoding nor the model


def test_images_reach_the_model_at_its_input_size():
    extractor = Recording()
    large = noise(200, 100, seed=1)
    photo = noise(256, 128, seed=2)
    jpeg = encoded(photo, "JPEG", quality=95)
    with BackgroundServer(create_app(extractor, TOKEN)) as server:
        assert post(server.url, [encoded(large), jpeg]).status_code == 200
    png_seen, jpeg_seen = extractor.images
    assert png_seen.size == jpeg_seen.size == (16, 32)
    reference = large.resize((16, 32), Image.Resampling.BILINEAR)
    assert png_seen.tobytes() == reference.tobytes()
    # A JPEG 8x the input size decodes at 1/8 scale (DCT scaling) before the same resize.
    with Image.open(io.BytesIO(jpeg)) as opened:
        opened.draft("RGB", (16, 32))
        assert opened.size == (16, 32)
        drafted = opened.convert("RGB")
    assert jpeg_seen.tobytes() == drafted.tobytes()
    assert jpeg_seen.tobytes() == load_image(jpeg, size=(32, 16)).tobytes()


def test_exif_orientation_is_applied_the_same_everywhere(tmp_path):
    upright = noise(48, 24, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    blob = encoded(stored, "PNG", exif=exif)
    path = tmp_path / "turned.png"
    path.write_bytes(blob)
    with Image.open(io.BytesIO(blob)) as opened:
        reference = ImageOps.exif_transpose(opened).convert("RGB")
    assert reference.size == (24, 48) and reference.tobytes() == upright.tobytes()
    assert read_image(path).tobytes() == decode_image(blob).tobytes() == reference.tobytes()
    sized = reference.resize((16, 32), Image.Resampling.BILINEAR).tobytes()
    assert load_image(path, size=(32, 16)).tobytes() == sized
    extractor = Recording()
    with BackgroundServer(create_app(extractor, TOKEN)) as server:
        assert post(server.url, [blob]).status_code == 200
    assert extractor.images[0].tobytes() == sized


def test_a_full_queue_answers_503_with_retry_after():
    release, entered = threading.Event(), threading.Event()
    inner = Recording()

    def slow(images):
        entered.set()
        release.wait(30)
        return inner(images)

    app = create_app(slow, TOKEN, max_queue=1)
    with BackgroundServer(app) as server:
        blob = encoded(noise(32, 16))
        first = []
        worker = threading.Thread(target=lambda: first.append(post(server.url, [blob])))
        worker.start()
        assert entered.wait(30)
        busy = post(server.url, [blob])
        release.set()
        worker.join()
        assert busy.status_code == 503 and busy.headers["retry-after"].isdigit()
        assert first[0].status_code == 200
        assert post(server.url, [blob]).status_code == 200  # the slot is free again


def half_sent_reply(url: str, token: str = TOKEN) -> bytes:
    """The server's answer to a request whose body stops after its first bytes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        head = (
            f"POST /v1/features HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n"
        )
        client.sendall(head.encode() + b"--x\r\n")  # then nothing more
        return client.recv(4096)


def test_a_half_sent_body_is_answered_408_and_frees_its_slot():
    app = create_app(Recording(), TOKEN, request_timeout=0.5, max_queue=1)
    with BackgroundServer(app) as server:
        started = time.monotonic()
        reply = half_sent_reply(server.url).decode(errors="replace")
        assert reply.startswith("HTTP/1.1 408") and time.monotonic() - started < 10
        assert post(server.url, [encoded(noise(32, 16))]).status_code == 200


def test_connections_that_never_finish_their_headers_are_closed():
    """uvicorn alone keeps a half-sent request (or a silent connection) open for ever; a trickle must not help."""
    with BackgroundServer(create_app(Recording(), TOKEN), header_timeout=0.5) as server:
        host, port = server.url.removeprefix("http://").split(":")
        silent = socket.create_connection((host, int(port)))
        half = socket.create_connection((host, int(port)))
        half.sendall(b"POST /v1/features HTTP/1.1\r\nHost: x\r\n")
        trickle = socket.create_connection((host, int(port)))
        started = time.monotonic()
        for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n":  # one byte every 0.1 s: never done in 0.5 s
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        for connection in (silent, half, trickle):
            connection.settimeout(5)
            try:
                assert connection.recv(100) == b""  # closed by the server, nothing answered
            except ConnectionResetError:
                pass
            connection.close()
        assert time.monotonic() - started < 5
        # a client that keeps its connection between requests is still answered
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/v1/health").status_code == 200
            time.sleep(0.2)
            assert client.get("/v1/health").status_code == 200
