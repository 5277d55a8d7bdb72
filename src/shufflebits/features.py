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
            paths = [str(p) for p in archive[PATHS_KEY]] if PATHS_KEY in archive.files else [""] * len(features)
            pids = archive["pids"] if "pids" in archive.files else None
            camids = archive["camids"] if "camids" in archive.files else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ShuffleBitsError(f"cannot read feature file {path}: {error}") from error
    _check_2d(path, features)
    return FeatureFile(features, paths, pids, camids)


def _check_2d(path: Path, features: np.ndarray) -> None:
    if features.ndim != 2:
        raise ShuffleBitsError(f"{path}: features must be 2-D (n, d), got shape {features.shape}")
