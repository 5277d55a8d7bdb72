"""Batched feature extraction to a feature file, with memory bounded by one batch.

Rows go into a temporary ``.npy`` memory map beside the output as each batch
finishes, and ``save_features`` then streams that map into the paper's ``.npz``
layout, so a million images never sit in RAM as one list of arrays. Decoding
the next batch overlaps with the model running on the current one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..errors import ShuffleBitsError
from ..features import save_features


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
    """Write the features of ``images`` (paths or records) to ``out_path`` (.npz paper layout or .npy).

    ``flip`` is the flip-test: each feature is the mean of the image's and its
    mirror's (then L2-normalised if the extractor normalises). Records add
    ``pids``/``camids`` to the file, which ``shufflebits reid`` needs.
    """
    out_path = Path(out_path)
    if out_path.suffix not in (".npz", ".npy"):
        raise ShuffleBitsError(f"feature file must end in .npz or .npy, got {out_path.name}")
    if not out_path.parent.is_dir():
        raise ShuffleBitsError(f"output folder {out_path.parent} does not exist")
    if batch_size <= 0:
        raise ShuffleBitsError(f"batch size must be positive, got {batch_size}")
    paths, pids, camids = _split_records(images)
    if not paths:
        raise ShuffleBitsError("no images to extract features from")
    starts = range(0, len(paths), batch_size)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".rows.npy", dir=out_path.parent)
    os.close(fd)
    try:
        shape = (len(paths), extractor.feature_dim)
        rows = np.lib.format.open_memmap(tmp_name, mode="w+", dtype=np.float32, shape=shape)
        with ThreadPoolExecutor(max_workers=1) as loader, tqdm(
            total=len(paths), unit="img", desc="extract", disable=not progress
        ) as bar:
            pending = loader.submit(extractor.preprocess, paths[0:batch_size])
            for start in starts:
                batch = pending.result()
                if start + batch_size < len(paths):
                    pending = loader.submit(extractor.preprocess, paths[start + batch_size : start + 2 * batch_size])
                rows[start : start + len(batch)] = extractor.embed_array(batch, flip=flip)
                bar.update(len(batch))
        rows.flush()
        save_features(out_path, rows, [str(path) for path in paths], pids=pids, camids=camids)
        del rows
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return out_path
