"""Throughput of every cipher and kernel on the same float32 features, in one run.

Kernels write into a preallocated output and the AES-GCM reference row uses
``encrypt_into`` the same way, so the ratios compare the work itself; the
allocating and ``cipher.encrypt`` rows add allocation (page faults) and checks,
which is what an API caller sees. The load average is recorded because the
machine may be shared: parallel kernels suffer most from other processes, so
the "1 thread" rows give per-core figures comparable with single-threaded OpenSSL.
The per-element reference re-creates the definition (bit strings in pure
Python); it is timed on a small sample and extrapolated.

Every row is timed several times and reports the best, median and worst run
(``mfloat_per_s`` is the best). Latency rows time one hot 512-d vector through
each cipher's ``encrypt`` (and ``encrypt_tensor``) many times; setup rows time a
fresh per-dimension key for 65,536 dimensions. The "fresh output" rows show
what allocation adds to the fixed kernel: a fresh 64 MiB output is faulted in
page by page on every call (numpy hands large arrays back to the OS), and
numpy's ``madvise(MADV_HUGEPAGE)`` on large arrays lets a fault wait for memory
compaction (``defrag=madvise``); the kernel rows write into one reused buffer.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

REFERENCE_SAMPLE = 20_000
_DIM = 512


def _time(run: Callable[[], object], repeats: int = 5, budget: float = 3.0) -> list[float]:
    """Wall times of ``run``: ``repeats`` runs, fewer (at least 3) once they pass ``budget`` seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if len(times) >= 3 and sum(times) > budget:
            break
    return times


def _latency(run: Callable[[], object], repeats: int = 300) -> list[float]:
    """Wall times of single calls of ``run`` after a warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _no_hugepage_advice(run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with numpy's ``madvise(MADV_HUGEPAGE)`` on large arrays switched off."""
    from numpy._core import multiarray

    def plain():
        previous = multiarray._set_madvise_hugepage(False)
        try:
            return run()
        finally:
            multiarray._set_madvise_hugepage(previous)

    return plain


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


def _stats(times: list[float], elements: int, scale: int) -> dict:
    """Best / median / worst of ``times`` for ``elements`` floats; ``seconds`` scaled to ``scale`` floats."""
    best, median, worst = min(times), float(np.median(times)), max(times)
    return {
        "mfloat_per_s": elements / best / 1e6,
        "mfloat_per_s_median": elements / median / 1e6,
        "mfloat_per_s_worst": elements / worst / 1e6,
        "seconds": best * scale / elements,
        "seconds_median": median * scale / elements,
        "seconds_max": worst * scale / elements,
        "runs": len(times),
    }


def run_benchmark(size_mib: float = 64, progress: bool = True, compiled: bool = False) -> list[dict]:
    """Measure every cipher and kernel on ``size_mib`` MiB of float32; rows with ratios.

    ``compiled`` adds the torch.compile ChaCha20 rows and their one-time compile
    (minutes on a cold cache), so only those who ask pay it: the study does not.
    """
    import torch
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    from . import kernels_numba, kernels_numpy, kernels_torch, prf
    from .catalogue import cipher_names, spec
    from .keys import generate_key
    from .shufflebits import ShuffleBits

    features = _features(size_mib)
    words = features.view(np.uint32)
    flat = words.reshape(-1)
    count = flat.size
    out = np.empty_like(words)
    raw = features.tobytes()
    sealed_buffer = bytearray(len(raw) + 16)
    x = torch.from_numpy(features)

    ciphers = {name: spec(name).resolve()(generate_key(name)) for name in cipher_names(homomorphic=False)}
    fixed, per_dim, one_time = ciphers["shufflebits"], ciphers["shufflebits-dim"], ciphers["shufflebits-otp"]
    pad, aes = ciphers["chacha20"], ciphers["aes-gcm"]
    fixed_tables = fixed.tables(32, None, False)
    dim_tables = per_dim.tables(32, _DIM, False)
    kernels_numba.fixed(flat[:1024], fixed_tables, out.reshape(-1)[:1024])  # compile / load cache
    kernels_numba.per_dimension(words[:2], dim_tables, out[:2])
    for cipher in ciphers.values():
        cipher.encrypt(features[:2])
        if hasattr(cipher, "encrypt_tensor"):
            cipher.encrypt_tensor(x[:2])
    xi = kernels_torch.int_view(x)
    wide = kernels_torch.table_tensor(kernels_torch.wide_tables(fixed_tables), "cpu")
    dim_table_tensor = kernels_torch.table_tensor(dim_tables, "cpu")
    pad_rows = max(1, len(features) // 16)
    pad_nonces = torch.from_numpy(prf.batch_nonces(pad_rows, _DIM * 4 // 64, os.urandom))
    pad_key = kernels_torch.key_tensor(pad.stream_key, "cpu")
    if compiled:
        probe = torch.zeros((2, _DIM), dtype=torch.int32)

        def warm():
            return kernels_torch.xor_pad(probe, pad_key, pad_nonces[:2], compiled=True)

        start = time.perf_counter()
        pad_compiled = kernels_torch.compiled_keystream() is not None  # first call compiles (or loads torch's cache)
        warm(), _one_thread(warm)()  # inductor builds its loops for a thread count: one compile per count timed
        compile_seconds = time.perf_counter() - start
        pad_kernel = "torch.compile on cpu" if pad_compiled else "torch ops on cpu (torch.compile unavailable)"
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
        ("ShuffleBits fixed, encrypt_tensor", "cpu tensor: numba", lambda: fixed.encrypt_tensor(x), count),
        ("ShuffleBits fixed, device kernel", "torch ops on cpu", lambda: kernels_torch.permute_fixed(xi, wide), count),
        (
            "ShuffleBits fixed, device kernel, 1 thread",
            "torch ops on cpu",
            _one_thread(lambda: kernels_torch.permute_fixed(xi, wide)),
            count,
        ),
        ("ShuffleBits fixed, cipher.encrypt (fresh output)", "numba", lambda: fixed.encrypt(features), count),
        (
            "ShuffleBits fixed, cipher.encrypt (fresh output, no hugepage advice)",
            "numba",
            _no_hugepage_advice(lambda: fixed.encrypt(features)),
            count,
        ),
        ("ShuffleBits per-dimension", "numba", lambda: kernels_numba.per_dimension(words, dim_tables, out), count),
        ("ShuffleBits per-dimension, encrypt_tensor", "cpu tensor: numba", lambda: per_dim.encrypt_tensor(x), count),
        (
            "ShuffleBits per-dimension, device kernel",
            "torch ops on cpu",
            lambda: kernels_torch.permute_per_dimension(xi, dim_table_tensor),
            count,
        ),
        ("ShuffleBits one-time, cipher.encrypt", "numba + AES-CTR", lambda: one_time.encrypt(features), count),
        (
            "ShuffleBits one-time, encrypt_tensor",
            "cpu tensor: numba + AES-CTR",
            lambda: one_time.encrypt_tensor(x),
            count,
        ),
        ("ChaChaPad, cipher.encrypt", "OpenSSL ChaCha20", lambda: pad.encrypt(features), count),
        ("ChaChaPad, encrypt_tensor", "cpu tensor: OpenSSL ChaCha20", lambda: pad.encrypt_tensor(x), count),
        (
            "ChaChaPad, device kernel (1/16 of the data)",
            "torch ops on cpu",
            lambda: kernels_torch.xor_pad(xi[:pad_rows], pad_key, pad_nonces),
            pad_rows * _DIM,
        ),
        (
            "ChaChaPad, device kernel (1/16 of the data), 1 thread",
            "torch ops on cpu",
            _one_thread(lambda: kernels_torch.xor_pad(xi[:pad_rows], pad_key, pad_nonces)),
            pad_rows * _DIM,
        ),
        ("AesGcm, cipher.encrypt (per vector)", "OpenSSL", lambda: aes.encrypt(features), count),
    ]
    if compiled:
        cases += [
            (
                "ChaChaPad, compiled device kernel (1/16 of the data)",
                pad_kernel,
                lambda: kernels_torch.xor_pad(xi[:pad_rows], pad_key, pad_nonces, compiled=True),
                pad_rows * _DIM,
            ),
            (
                "ChaChaPad, compiled device kernel (1/16 of the data), 1 thread",
                pad_kernel,
                _one_thread(lambda: kernels_torch.xor_pad(xi[:pad_rows], pad_key, pad_nonces, compiled=True)),
                pad_rows * _DIM,
            ),
        ]
    repeats = {"ShuffleBits fixed": 9}  # the fixed rows get more runs: their worst run shows any stall
    rows = []
    for name, kernel, run, elements in cases:
        times = _time(run, repeats=repeats.get(name.split(",")[0], 5))
        rows.append({"name": name, "kernel": kernel, "kind": "throughput", **_stats(times, elements, count)})
        rows[-1]["extrapolated"] = elements != count
        if progress:
            print(f"  {name} [{kernel}]: {rows[-1]['mfloat_per_s']:.1f} Mfloat/s", file=sys.stderr)

    vector, tensor = features[:1].copy(), x[:1].clone()
    one = vector.tobytes()
    latency_cases = [
        ("AES-256-GCM (cryptography, one call), 1 vector", "OpenSSL", lambda: aesgcm.encrypt(nonce, one, None))
    ]
    for name, cipher in ciphers.items():
        latency_cases.append((f"{name}, cipher.encrypt, 1 vector", "host", lambda c=cipher: c.encrypt(vector)))
        if hasattr(cipher, "encrypt_tensor"):
            run = lambda c=cipher: c.encrypt_tensor(tensor)  # noqa: E731
            latency_cases.append((f"{name}, encrypt_tensor, 1 vector", "cpu tensor", run))
    wide = 65536
    latency_cases.append(
        (
            f"shufflebits-dim key setup, d={wide:,}",
            "numba",
            lambda: ShuffleBits(per_dim.key).destinations(32, wide),
        )
    )
    latency_cases.append(
        (
            f"shufflebits-dim, fresh key, 1 vector of d={wide:,}",
            "numba",
            lambda: ShuffleBits(per_dim.key).encrypt(np.ones((1, wide), np.float32)),
        )
    )
    for name, kernel, run in latency_cases:
        wide_row = "d=" in name
        times = _latency(run, repeats=3 if wide_row else 300)
        elements = wide if wide_row else _DIM
        row = {"name": name, "kernel": kernel, "kind": "setup" if "setup" in name else "latency"}
        row.update(_stats(times, elements, elements))
        row.update(
            latency_us=float(np.median(times)) * 1e6,
            latency_us_min=min(times) * 1e6,
            latency_us_max=max(times) * 1e6,
            extrapolated=False,
        )
        rows.append(row)
        if progress:
            print(f"  {name} [{kernel}]: {row['latency_us']:.1f} us (median)", file=sys.stderr)

    if compiled:
        row = {"name": "ChaChaPad, compiled device kernel: compile once", "kind": "setup", "kernel": pad_kernel}
        row.update(_stats([compile_seconds], _DIM, _DIM))
        row.update(latency_us=compile_seconds * 1e6, latency_us_min=compile_seconds * 1e6, extrapolated=False)
        rows.append(dict(row, latency_us_max=compile_seconds * 1e6))
        if progress:
            print(f"  {row['name']} [{pad_kernel}]: {compile_seconds:.1f} s", file=sys.stderr)

    by_name = {row["name"]: row for row in rows}
    aes_rate = by_name["AES-256-GCM (cryptography, one call)"]["mfloat_per_s"]
    aes_allocating_rate = by_name["AES-256-GCM (cryptography, one call, alloc)"]["mfloat_per_s"]
    reference_rate = by_name["per-element reference (pure Python, extrapolated)"]["mfloat_per_s"]
    load = os.getloadavg()[0]
    for row in rows:
        row["ratio_vs_aes_gcm"] = row["mfloat_per_s"] / aes_rate
        row["ratio_vs_aes_gcm_allocating"] = row["mfloat_per_s"] / aes_allocating_rate
        row["ratio_vs_reference"] = row["mfloat_per_s"] / reference_rate
        row["size_mib"] = size_mib
        row["threads"] = torch.get_num_threads()
        row["load_average"] = load
    return rows
