"""HTTP black-box memory: the server's RSS before, at the peak of and after bursts of worst-case requests.

Starts `shufflebits serve` (random weights) in a subprocess on 127.0.0.1 and
warms it with one small request. Each scenario then sends that many worst-case
requests at once: as many PNGs of a few KiB that decode to 4096x4096 RGBA
stored turned (EXIF orientation 6, so the server also turns them upright) as
one request's pixel budget admits, each padded with a private PNG chunk so
that the body is just under the server's body cap (`--no-fill-body`: bare,
so every request is admitted and only the decodes wait). Per scenario it prints the
answers' status codes, the RSS just before (baseline), the peak (VmHWM reset
through /proc/PID/clear_refs where allowed, else the highest sample) and the
RSS after `--idle` seconds without requests, measured against the warm
baseline (the issue's bounds: one request +256 MiB, three +512 MiB, back
within 64 MiB afterwards). RSS comes from psutil when installed, else /proc.

    PYTHONPATH=src .venv/bin/python scripts/bench_service_memory.py --concurrency 1 3 8 --json memory.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from bench_service import free_port, start_server, wait_for_health  # the service bench's: start a server, wait
from PIL import Image

from shufflebits.atomic import atomic_write_text
from shufflebits.service.app import DEFAULT_MAX_REQUEST_PIXELS

MIB = 1024 * 1024
BOMB_SIDE = 4096
MULTIPART_MARGIN = 64 * 1024  # part headers and boundaries, kept out of the padding

try:
    import psutil
except ImportError:
    psutil = None


def rss_mib(pid: int) -> float:
    if psutil is not None:
        return psutil.Process(pid).memory_info().rss / MIB
    return status_mib(pid, "VmRSS")


def status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == field:
            return int(rest.split()[0]) / 1024
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak RSS (VmHWM) of ``pid``; False where /proc does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def padded(blob: bytes, padding: int) -> bytes:
    """``blob`` (a PNG) with a private ancillary chunk of ``padding`` zero bytes after its header chunk."""
    if padding <= 0:
        return blob
    kind, data = b"prVt", bytes(padding)
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header_end = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return blob[:header_end] + chunk + blob[header_end:]


def worst_case_request(images: int, body_cap: int | None) -> list[bytes]:
    """``images`` bombs, padded to share ``body_cap`` between them when it is given."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: decoded, then transposed to upright
    bomb = png(Image.new("RGBA", (BOMB_SIDE, BOMB_SIDE)), compress_level=9, exif=exif)
    padding = (body_cap - MULTIPART_MARGIN) // images - len(bomb) if body_cap else 0
    return [padded(bomb, padding)] * images


def post(url: str, token: str, blobs: list[bytes]) -> int:
    files = [("images", (f"{index}.png", blob, "image/png")) for index, blob in enumerate(blobs)]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        return httpx.post(f"{url}/v1/features", files=files, headers=headers, timeout=300).status_code
    except httpx.TransportError:
        return 0


def burst(url: str, token: str, pid: int, blobs: list[bytes], concurrency: int, idle: float) -> dict:
    """One scenario: ``concurrency`` worst-case requests at once, with the server's RSS around it."""
    baseline = rss_mib(pid)
    exact_peak = reset_peak(pid)
    highest, done = [baseline], threading.Event()

    def sample() -> None:
        while not done.is_set():
            highest[0] = max(highest[0], rss_mib(pid))
            time.sleep(0.002)

    codes: list[int] = []
    start = threading.Barrier(concurrency)

    def client() -> None:
        start.wait()
        codes.append(post(url, token, blobs))

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    clients = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    peak = max(highest[0], status_mib(pid, "VmHWM")) if exact_peak else highest[0]
    time.sleep(idle)
    return {
        "concurrency": concurrency,
        "codes": dict(sorted(Counter(codes).items())),
        "wall_s": round(wall, 2),
        "baseline_mib": round(baseline, 1),
        "peak_mib": round(peak, 1),
        "after_idle_mib": round(rss_mib(pid), 1),
        "peak_from": "VmHWM" if exact_peak else "samples",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="osnet_x0_25")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 3, 8], help="one scenario each, in order")
    parser.add_argument("--rounds", type=int, default=1, help="bursts per scenario")
    parser.add_argument(
        "--images-per-request",
        type=int,
        default=DEFAULT_MAX_REQUEST_PIXELS // (BOMB_SIDE * BOMB_SIDE),
        help="4096x4096 images per request (default: as many as serve's pixel budget per request admits)",
    )
    parser.add_argument(
        "--fill-body",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pad the images to the body cap (default); --no-fill-body sends the bare bombs of a few KiB",
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds without requests before 'after' is read")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--serve-args", default="", help="more `shufflebits serve` flags, e.g. '--max-queue 4'")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args()
    if min(args.concurrency) < 1 or args.rounds < 1 or args.images_per_request < 1 or args.threads < 1:
        parser.error("--concurrency, --rounds, --images-per-request and --threads must be positive")
    if not args.idle >= 0:
        parser.error("--idle must be non-negative")
    if args.json and not Path(args.json).parent.is_dir():
        parser.error(f"output folder {Path(args.json).parent} does not exist")
    token = secrets.token_urlsafe(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "shufflebits", "serve", "--model", args.model, "--port", str(port)]
    command += ["--threads", str(args.threads), *args.serve_args.split()]
    with tempfile.TemporaryDirectory() as scratch:
        server, log = start_server(command, token, scratch)
        try:
            health = wait_for_health(url, server, log)
            warm = png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 128, 3), dtype=np.uint8)))
            if post(url, token, [warm]) != 200:
                raise SystemExit(f"the warm-up request failed:\n{log.read_text()[-2000:]}")
            time.sleep(args.idle)
            warm_baseline = rss_mib(server.pid)
            blobs = worst_case_request(args.images_per_request, health["max_request_bytes"] if args.fill_body else None)
            rows = [
                burst(url, token, server.pid, blobs, concurrency, args.idle)
                for concurrency in args.concurrency
                for _ in range(args.rounds)
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)
    body = sum(len(blob) for blob in blobs)
    print(
        f"shufflebits serve --model {args.model} {args.serve_args}".rstrip()
        + f"; {os.cpu_count()} CPU cores, RSS from {'psutil' if psutil else '/proc'}"
    )
    print(
        f"worst-case request: {len(blobs)} PNG(s) decoding to {BOMB_SIDE}x{BOMB_SIDE} RGBA, EXIF-turned, "
        f"body {body / MIB:.1f} MiB (cap {health['max_request_bytes'] / MIB:g} MiB); "
        f"warm baseline {warm_baseline:.0f} MiB"
    )
    print(f"{'concurrent':>10} {'answers':<22} {'wall s':>7} {'baseline':>9} {'peak':>16} {'after idle':>16}")
    for row in rows:
        codes = " ".join(f"{code or 'reset'}x{count}" for code, count in row["codes"].items())
        peak = f"{row['peak_mib']:.0f} (+{row['peak_mib'] - row['baseline_mib']:.0f})"
        after = f"{row['after_idle_mib']:.0f} ({row['after_idle_mib'] - warm_baseline:+.0f})"
        print(
            f"{row['concurrency']:>10} {codes:<22} {row['wall_s']:>7.1f} {row['baseline_mib']:>9.0f} "
            f"{peak:>16} {after:>16}"
        )
    print("MiB; peak: + over the scenario's baseline; after idle: against the warm baseline; reset: the connection")
    print("closed before an answer was read")
    if args.json:
        document = {
            "command": command[2:],
            "fill_body": args.fill_body,
            "warm_baseline_mib": round(warm_baseline, 1),
            "body_bytes": body,
            "images_per_request": len(blobs),
            "rows": rows,
        }
        atomic_write_text(args.json, json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
