"""The Ray engine: the local pipelines' per-batch steps on a Ray cluster's actors, one writer on the driver.

One pipeline, two engines. The steps are the local engine's own functions
(``stores.sealed.seal_batch``, ``stores.sealed.open_group``, the extractor's
``preprocess`` + ``embed_array``); Ray changes only who runs them. The driver
lists units of work (row groups of a store, batches of image paths), Ray Data
sends them through ``map_batches`` to a pool of ``workers`` actors (each holds
the cipher, or the model, built once in its constructor; one GPU each with
``--device cuda``), and the driver streams the results, in order, into the
project's own writers (``sealed_writer``, ``plain_writer``). So a Ray output is
a store like any other (header, row-group and file tags, seals in the footer)
and appears by atomic rename at the end. Ray's ``write_parquet`` is not used: the
tags need each group's index and row offset in the final file, and one file
with one header is what ``decrypt``/``inspect``/``reid`` verify. The cost is
that every output row passes through the driver: its disk and network bound
the rate, not the worker count (the README's plan says where that bites).

Units carry file paths, not data: on a multi-node cluster the input must be on
a path every node reads (shared file system). Units are read by the actors
themselves; Ray Data's own readers would each hold a CPU that the actor pool
waits for (``num_cpus=2`` with 2 actors deadlocks).

Keys travel as constructor arguments of the actors (pickled into Ray's object
store, never logged by this code). Whoever operates the cluster can read them
there, and the plaintext the workers see: run it on machines trusted with both.
Nonces are drawn on each worker from its own OS CSPRNG (``os.urandom``), as on
one machine, so workers need no coordination.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from ..errors import ShuffleBitsError

INSTALL = "pip install 'shufflebits[ray]'"
CONNECT_TIMEOUT_S = 5.0
_UNIT, _EXTRA = "_unit", "_extra"  # columns the actors add: which unit a row came from, that unit's seals


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ShuffleBitsError(f"--engine ray needs Ray Data ({error.name} is missing): {INSTALL}") from None
    return ray


def _probe(address: str) -> None:
    """Refuse an address nothing answers on within ``CONNECT_TIMEOUT_S`` (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return  # ray.init finds a local cluster or says in one line there is none
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    port = parts.port or (10001 if parts.scheme == "ray" else 6379)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise ShuffleBitsError(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); nothing was written"
        ) from None


@contextlib.contextmanager
def cluster(address: str | None, workers: int, gpus_per_worker: float = 0) -> Iterator[None]:
    """Connect to ``address`` (``ray://head:10001``, ``head:6379``, ``auto``), or start a local Ray; shut down after.

    A Ray already initialised in this process (the tests' fixture) is used as it is.
    """
    ray = _import_ray()
    if address is not None:
        _probe(address)
    chatter = logging.getLogger("ray.data")  # its per-run INFO lines are not this command's output
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError) as error:
            raise ShuffleBitsError(f"cannot connect to Ray at {address}: {str(error).splitlines()[0]}") from None
    try:
        resources = ray.cluster_resources()
        needs = {"CPU": workers, "GPU": workers * gpus_per_worker}
        for name, wanted in needs.items():
            if wanted and resources.get(name, 0) < wanted:
                raise ShuffleBitsError(
                    f"{workers} Ray workers need {wanted:g} {name}, the cluster has {resources.get(name, 0):g}"
                )
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the store's row order is the input's
        context.enable_progress_bars = False
        context.raise_original_map_exception = True  # a worker's ShuffleBitsError reaches the driver as itself
        yield
    finally:
        chatter.setLevel(level)
        if started:
            ray.shutdown()


def run_units(
    units: list[dict], actor: type, args: tuple, workers: int, gpus_per_worker: float = 0
) -> Iterator[tuple[pa.Table, str | None]]:
    """``(table, extra)`` of each unit, in order: what ``actor(*args).run(unit)`` returned on some worker.

    Ray may merge or split the actors' output blocks; the ``_unit`` column puts
    each unit's rows back together (a row group's seals must cover it exactly).
    """
    ray = _import_ray()
    if not units:
        return
    items = [{**unit, _UNIT: index} for index, unit in enumerate(units)]
    dataset = ray.data.from_items(items).map_batches(
        _Runner,
        fn_constructor_args=(actor, args),
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(units))),  # no idle actors
        num_cpus=1,
        num_gpus=gpus_per_worker,
    )
    pending: list[pa.Table] = []
    current = 0
    try:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = block if isinstance(block, pa.Table) else pa.Table.from_batches([block])
            marks = table.column(_UNIT).to_numpy()
            edges = [0, *(np.flatnonzero(np.diff(marks)) + 1).tolist(), len(marks)]
            for start, stop in itertools.pairwise(edges):
                piece = table.slice(start, stop - start)
                if int(marks[start]) != current and pending:
                    yield _finish(pending)
                    pending = []
                current = int(marks[start])
                pending.append(piece)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, ShuffleBitsError):  # a worker's own error; Ray appends its retry advice
            raise type(error.cause)(str(error.cause).splitlines()[0]) from None
        raise
    if pending:
        yield _finish(pending)


def _finish(pieces: list[pa.Table]) -> tuple[pa.Table, str | None]:
    table = pa.concat_tables(pieces)
    extra = table.column(_EXTRA)[0].as_py()
    return table.drop_columns([_UNIT, _EXTRA]), extra


class _Runner:
    """The actor Ray Data pools: builds ``actor(*args)`` once, runs one unit per call."""

    def __init__(self, actor: type, args: tuple) -> None:
        self.worker = actor(*args)

    def __call__(self, batch: pa.Table) -> pa.Table:
        unit = {name: batch.column(name)[0].as_py() for name in batch.column_names}
        table, extra = self.worker.run(unit)
        table = table if isinstance(table, pa.Table) else pa.Table.from_batches([table])
        table = table.replace_schema_metadata(None)
        table = table.append_column(_UNIT, pa.array(np.full(table.num_rows, unit[_UNIT], np.int64)))
        return table.append_column(_EXTRA, pa.array([extra] * table.num_rows, pa.string()))


def _as_schema(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """A worker's rows in the store's exact schema (Ray may drop nullability and metadata), as one batch."""
    return table.select(schema.names).cast(schema).combine_chunks().to_batches()[0]


# Encryption -------------------------------------------------------------------------------------------------


class _Encryptor:
    """Holds the cipher (built from the key on the worker); encrypts one row slice of a plaintext store file."""

    def __init__(self, key, schema: pa.Schema) -> None:
        from ..ciphers import cipher_for_key

        self.cipher, self.schema, self.files = cipher_for_key(key), schema, {}

    def run(self, unit: dict) -> tuple[pa.RecordBatch, str]:
        from ..stores.schema import open_parquet
        from ..stores.sealed import seal_batch

        path = Path(unit["path"])
        if path not in self.files:
            self.files[path] = open_parquet(path)
        rows = _read_rows(self.files[path], unit["start"], unit["rows"])
        out, seals = seal_batch(self.cipher, rows, self.schema, path)
        return out, json.dumps(seals)


def _read_rows(parquet, start: int, rows: int) -> pa.Table:
    """Rows ``start`` to ``start + rows`` of a file, reading only the row groups they fall in."""
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.metadata.num_row_groups)]
    offsets = np.cumsum([0, *sizes])
    groups = [g for g in range(len(sizes)) if offsets[g] < start + rows and offsets[g + 1] > start]
    return parquet.read_row_groups(groups).slice(start - int(offsets[groups[0]]), rows)


def _row_slices(source: str | os.PathLike, step: int) -> list[dict]:
    """Every file cut into slices of at most ``step`` rows, across its row groups: the local engine's batches."""
    from ..stores.schema import open_parquet, store_files

    units = []
    for path in store_files(source):
        count = open_parquet(path).metadata.num_rows
        units += [
            {"path": str(path.resolve()), "start": start, "rows": min(step, count - start)}
            for start in range(0, count, step)
        ]
    return units


def encrypt_store_on_ray(
    source, target, cipher, rows: int | None = None, *, address: str | None = None, workers: int = 2
):
    """``stores.encrypt_store`` with the encryption on Ray actors; the same row groups come out."""
    from ..stores.plain import plain_batches
    from ..stores.schema import VECTOR, rows_per_group
    from ..stores.sealed import StoreSummary, sealed_writer

    plain, _ = plain_batches(source)  # every file's schema checked before anything runs
    units = _row_slices(source, rows or rows_per_group(plain.field(VECTOR).type.list_size))
    total = groups = 0
    with cluster(address, workers), sealed_writer(target, plain, cipher) as (schema, put):
        for table, seals in run_units(units, _Encryptor, (cipher.key, schema), workers):
            put(_as_schema(table, schema), json.loads(seals))
            total, groups = total + table.num_rows, groups + 1
    return StoreSummary(total, groups, plain.field(VECTOR).type.list_size)


# Decryption -------------------------------------------------------------------------------------------------


class _Decryptor:
    """Holds the cipher; checks a file (header, schema, file tag) once, then verifies and decrypts its groups."""

    def __init__(self, key, schema: pa.Schema) -> None:
        from ..ciphers import cipher_for_key

        self.cipher, self.schema, self.files = cipher_for_key(key), schema, {}

    def run(self, unit: dict) -> tuple[pa.RecordBatch, None]:
        from ..stores.sealed import checked_files, open_group

        if unit["path"] not in self.files:
            self.files[unit["path"]] = checked_files(unit["path"], self.cipher)[0]
        return open_group(self.files[unit["path"]], unit["group"], unit["offset"], self.cipher, self.schema), None


def decrypt_store_on_ray(source, target, cipher, *, address: str | None = None, workers: int = 2):
    """``stores.decrypt_store`` with tag checks and decryption on Ray actors; every file is checked first."""
    from ..stores.schema import VECTOR, parquet_writer, write_row_group
    from ..stores.sealed import StoreSummary, checked_files, decrypted_schema

    files = checked_files(source, cipher)  # headers, schemas and file tags, before any worker starts
    schema = decrypted_schema(files)
    units = []
    for file in files:
        offsets = np.cumsum([0, *file.rows])[:-1].tolist()  # no units for a file of no row groups
        units += [{"path": str(file.path.resolve()), "group": g, "offset": o} for g, o in enumerate(offsets)]
    total = groups = 0
    with cluster(address, workers), parquet_writer(target, schema, bulk=(VECTOR,)) as writer:
        for table, _ in run_units(units, _Decryptor, (cipher.key, schema), workers):
            write_row_group(writer, _as_schema(table, schema))
            total, groups = total + table.num_rows, groups + 1
    return StoreSummary(total, groups, schema.field(VECTOR).type.list_size)


# Extraction -------------------------------------------------------------------------------------------------


class _Extractor:
    """Holds the model (built once per worker from the same arguments as the local extractor)."""

    def __init__(self, build: dict, flip: bool, schema: pa.Schema) -> None:
        from ..models import build_extractor

        self.extractor, self.flip, self.schema = build_extractor(**build), flip, schema

    def run(self, unit: dict) -> tuple[pa.RecordBatch, None]:
        from ..stores import plain_batch

        paths = unit["paths"]
        features = self.extractor.embed_array(self.extractor.preprocess(unit["files"]), flip=self.flip)
        labels = (None, None) if unit["pids"] is None else (np.array(unit["pids"]), np.array(unit["camids"]))
        return plain_batch(self.schema, features, paths, paths, *labels), None


def extract_on_ray(
    build: dict,
    dim: int,
    images: list,
    out_path,
    *,
    batch_size: int = 64,
    flip: bool = False,
    address: str | None = None,
    workers: int = 2,
) -> Path:
    """``extract_features`` to a ``.parquet`` store of ``dim``-wide features, each batch of images on a Ray actor.

    ``build`` holds ``build_extractor``'s arguments: each actor builds its model from them once.
    ``id`` and ``path`` are the paths as given (as the local engine writes them); workers open them absolute.
    """
    from ..stores import plain_writer
    from ..stores.plain import plain_schema
    from .extract import _split_records, check_batch_size

    out_path = Path(out_path)
    if out_path.suffix != ".parquet":
        raise ShuffleBitsError(f"--engine ray writes a feature store (.parquet), got {out_path.name}")
    check_batch_size(batch_size)
    paths, pids, camids = _split_records(images)
    if not paths:
        raise ShuffleBitsError("no images to extract features from")
    schema = plain_schema(dim, labels=pids is not None)
    units = [
        {
            "paths": [str(path) for path in paths[part]],
            "files": [str(Path(path).resolve()) for path in paths[part]],
            "pids": None if pids is None else pids[part].tolist(),
            "camids": None if camids is None else camids[part].tolist(),
        }
        for part in (slice(start, start + batch_size) for start in range(0, len(paths), batch_size))
    ]
    gpus = 1 if str(build.get("device", "cpu")).startswith("cuda") else 0
    with cluster(address, workers, gpus), plain_writer(out_path, schema) as write:
        for table, _ in run_units(units, _Extractor, (build, flip, schema), workers, gpus):
            write(_as_schema(table, schema))
    return out_path
