"""What protection costs, per cipher: encryption, 1:1 comparison, 1:N search and bytes per template.

``shufflebits bench --cost``. Matchable ciphers compare ciphertexts directly
(``matching.match_view``, the gallery kept in its matching form); the others
must be decrypted by the key holder first, which their comparison rows include
(query and, for 1:N, the whole gallery). CKKS has two rows: a plaintext query,
and an encrypted one (``CKKS_ENCRYPTED_QUERY``, whose encryption and bytes are per
query). Times are medians of repeated runs on 512-d float32 features, one
process; the load average is recorded beside them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from ..reid import distance_matrix
from .bench import _latency
from .catalogue import cipher_names, installed, spec
from .keys import generate_key
from .matching import match_view

DIM = 512
GALLERY = 10_000
BATCH = 1_000
CKKS_ENCRYPTED_QUERY = "ckks (encrypted query)"  # the row name of CKKS matching an encrypted query


def _median(run: Callable[[], object], repeats: int) -> float:
    return float(np.median(_latency(run, repeats)))


def _features(n: int, seed: int) -> np.ndarray:
    x = np.maximum(np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32), 0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cost_rows(gallery: int = GALLERY, repeats: int = 20) -> list[dict]:
    """One row per cipher (and plaintext): µs per encryption, µs per 1:1 comparison, ms per 1:N search, bytes."""
    gallery_plain, query = _features(gallery, 0), _features(1, 1)
    rows = [
        {
            "cipher": "plaintext",
            "comparison": "euclidean on features",
            "encrypt_us_per_vector": 0.0,
            "encrypt_us_one": 0.0,
            "compare_1to1_us": _median(lambda: distance_matrix(query, gallery_plain[:1]), repeats) * 1e6,
            "search_1toN_ms": _median(lambda: distance_matrix(query, gallery_plain).argmin(), 3) * 1e3,
            "bytes_per_vector": float(DIM * 4),
        }
    ]
    for name in cipher_names(homomorphic=False):
        record = spec(name)
        cipher = record.resolve()(generate_key(name))
        sealed_gallery, sealed_query = cipher.encrypt(gallery_plain), cipher.encrypt(query)
        batch = gallery_plain[:BATCH]
        row = {
            "cipher": name,
            "encrypt_us_per_vector": _median(lambda c=cipher: c.encrypt(batch), 3) / len(batch) * 1e6,
            "encrypt_us_one": _median(lambda c=cipher: c.encrypt(query), repeats) * 1e6,
        }
        nonce_bytes = 0 if sealed_gallery.nonces is None else sealed_gallery.nonces.nbytes
        row["bytes_per_vector"] = (sealed_gallery.payload().nbytes + nonce_bytes) / gallery
        if record.matchable:
            stored, metric = match_view(sealed_gallery)
            one = stored[:1]
            row["comparison"] = f"{metric} on ciphertexts"
            row["compare_1to1_us"] = _median(lambda: distance_matrix(match_view(sealed_query)[0], one, metric), repeats)
            row["search_1toN_ms"] = _median(lambda: distance_matrix(match_view(sealed_query)[0], stored, metric), 3)
        else:
            first = cipher.encrypt(gallery_plain[:1])
            row["comparison"] = "decrypt, then euclidean"
            row["compare_1to1_us"] = _median(
                lambda c=cipher: distance_matrix(c.decrypt(sealed_query), c.decrypt(first)), repeats
            )
            row["search_1toN_ms"] = _median(
                lambda c=cipher: distance_matrix(c.decrypt(sealed_query), c.decrypt(sealed_gallery)).argmin(), 3
            )
        row["compare_1to1_us"] *= 1e6
        row["search_1toN_ms"] *= 1e3
        rows.append(row)
    if installed("ckks"):
        rows.extend(_ckks_rows(gallery_plain, query, repeats))
    load = os.getloadavg()[0]
    for row in rows:
        row.update(gallery=gallery, batch=min(BATCH, gallery), dim=DIM, load_average=load, cpu_count=os.cpu_count())
    return rows


def _ckks_rows(gallery_plain: np.ndarray, query: np.ndarray, repeats: int) -> list[dict]:
    """CKKS (optional ``he`` extra), plaintext then encrypted query, over one encrypted gallery; encryptions are
    timed once (the packed gallery takes seconds at 10,000, an encrypted 512-d query is 257 ciphertexts)."""
    from . import ckks

    key = ckks.generate_key()
    holder = ckks.KeyHolder(key)
    encrypted, encrypt_seconds = _timed(lambda: ckks.encrypt_gallery(key, gallery_plain))
    one, encrypt_one_seconds = _timed(lambda: ckks.encrypt_gallery(key, query))  # one template: d + 1 columns
    plain_query = {
        "cipher": "ckks",
        "comparison": "CKKS scores (plaintext query), key holder decrypts and releases top-1",
        "encrypt_us_per_vector": encrypt_seconds / len(gallery_plain) * 1e6,
        "encrypt_us_one": encrypt_one_seconds * 1e6,
        "compare_1to1_us": _median(lambda: holder.release(ckks.score(one, query)), max(3, repeats // 4)) * 1e6,
        "search_1toN_ms": _median(lambda: holder.release(ckks.score(encrypted, query)), 3) * 1e3,
        "bytes_per_vector": encrypted.nbytes / len(gallery_plain),
    }
    hidden, query_seconds = _timed(lambda: ckks.encrypt_query(key, encrypted, query))
    hidden_one, query_one_seconds = _timed(lambda: ckks.encrypt_query(key, one, query))
    encrypted_query = {
        "cipher": CKKS_ENCRYPTED_QUERY,
        "comparison": "CKKS scores (encrypted query: ciphertext products), key holder decrypts and releases "
        "top-1; encryption and bytes per query",
        "encrypt_us_per_vector": query_seconds * 1e6,
        "encrypt_us_one": query_one_seconds * 1e6,
        "compare_1to1_us": _median(lambda: holder.release(ckks.score(one, hidden_one)), 3) * 1e6,
        "search_1toN_ms": _median(lambda: holder.release(ckks.score(encrypted, hidden)), 3) * 1e3,
        "bytes_per_vector": float(hidden.nbytes),
    }
    return [plain_query, encrypted_query]


def _timed(run: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = run()
    return value, time.perf_counter() - start


def cost_lines(rows: list[dict]) -> list[str]:
    """The cost table for the terminal."""
    from ..study.numbers import figure

    columns = ("encrypt µs/vector", "1 vector µs", "1:1 µs", "1:N ms", "bytes")
    width = max(16, *(len(row["cipher"]) + 2 for row in rows))
    lines = [f"{'cipher':<{width}}" + "".join(f"{c:>19}" for c in columns) + "  comparison"]
    for row in rows:
        keys = ("encrypt_us_per_vector", "encrypt_us_one", "compare_1to1_us", "search_1toN_ms")
        cells = [figure(row[key]) for key in keys] + [f"{row['bytes_per_vector']:,.0f}"]
        lines.append(f"{row['cipher']:<{width}}" + "".join(f"{c:>19}" for c in cells) + f"  {row['comparison']}")
    first = rows[0]
    lines.append(
        f"(1:N over {first['gallery']:,} {first['dim']}-d templates; load average {figure(first['load_average'])} "
        f"on {first['cpu_count']} CPUs)"
    )
    return lines
