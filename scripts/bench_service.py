"""HTTP black-box throughput: requests/s and latency percentiles, batched and unbatched, side by side.

Starts `shufflebits serve` in a subprocess on 127.0.0.1 (so client and server do
not share a GIL), once with dynamic batching (--max-batch, --max-wait-ms) and
once unbatched (--max-batch 1), sends --requests requests from --concurrency
client threads, each carrying --images-per-request crops, and prints both rows.
Random weights: speed does not depend on what the model learned.

    .venv/bin/python scripts/bench_service.py --requests 200 --concurrency 8 --threads 1 --layouts nhwc nchw
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from shufflebits.service import HttpBlackBox


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def jpeg_crops(count: int, height: int, width: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).resize((width, height), Image.BILINEAR).save(buffer, format="JPEG", quality=90)
        crops.append(buffer.getvalue())
    return crops


def start_server(command: list[str], token: str, scratch: str) -> tuple[subprocess.Popen, Path]:
    """``command`` run as a server that accepts ``token``, its output in ``scratch/server.log``."""
    log = Path(scratch) / "server.log"
    with log.open("w") as log_file:
        environment = {**os.environ, "SHUFFLEBITS_TOKEN": token}
        server = subprocess.Popen(command, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    return server, log


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/v1/health", timeout=2).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not come up")


def calls_between(before: dict, after: dict) -> dict[int, int]:
    """Model calls by images per call, from two health answers' ``images_per_model_call``."""
    first = {int(size): count for size, count in (before["images_per_model_call"] or {}).items()}
    calls = {int(size): count - first.get(int(size), 0) for size, count in after["images_per_model_call"].items()}
    return {size: count for size, count in sorted(calls.items()) if count}


def measure(
    args, batch: int, threads: int | None, layout: str, token: str
) -> tuple[dict, np.ndarray, float, dict, float]:
    """(health, latencies in s, wall s, model calls by size, 1-minute load) of one server run."""
    height, width = (int(part) for part in args.size.lower().split("x"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "shufflebits", "serve", "--model", args.model, "--size", args.size]
        command += ["--port", str(port), "--max-batch", str(batch), "--max-wait-ms", str(args.max_wait_ms)]
        command += ["--max-queue", str(max(8, args.concurrency)), "--layout", layout]
        if threads:
            command += ["--threads", str(threads)]
        if args.cipher:
            from shufflebits.ciphers import generate_key, save_key

            key_path = Path(scratch) / "server.key"
            save_key(key_path, generate_key(args.cipher))
            command += ["--encrypt-with", str(key_path)]
        server, log = start_server(command, token, scratch)
        try:
            health = wait_for_health(url, server, log)
            crops = jpeg_crops(64, height, width)
            with HttpBlackBox(url, token, batch_size=args.images_per_request, retries=0) as box:

                def one_request(index: int) -> float:
                    images = [crops[(index + i) % len(crops)] for i in range(args.images_per_request)]
                    started = time.perf_counter()
                    box.features(images)
                    return time.perf_counter() - started

                for index in range(2 * args.concurrency):  # warm-up: first calls allocate
                    one_request(index)
                before = box.health()
                started = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    latencies = np.array(list(pool.map(one_request, range(args.requests))))
                wall = time.perf_counter() - started
                calls = calls_between(before, box.health())
        finally:
            server.terminate()
            server.wait(timeout=30)
    return health, latencies, wall, calls, os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="osnet_x0_25")
    parser.add_argument("--size", default="256x128", help="model input HxW (crops are sent at this size)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, nargs="+", help="the server's torch threads, one pair of rows each (default: serve's)"
    )
    parser.add_argument(
        "--layouts",
        nargs="+",
        choices=("nhwc", "nchw"),
        default=["nhwc"],
        help="the server's --layout, one pair of rows each (default: serve's, nhwc)",
    )
    parser.add_argument("--max-batch", type=int, default=32, help="the batched server's --max-batch")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the batched server's --max-wait-ms")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument(
        "--cipher", help="encrypt on the server with a fresh key for this cipher (e.g. shufflebits-otp)"
    )
    args = parser.parse_args()
    token = secrets.token_urlsafe(16)
    rows = []
    for threads in args.threads or [None]:
        for layout in args.layouts:
            suffix = (f", {threads} thr" if threads else "") + (f", {layout}" if len(args.layouts) > 1 else "")
            batched = f"batched (max {args.max_batch}, {args.max_wait_ms:g} ms{suffix})"
            rows += [(batched, args.max_batch, threads, layout), (f"unbatched{suffix}", 1, threads, layout)]
    load_before = os.getloadavg()[0]
    measured = [(label, *measure(args, batch, threads, layout, token)) for label, batch, threads, layout in rows]
    health = measured[0][1]
    encryption = args.cipher or "plaintext"
    print(f"model {health['model']} input {health['input_size']} encrypted={health['encrypted']} ({encryption})")
    print(
        f"{args.requests} requests x {args.images_per_request} image(s), "
        f"{args.concurrency} concurrent clients, {os.cpu_count()} CPU cores, 1-minute load {load_before:.1f} before"
    )
    header = f"{'server':<42} {'req/s':>7} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'load':>5}"
    print(f"{header}  images per model call: calls")
    for label, _, latencies, wall, calls, load in measured:
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000
        images_per_second = args.requests * args.images_per_request / wall
        sizes = " ".join(f"{size}:{count}" for size, count in calls.items())
        print(
            f"{label:<42} {args.requests / wall:>7.1f} {images_per_second:>9.1f} "
            f"{p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {load:>5.1f}  {sizes}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
