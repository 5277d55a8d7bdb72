"""Stage cache: a study re-run resumes from the last stage whose inputs did not change.

Each stage writes into a temporary folder that is renamed to
``cache/<stage>-<key>`` only when the stage finished, so a folder that exists is
complete. The key hashes everything the stage's output depends on: its
parameters, seeds, the upstream stage keys, library versions and the source
code of the packages that compute it (editing the training code retrains).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

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


@lru_cache(maxsize=None)
def code_version(*packages: str) -> str:
    """Hash of the source of ``shufflebits.<package>`` folders, plus library versions."""
    import torch

    sha = hashlib.sha256(f"{shufflebits.__version__} torch {torch.__version__} numpy {np.__version__}".encode())
    for package in packages:
        for path in sorted((PACKAGE_DIR / package).rglob("*.py")):
            sha.update(str(path.relative_to(PACKAGE_DIR)).encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def cached_stage(cache_dir: Path, name: str, inputs: dict, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Folder holding the stage's output, built by ``build(folder)`` unless cached.

    Returns ``(folder, was_cached)``. A failed or interrupted build leaves nothing behind.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{name}-{digest(inputs)}"
    if final.is_dir():
        return final, True
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", suffix=".tmp", dir=cache_dir))
    try:
        build(tmp)
        (tmp / "inputs.json").write_text(json.dumps(inputs, sort_keys=True, indent=1, default=str))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, False
