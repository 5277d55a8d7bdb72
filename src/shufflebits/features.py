"""Plaintext feature files: the paper's ``.npz`` layout and plain ``.npy``.

The paper's extraction code writes ``accumulated_image_file_paths`` (one path per
row) and ``accumulated_feature_array`` (n, d). We keep those keys so files are
interchangeable with the authors' scripts, and add ``pids`` / ``camids`` when
known (re-ID evaluation needs them). Encrypted feature files live in
``shufflebits.ciphers.files``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import ShuffleBitsError

PATHS_KEY = "accumulated_image_file_paths"
FEATURES_KEY = "accumulated_feature_array"


@dataclass
class FeatureFile:
    """Features with the image each row came from (and identity/camera if known)."""

    features: np.ndarray
    image_paths: list[str]
    pids: np.ndarray | None = None
    camids: np.ndarray | None = None


def save_features(
    path: str | os.PathLike,
    features: np.ndarray,
    image_paths: list[str] | None = None,
    *,
    pids: np.ndarray | None = None,
    camids: np.ndarray | None = None,
) -> None:
    """Write ``features`` atomically as ``.npz`` (paper layout) or ``.npy``."""
    path = Path(path)
    features = np.asarray(features)
    if features.ndim != 2:
        raise ShuffleBitsError(f"features must be 2-D (n, d), got shape {features.shape}")
    if path.suffix == ".npy":
        with atomic_write(path) as handle:
            np.save(handle, features, allow_pickle=False)
        return
    if path.suffix != ".npz":
        raise ShuffleBitsError(f"feature file must end in .npz or .npy, got {path.name}")
    n = features.shape[0]
    arrays = {FEATURES_KEY: features}
    arrays[PATHS_KEY] = np.asarray(list(image_paths) if image_paths is not None else [""] * n, dtype=str)
    for name, values in (("pids", pids), ("camids", camids)):
        if values is not None:
            arrays[name] = np.asarray(values, dtype=np.int64)
    for name, values in arrays.items():
        if len(values) != n:
            raise ShuffleBitsError(f"{name} has {len(values)} rows but features have {n}")
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load_features(path: str | os.PathLike) -> FeatureFile:
    """Read a plaintext ``.npz`` (paper layout) or ``.npy`` feature file."""
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"feature file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy (whatever its name)
            _check_2d(path, loaded)
            return FeatureFile(loaded, [""] * len(loaded))
        with loaded as archive:
            if FEATURES_KEY not in archive.files:
                raise ShuffleBitsError(
                    f"{path} is not a plaintext feature file (no {FEATURES_KEY!r}; "
                    "encrypted files need `shufflebits decrypt` first)"
                )
            features = archive[FEATURES_KEY]
            paths = archive[PATHS_KEY] if PATHS_KEY in archive.files else None
            pids = archive["pids"] if "pids" in archive.files else None
            camids = archive["camids"] if "camids" in archive.files else None
    except MemoryError as error:  # a header can declare any shape; numpy allocates it before reading
        raise ShuffleBitsError(
            f"cannot read feature file {path}: it declares an array too large to load ({error})"
        ) from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ShuffleBitsError(f"cannot read feature file {path}: {error}") from error
    _check_2d(path, features)
    if paths is not None and paths.ndim != 1:
        raise ShuffleBitsError(f"{path}: {PATHS_KEY} must be 1-D (one path per row), got shape {list(paths.shape)}")
    paths = [str(p) for p in paths] if paths is not None else [""] * len(features)
    return FeatureFile(features, paths, _labels(path, "pids", pids), _labels(path, "camids", camids))


def _labels(path: Path, name: str, values: np.ndarray | None) -> np.ndarray | None:
    """``pids`` / ``camids`` as 1-D int64; strings, objects or fractional values are refused in one line."""
    if values is None:
        return None
    integral = values.dtype.kind in "iu" or (
        values.dtype.kind == "f" and bool(np.all(np.isfinite(values))) and bool(np.all(values == np.round(values)))
    )
    if values.ndim != 1 or not integral:
        raise ShuffleBitsError(
            f"{path}: {name} must be a 1-D array of integers, got {values.dtype} of shape {list(values.shape)}"
        )
    return values.astype(np.int64)


def _check_2d(path: Path, features: np.ndarray) -> None:
    if features.ndim != 2:
        raise ShuffleBitsError(f"{path}: features must be 2-D (n, d), got shape {features.shape}")
