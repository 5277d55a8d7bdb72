"""Batched feature extraction: the one batching layer, and extraction to a feature file.

``map_batches`` is how every path from images to features splits its work: the
extractor's ``__call__``, the in-process and HTTP black boxes and
``extract_features`` all call it. ``extract_features`` writes rows into a
temporary ``.npy`` memory map beside the output as each batch finishes, and
``save_features`` then streams that map into the paper's ``.npz`` layout, so a
million images never sit in RAM as one list of arrays; a ``.parquet`` output
gets each batch as a row group of a plaintext feature store instead
(``shufflebits.stores``). Decoding the next batch overlaps with the model
running on the current one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import ShuffleBitsError
from ..features import save_features


def check_batch_size(batch_size: int) -> int:
    """Refuse a batch size that would split nothing, before any image is decoded."""
    if batch_size < 1:
        raise ShuffleBitsError(f"batch_size must be positive, got {batch_size}")
    return batch_size


def map_batches(
    run: Callable[[Any], Any],
    items: Sequence,
    batch_size: int,
    prepare: Callable[[Sequence], Any] = list,
    prefetch: bool = False,
) -> Iterator:
    """``run(prepare(batch))`` for consecutive batches of at most ``batch_size`` items, in order.

    ``prepare`` decodes a batch (images to arrays or uploads) and ``run`` sends it
    through the model or the network. With ``prefetch`` the next batch is
    prepared in a worker thread while ``run`` works on the current one; memory
    stays bounded by two batches either way.
    """
    check_batch_size(batch_size)
    starts = range(0, len(items), batch_size)
    if not prefetch:
        for start in starts:
            yield run(prepare(items[start : start + batch_size]))
        return
    with ThreadPoolExecutor(max_workers=1) as loader:
        pending = loader.submit(prepare, items[0:batch_size])
        for start in starts:
            batch = pending.result()
            if start + batch_size < len(items):
                pending = loader.submit(prepare, items[start + batch_size : start + 2 * batch_size])
            yield run(batch)


def _split_records(images: Sequence) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """Paths plus pids/camids when ``images`` are records (anything with ``path``, ``pid``, ``camid``)."""
    if all(hasattr(item, "path") and hasattr(item, "pid") and hasattr(item, "camid") for item in images):
        paths = [item.path for item in images]
        pids = np.array([item.pid for item in images], np.int64)
        return paths, pids, np.array([item.camid for item in images], np.int64)
    return list(images), None, None


def extract_features(
    extractor,
    images: Sequence,
    out_path: str | os.PathLike,
    batch_size: int = 64,
    flip: bool = False,
    progress: bool = True,
) -> Path:
    """Write the features of ``images`` (paths or records) to ``out_path`` (.npz paper layout, .npy or .parquet).

    ``flip`` is the flip-test: each feature is the mean of the image's and its
    mirror's (then L2-normalised if the extractor normalises). Records add
    ``pids``/``camids`` to the file, which ``shufflebits reid`` needs.
    """
    out_path = Path(out_path)
    if out_path.suffix not in (".npz", ".npy", ".parquet"):
        raise ShuffleBitsError(f"feature file must end in .npz, .npy or .parquet, got {out_path.name}")
    if not out_path.parent.is_dir():
        raise ShuffleBitsError(f"output folder {out_path.parent} does not exist")
    check_batch_size(batch_size)
    paths, pids, camids = _split_records(images)
    if not paths:
        raise ShuffleBitsError("no images to extract features from")
    embed = partial(extractor.embed_array, flip=flip)
    batches = map_batches(embed, paths, batch_size, prepare=extractor.preprocess, prefetch=True)
    if out_path.suffix == ".parquet":
        _extract_to_store(extractor, batches, out_path, [str(path) for path in paths], pids, camids, progress)
        return out_path
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".rows.npy", dir=out_path.parent)
    os.close(fd)
    try:
        shape = (len(paths), extractor.feature_dim)
        rows = np.lib.format.open_memmap(tmp_name, mode="w+", dtype=np.float32, shape=shape)
        with tqdm(total=len(paths), unit="img", desc="extract", disable=not progress) as bar:
            start = 0
            for features in batches:
                rows[start : start + len(features)] = features
                start += len(features)
                bar.update(len(features))
        rows.flush()
        save_features(out_path, rows, [str(path) for path in paths], pids=pids, camids=camids)
        del rows
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return out_path


def _extract_to_store(extractor, batches, out_path: Path, paths: list[str], pids, camids, progress: bool) -> None:
    """Each batch of features becomes a row group of a plaintext store; ``id`` is the image path."""
    from ..stores import plain_batch, plain_writer
    from ..stores.plain import plain_schema

    schema = plain_schema(extractor.feature_dim, labels=pids is not None)
    with (
        plain_writer(out_path, schema) as write,
        tqdm(total=len(paths), unit="img", desc="extract", disable=not progress) as bar,
    ):
        start = 0
        for features in batches:
            part = slice(start, start + len(features))
            labels = (None, None) if pids is None else (pids[part], camids[part])
            write(plain_batch(schema, features, paths[part], paths[part], *labels))
            start += len(features)
            bar.update(len(features))
