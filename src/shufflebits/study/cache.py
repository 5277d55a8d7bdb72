"""What stage keys are made of: stable digests, file contents, and the source of the code that computes a stage.

``shufflebits.study.stages`` digests a stage's declared params, files,
upstream keys and ``code_version(*packages)`` with these; library versions
enter ``code_version``, so upgrading torch re-runs what torch computed.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

import numpy as np

import shufflebits

PACKAGE_DIR = Path(shufflebits.__file__).resolve().parent


def digest(inputs: object) -> str:
    """Short stable hash of JSON-serialisable ``inputs``."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (weights files enter cache keys by content, not name)."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@cache
def code_version(*packages: str) -> str:
    """Hash of the source of ``shufflebits.<package>`` folders, plus library versions."""
    import torch

    sha = hashlib.sha256(f"{shufflebits.__version__} torch {torch.__version__} numpy {np.__version__}".encode())
    for package in packages:
        for path in sorted((PACKAGE_DIR / package).rglob("*.py")):
            sha.update(str(path.relative_to(PACKAGE_DIR)).encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()[:16]
