"""Streaming Parquet store encryption and FAISS 1:N search, on this machine.

Store rows: a plaintext store of ``--vectors`` x ``--dim`` float32 is written to
a temporary folder, then ``encrypt_store`` and ``decrypt_store`` run in a child
process each (its peak RSS is the figure: bounded by row groups, not by the
store). They are compared with the same cipher encrypting one row group held
in memory. The 10M-vector time is the measured rate extrapolated (the work is
linear in rows; memory does not grow). FAISS rows: one query at a time against
a ``--gallery`` x ``--dim`` gallery (exact flat index, top 10), median latency
on one FAISS thread and on all cores.

    .venv/bin/python scripts/bench_stores.py [--vectors 200000] [--dim 512] [--gallery 1000000]
        [--ciphers shufflebits,chacha20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from shufflebits.ciphers import create_cipher
from shufflebits.reid.search import GalleryIndex
from shufflebits.stores import plain_batch, plain_writer
from shufflebits.stores.plain import plain_schema
from shufflebits.stores.schema import rows_per_group

CHILD = """
import json, resource, sys, time
from shufflebits.ciphers import load_key, cipher_for_key
from shufflebits.stores import encrypt_store, decrypt_store
action, key, source, target = sys.argv[1:]
cipher = cipher_for_key(load_key(key))
start = time.perf_counter()
(encrypt_store if action == "encrypt" else decrypt_store)(source, target, cipher)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_store(path: Path, vectors: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    schema = plain_schema(dim, labels=False, paths=False)
    step = rows_per_group(dim)
    with plain_writer(path, schema) as write:
        for start in range(0, vectors, step):
            rows = min(step, vectors - start)
            write(
                plain_batch(schema, rng.standard_normal((rows, dim), np.float32), [str(start + i) for i in range(rows)])
            )


def in_memory_rate(cipher, dim: int) -> float:
    batch = np.random.default_rng(1).standard_normal((rows_per_group(dim), dim), np.float32)
    cipher.encrypt(batch[:64])  # warm-up (numba compiles)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        cipher.encrypt(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def child(action: str, key: Path, source: Path, target: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, action, str(key), str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


def store_rows(args, folder: Path) -> list[dict]:
    from shufflebits.ciphers import save_key

    plain = folder / "plain.parquet"
    write_store(plain, args.vectors, args.dim)
    rows = []
    for name in args.ciphers.split(","):
        cipher = create_cipher(name)
        key = folder / f"{name}.key.json"
        save_key(key, cipher.key)
        memory = in_memory_rate(cipher, args.dim)
        encrypted = child("encrypt", key, plain, folder / "enc.parquet")
        decrypted = child("decrypt", key, folder / "enc.parquet", folder / "dec.parquet")
        for action, run in (("encrypt", encrypted), ("decrypt", decrypted)):
            rate = args.vectors / run["seconds"]
            rows.append(
                {
                    "name": f"store {action} {name}",
                    "vectors": args.vectors,
                    "dim": args.dim,
                    "vectors_per_s": rate,
                    "in_memory_encrypt_vectors_per_s": memory,
                    "fraction_of_in_memory": rate / memory,
                    "peak_rss_mib": run["peak_rss_mib"],
                    "seconds_for_10M": 10_000_000 / rate,
                }
            )
        for file in ("enc.parquet", "dec.parquet"):
            (folder / file).unlink()
    return rows


def faiss_rows(args) -> list[dict]:
    rng = np.random.default_rng(2)
    gallery = np.empty((args.gallery, args.dim), np.float32)
    for start in range(0, args.gallery, 100_000):  # no float64 temporaries of the whole gallery
        stop = min(start + 100_000, args.gallery)
        gallery[start:stop] = rng.standard_normal((stop - start, args.dim), np.float32)
    queries = rng.standard_normal((args.queries, args.dim), np.float32)
    rows = []
    for metric in ("cosine", "euclidean"):
        start = time.perf_counter()
        index = GalleryIndex(gallery, metric)
        build = time.perf_counter() - start
        for threads in sorted({1, os.cpu_count() or 1}):
            faiss.omp_set_num_threads(threads)
            index.search(queries[:1], 10)  # warm-up
            times = []
            for query in queries:
                start = time.perf_counter()
                index.search(query[None], 10)
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "name": f"faiss flat {metric} 1:N top-10, {threads} thread{'s' * (threads > 1)}",
                    "gallery": args.gallery,
                    "dim": args.dim,
                    "threads": threads,
                    "median_ms": 1000 * float(np.median(times)),
                    "max_ms": 1000 * max(times),
                    "build_s": build,
                }
            )
        del index
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--ciphers", default="shufflebits,chacha20")
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stores-", dir=os.environ.get("TMPDIR")) as folder:
        rows = store_rows(args, Path(folder))
    rows += faiss_rows(args) if args.gallery > 0 else []
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_1min": load, "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    print(f"load {load:.1f} on {os.cpu_count()} CPUs")
    for row in rows:
        if "vectors_per_s" in row:
            memory = row["in_memory_encrypt_vectors_per_s"]
            print(
                f"{row['name']:<28} {row['vectors_per_s']:>10.0f} vectors/s "
                f"({row['fraction_of_in_memory']:.0%} of in-memory encrypt {memory:.0f}/s), "
                f"peak RSS {row['peak_rss_mib']:.0f} MiB, 10M vectors: {row['seconds_for_10M'] / 60:.1f} min"
            )
        else:
            print(
                f"{row['name']:<44} {row['median_ms']:.1f} ms median ({row['max_ms']:.1f} max) "
                f"over {row['gallery']} x {row['dim']}, index built in {row['build_s']:.1f} s"
            )


if __name__ == "__main__":
    main()
