"""Throughput of every cipher and kernel on the same float32 features, in one run.

Kernels write into a preallocated output and the AES-GCM reference row uses
``encrypt_into`` the same way, so the ratios compare the work itself; the
allocating and ``cipher.encrypt`` rows add allocation (page faults) and checks,
which is what an API caller sees. The load average is recorded because the
machine may be shared: parallel kernels suffer most from other processes, so
the "1 thread" rows give per-core figures comparable with single-threaded OpenSSL.
The per-element reference re-creates the definition (bit strings in pure
Python); it is timed on a small sample and extrapolated.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

REFERENCE_SAMPLE = 20_000
_DIM = 512


def _time(run: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time of ``run``; a run over a second is not repeated."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best


def _one_thread(run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with numba and torch limited to one thread: a per-core figure that
    stays comparable with single-threaded OpenSSL when other processes share the CPUs."""
    import numba
    import torch

    def limited():
        numba_threads, torch_threads = numba.get_num_threads(), torch.get_num_threads()
        numba.set_num_threads(1)
        torch.set_num_threads(1)
        try:
            return run()
        finally:
            numba.set_num_threads(numba_threads)
            torch.set_num_threads(torch_threads)

    return limited


def _reference_encrypt(values: list[int], idx: list[int]) -> list[int]:
    """The definition, element by element: permute the characters of the 32-bit string."""
    out = []
    for value in values:
        bits = format(value, "032b")
        out.append(int("".join(bits[i] for i in idx), 2))
    return out


def _features(size_mib: float) -> np.ndarray:
    rows = max(1, int(size_mib * 2**20) // (4 * _DIM))
    rng = np.random.default_rng(0)
    return np.maximum(rng.standard_normal((rows, _DIM), dtype=np.float32), 0)


def run_benchmark(size_mib: float = 64, progress: bool = True) -> list[dict]:
    """Measure every cipher and kernel on ``size_mib`` MiB of float32; rows with ratios."""
    import torch
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    from . import kernels_numba, kernels_numpy
    from .aesgcm import AesGcm
    from .chacha import ChaChaPad
    from .shufflebits import ShuffleBits

    features = _features(size_mib)
    words = features.view(np.uint32)
    flat = words.reshape(-1)
    count = flat.size
    out = np.empty_like(words)
    raw = features.tobytes()
    sealed_buffer = bytearray(len(raw) + 16)
    x = torch.from_numpy(features)

    fixed = ShuffleBits(ShuffleBits.generate_key("fixed"))
    per_dim = ShuffleBits(ShuffleBits.generate_key("per-dimension"))
    one_time = ShuffleBits(ShuffleBits.generate_key("one-time"))
    pad = ChaChaPad(ChaChaPad.generate_key())
    aes = AesGcm(AesGcm.generate_key())
    fixed_tables = fixed.tables(32, None, False)
    dim_tables = per_dim.tables(32, _DIM, False)
    kernels_numba.fixed(flat[:1024], fixed_tables, out.reshape(-1)[:1024])  # compile / load cache
    kernels_numba.per_dimension(words[:2], dim_tables, out[:2])
    one_time.encrypt(features[:2])
    fixed.encrypt_tensor(x[:2])
    one_time.encrypt_tensor(x[:2])
    per_dim.encrypt_tensor(x[:2])
    pad.encrypt_tensor(x[:2])
    aead_key = os.urandom(32)
    nonce = os.urandom(12)
    aesgcm, chachapoly = AESGCM(aead_key), ChaCha20Poly1305(aead_key)

    sample = flat[:REFERENCE_SAMPLE].tolist()
    idx = fixed.permutation(32).tolist()
    cases: list[tuple[str, str, Callable[[], object], int]] = [
        ("numpy copy", "numpy", lambda: np.copyto(out, words), count),
        (
            "AES-256-GCM (cryptography, one call)",
            "OpenSSL",
            lambda: aesgcm.encrypt_into(nonce, raw, None, sealed_buffer),
            count,
        ),
        ("AES-256-GCM (cryptography, one call, alloc)", "OpenSSL", lambda: aesgcm.encrypt(nonce, raw, None), count),
        (
            "ChaCha20-Poly1305 (cryptography, one call)",
            "OpenSSL",
            lambda: chachapoly.encrypt_into(nonce, raw, None, sealed_buffer),
            count,
        ),
        (
            "per-element reference (pure Python, extrapolated)",
            "python",
            lambda: _reference_encrypt(sample, idx),
            len(sample),
        ),
        ("ShuffleBits fixed", "numpy reference", lambda: kernels_numpy.permute(words, fixed.destinations(32)), count),
        ("ShuffleBits fixed", "numba", lambda: kernels_numba.fixed(flat, fixed_tables, out.reshape(-1)), count),
        (
            "ShuffleBits fixed, 1 thread",
            "numba",
            _one_thread(lambda: kernels_numba.fixed(flat, fixed_tables, out.reshape(-1))),
            count,
        ),
        ("ShuffleBits fixed", "torch cpu", lambda: fixed.encrypt_tensor(x), count),
        ("ShuffleBits fixed, 1 thread", "torch cpu", _one_thread(lambda: fixed.encrypt_tensor(x)), count),
        ("ShuffleBits fixed, cipher.encrypt", "numba", lambda: fixed.encrypt(features), count),
        ("ShuffleBits per-dimension", "numba", lambda: kernels_numba.per_dimension(words, dim_tables, out), count),
        ("ShuffleBits per-dimension", "torch cpu", lambda: per_dim.encrypt_tensor(x), count),
        ("ShuffleBits one-time, cipher.encrypt", "numba + ChaCha20", lambda: one_time.encrypt(features), count),
        ("ShuffleBits one-time", "torch cpu", lambda: one_time.encrypt_tensor(x), count),
        ("ChaChaPad, cipher.encrypt", "OpenSSL ChaCha20", lambda: pad.encrypt(features), count),
        ("ChaChaPad", "torch cpu", lambda: pad.encrypt_tensor(x), count),
        ("AesGcm, cipher.encrypt (per vector)", "OpenSSL", lambda: aes.encrypt(features), count),
    ]
    rows = []
    for name, kernel, run, elements in cases:
        seconds = _time(run)
        rows.append(
            {
                "name": name,
                "kernel": kernel,
                "mfloat_per_s": elements / seconds / 1e6,
                "seconds": seconds * count / elements,
                "extrapolated": elements != count,
            }
        )
        if progress:
            print(f"  {name} [{kernel}]: {rows[-1]['mfloat_per_s']:.1f} Mfloat/s", file=sys.stderr)
    aes_rate = rows[1]["mfloat_per_s"]
    aes_allocating_rate = rows[2]["mfloat_per_s"]
    reference_rate = next(row["mfloat_per_s"] for row in rows if row["kernel"] == "python")
    load = os.getloadavg()[0]
    for row in rows:
        row["ratio_vs_aes_gcm"] = row["mfloat_per_s"] / aes_rate
        row["ratio_vs_aes_gcm_allocating"] = row["mfloat_per_s"] / aes_allocating_rate
        row["ratio_vs_reference"] = row["mfloat_per_s"] / reference_rate
        row["size_mib"] = size_mib
        row["threads"] = torch.get_num_threads()
        row["load_average"] = load
    return rows
