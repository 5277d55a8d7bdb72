"""Atomic file writes: a reader never sees a half-written output.

Write to a temporary file in the destination folder, fsync, then rename over
the destination. On any error the temporary file is removed and the
destination is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import ShuffleBitsError


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the process umask would leave it (what ``open`` would create)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "wb",
    *,
    overwrite: bool = True,
    permissions: int | None = None,
) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only if the block succeeds.

    ``overwrite=False`` refuses an existing destination (key files are never
    silently replaced). ``permissions`` (e.g. ``0o600``) is applied before any
    byte is written, so secrets are never world-readable even briefly.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise ShuffleBitsError(f"{path} already exists; refusing to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ShuffleBitsError(f"output folder {directory} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates 0600; ordinary outputs get the usual umask-based mode.
        os.fchmod(fd, permissions if permissions is not None else umask_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if not overwrite and path.exists():
            raise ShuffleBitsError(f"{path} already exists; refusing to overwrite it")
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, **kwargs) -> None:
    with atomic_write(path, "wb", **kwargs) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, **kwargs) -> None:
    with atomic_write(path, "w", **kwargs) as handle:
        handle.write(text)
