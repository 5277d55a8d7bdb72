"""Training (``train``, the BoT recipe) and batched feature extraction (``extract_features``).

``train`` is imported eagerly: a lazy attribute would be shadowed by the
``engine.train`` submodule of the same name once anything imports it.
``extract_features`` stays lazy.
"""

from __future__ import annotations

import importlib

from .train import TrainResult, train

__all__ = ["TrainResult", "extract_features", "train"]


def __getattr__(name: str):
    if name == "extract_features":
        return importlib.import_module("shufflebits.engine.extract").extract_features
    raise AttributeError(f"module 'shufflebits.engine' has no attribute {name!r}")
