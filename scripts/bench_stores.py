"""Streaming Parquet store encryption and FAISS 1:N search, on this machine.

Store rows: a plaintext store of ``--vectors`` x ``--dim`` float32 is written to
a temporary folder, then ``encrypt_store`` and ``decrypt_store`` run in a child
process each (its peak RSS is the figure: bounded by row groups, not by the
store), the cipher warmed up first as for the in-memory rate. They are compared
with the same cipher encrypting one row group held in memory, and with what
bounds any of them: the file's bytes copied as the stores read and write them
(no Parquet), the store copied through Parquet (no cipher), and the HMAC-SHA256
row-group tags every encrypted store carries. The 10M-vector time is the
measured rate extrapolated (the work is linear in rows; memory does not grow).
FAISS rows: one query at a time against a ``--gallery`` x ``--dim`` gallery
(exact flat index, top 10), median latency on one FAISS thread and on all
cores, beside the floor of any exact float32 search here: one pass over the
gallery's bytes (BLAS ``gallery @ query``).

Ray rows (``--ray-workers N``, needs ``shufflebits[ray]``): the same store
encrypted by the local engine and by ``--engine ray`` on a local Ray of N CPUs,
with 1 and N actors, in this one process and run; then ``--images`` crops
extracted into a store (OSNet-x0.25 at 256x128, random weights: speed does not
depend on them) both ways. A Ray run's time includes starting its actors (each
command does), not ``ray.init`` (reported once). A tiny input (1,000 vectors,
one image) times Ray's fixed cost per run; the rest over the rest of the time
is the marginal rate, and the 1-actor marginal rate is the per-worker rate a
plan for N workers starts from.

    .venv/bin/python scripts/bench_stores.py [--vectors 200000] [--dim 512] [--gallery 1000000]
        [--ciphers shufflebits,chacha20] [--ray-workers 2 --images 256] [--json]
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
import pyarrow as pa

from shufflebits.ciphers import create_cipher
from shufflebits.reid.search import GalleryIndex
from shufflebits.stores import plain_batch, plain_writer
from shufflebits.stores.plain import plain_schema
from shufflebits.stores.schema import binary_array, rows_per_group
from shufflebits.stores.tags import row_group_tag, tag_key

SMALL_STORE = 1000  # vectors: the Ray rows' tiny input (warm-up, fixed cost)

CHILD = """
import json, resource, sys, time
import numpy as np
from shufflebits.atomic import atomic_write
from shufflebits.ciphers import load_key, cipher_for_key
from shufflebits.stores import encrypt_store, decrypt_store
from shufflebits.stores.overlap import prefetched
from shufflebits.stores.plain import plain_batches, plain_writer
from shufflebits.stores.schema import DROP_BEHIND, ROW_GROUP_BYTES, DropBehind, drop_cached
action, key, source, target, dim = sys.argv[1:]
start = time.perf_counter()
if action == "file":  # the bytes only, read and written as the stores do: 16 MiB reads, pages dropped behind
    with open(source, "rb") as handle, atomic_write(target) as out:
        sink = DropBehind(out) if DROP_BEHIND else out
        while chunk := handle.read(ROW_GROUP_BYTES):
            sink.write(chunk)
            if DROP_BEHIND:
                drop_cached(handle.fileno(), 0, handle.tell())
elif action == "copy":
    schema, batches = plain_batches(source)
    with plain_writer(target, schema) as write:
        for batch in prefetched(batches):  # overlapped as encrypt_store overlaps them
            write(batch)
else:
    cipher = cipher_for_key(load_key(key))
    cipher.decrypt(cipher.encrypt(np.zeros((64, int(dim)), np.float32)))  # warm-up, as in_memory_rate's
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


def tag_rate(dim: int) -> float:
    """Vectors/s of the HMAC-SHA256 row-group tags alone (one row group of ids and ciphertext): bounds any cipher."""
    count = rows_per_group(dim)
    ciphertext = np.random.default_rng(3).integers(0, 256, (count, 4 * dim), np.uint8)
    batch = pa.record_batch({"id": [str(i) for i in range(count)], "ciphertext": binary_array(ciphertext)})
    key = tag_key(create_cipher("chacha20").key)
    return count / best_of(lambda: row_group_tag(key, b"header", 0, 0, batch))


def child(action: str, key: Path, source: Path, target: Path, dim: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, action, str(key), str(source), str(target), str(dim)],
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
    for action, name in (("file", "file copy, no Parquet"), ("copy", "store copy, no cipher")):
        copied = child(action, folder / "none", plain, folder / "copy.parquet", args.dim)
        (folder / "copy.parquet").unlink()
        rate = args.vectors / copied["seconds"]
        rows.append(
            {
                "name": name,
                "vectors": args.vectors,
                "dim": args.dim,
                "vectors_per_s": rate,
                "peak_rss_mib": copied["peak_rss_mib"],
                "seconds_for_10M": 10_000_000 / rate,
            }
        )
    ceiling = rows[-1]["vectors_per_s"]
    tags = tag_rate(args.dim)
    rows.append({"name": "row-group tags, in memory", "vectors": args.vectors, "dim": args.dim, "vectors_per_s": tags})
    for name in args.ciphers.split(","):
        cipher = create_cipher(name)
        key = folder / f"{name}.key.json"
        save_key(key, cipher.key)
        memory = in_memory_rate(cipher, args.dim)
        encrypted = child("encrypt", key, plain, folder / "enc.parquet", args.dim)
        decrypted = child("decrypt", key, folder / "enc.parquet", folder / "dec.parquet", args.dim)
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
                    "copy_vectors_per_s": ceiling,
                    "fraction_of_copy": rate / ceiling,
                    "peak_rss_mib": run["peak_rss_mib"],
                    "seconds_for_10M": 10_000_000 / rate,
                }
            )
        for file in ("enc.parquet", "dec.parquet"):
            (folder / file).unlink()
    return rows


def best_of(run, repeats: int = 3) -> float:
    """The fastest of ``repeats`` wall times of ``run()`` (the machine may be shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def ray_rows(args, folder: Path) -> list[dict]:
    """Store encryption and extraction, the local engine and Ray side by side (Ray/local time ratios)."""
    import ray
    from bench_extract import write_crops

    from shufflebits.engine.extract import extract_features
    from shufflebits.engine.on_ray import encrypt_store_on_ray, extract_on_ray
    from shufflebits.models import build_extractor
    from shufflebits.stores import encrypt_store

    start = time.perf_counter()
    ray.init(num_cpus=args.ray_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = [{"name": f"ray.init, local Ray of {args.ray_workers} CPUs", "seconds": time.perf_counter() - start}]
    plain, small, out = folder / "plain.parquet", folder / "small.parquet", folder / "out.parquet"
    write_store(small, SMALL_STORE, args.dim)
    counts = sorted({1, args.ray_workers})

    def compare(name: str, unit: str, inputs, few, count: int, few_count: int, local, on_ray) -> None:
        """``on_ray(workers, inputs)`` against ``local()``; ``few`` (a tiny input) times Ray's fixed cost."""
        local_s = best_of(local)
        rows.append({"name": f"{name}, local engine", unit: count / local_s, "seconds": local_s})
        for workers in counts:
            ray_s = best_of(lambda: on_ray(workers, inputs))
            fixed_s = best_of(lambda: on_ray(workers, few))
            rows.append(
                {
                    "name": f"{name}, Ray, {workers} worker{'s' * (workers > 1)}",
                    unit: count / ray_s,
                    "seconds": ray_s,
                    "ray_over_local": ray_s / local_s,
                    "fixed_s": fixed_s,  # actors started, cipher or model built, one tiny unit
                    f"marginal_{unit}": (count - few_count) / (ray_s - fixed_s),  # the rate once the actors run
                }
            )

    for name in args.ciphers.split(","):
        cipher = create_cipher(name)
        encrypt_store(small, out, cipher)  # warm-up: numba compiles or loads its cache, here and on the workers
        encrypt_store_on_ray(small, out, cipher, workers=args.ray_workers)
        compare(
            f"store encrypt {name}",
            "vectors_per_s",
            plain,
            small,
            args.vectors,
            SMALL_STORE,
            lambda: encrypt_store(plain, out, cipher),
            lambda workers, source: encrypt_store_on_ray(source, out, cipher, workers=workers),
        )
    crops = folder / "crops"
    crops.mkdir()
    paths = write_crops(crops, args.images)
    build = {"name": "osnet_x0_25", "size": (256, 128), "batch_size": 32}
    extractor = build_extractor(**build)
    features = folder / "f.parquet"
    extract_features(extractor, paths[:32], features, batch_size=32, progress=False)  # warm-up
    compare(
        "extract 256x128 to a store",
        "images_per_s",
        paths,
        paths[:1],
        args.images,
        1,
        lambda: extract_features(extractor, paths, features, batch_size=32, progress=False),
        lambda workers, images: extract_on_ray(
            build, extractor.feature_dim, images, features, batch_size=32, workers=workers
        ),
    )
    ray.shutdown()
    return rows


def _one_pass_row(gallery: np.ndarray, queries: np.ndarray) -> dict:
    """The time to read every gallery byte once (BLAS matrix-vector product, all cores): a floor for exact search."""
    gallery @ queries[0]  # warm-up (pages resident)
    times = []
    for query in queries:
        start = time.perf_counter()
        gallery @ query
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {
        "name": "one pass over the gallery, numpy gallery @ query",
        "gallery": len(gallery),
        "dim": gallery.shape[1],
        "median_ms": 1000 * median,
        "max_ms": 1000 * max(times),
        "gib_per_s": gallery.nbytes / median / 2**30,
    }


def faiss_rows(args) -> list[dict]:
    rng = np.random.default_rng(2)
    gallery = np.empty((args.gallery, args.dim), np.float32)
    for start in range(0, args.gallery, 100_000):  # no float64 temporaries of the whole gallery
        stop = min(start + 100_000, args.gallery)
        gallery[start:stop] = rng.standard_normal((stop - start, args.dim), np.float32)
    queries = rng.standard_normal((args.queries, args.dim), np.float32)
    rows = [_one_pass_row(gallery, queries)]
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
    parser.add_argument("--ray-workers", type=int, default=0, help="add the Ray rows with this many actors")
    parser.add_argument("--images", type=int, default=256, help="crops extracted in the Ray rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stores-", dir=os.environ.get("TMPDIR")) as folder:
        rows = store_rows(args, Path(folder))
        rows += ray_rows(args, Path(folder)) if args.ray_workers > 0 else []
    rows += faiss_rows(args) if args.gallery > 0 else []
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_1min": load, "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    print(f"load {load:.1f} on {os.cpu_count()} CPUs")
    for row in rows:
        if "ray_over_local" in row or "local engine" in row["name"] or row["name"].startswith("ray.init"):
            rate = next(
                (f"{row[unit]:>10.1f} {unit[:-6]}/s" for unit in ("vectors_per_s", "images_per_s") if unit in row), ""
            )
            ratio = ""
            if "ray_over_local" in row:
                marginal = next(row[key] for key in row if key.startswith("marginal_"))
                ratio = f", Ray/local time {row['ray_over_local']:.2f}x; fixed {row['fixed_s']:.2f} s"
                ratio += f", then {marginal:.1f}/s"
            print(f"{row['name']:<44} {rate:>20} ({row['seconds']:.2f} s{ratio})")
        elif "vectors_per_s" in row:
            share = ""
            if "fraction_of_copy" in row:
                memory = row["in_memory_encrypt_vectors_per_s"]
                share = (
                    f" ({row['fraction_of_copy']:.0%} of the copy, "
                    f"{row['fraction_of_in_memory']:.0%} of in-memory encrypt {memory:.0f}/s)"
                )
            cost = (
                f", peak RSS {row['peak_rss_mib']:.0f} MiB, 10M vectors: {row['seconds_for_10M'] / 60:.1f} min"
                if "peak_rss_mib" in row
                else " (one row group on one thread)"
            )
            print(f"{row['name']:<28} {row['vectors_per_s']:>10.0f} vectors/s{share}{cost}")
        elif "gib_per_s" in row:
            print(
                f"{row['name']:<44} {row['median_ms']:.1f} ms median ({row['max_ms']:.1f} max) "
                f"over {row['gallery']} x {row['dim']}: {row['gib_per_s']:.1f} GiB/s"
            )
        else:
            print(
                f"{row['name']:<44} {row['median_ms']:.1f} ms median ({row['max_ms']:.1f} max) "
                f"over {row['gallery']} x {row['dim']}, index built in {row['build_s']:.1f} s"
            )


if __name__ == "__main__":
    main()
