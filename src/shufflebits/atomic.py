"""Atomic file writes: a reader never sees a half-written output.

Write to a temporary file in the destination folder, fsync, then rename over
the destination (or, when it must not be replaced, hard-link it into place,
which fails if the destination appeared meanwhile: no check-then-replace race).
On any error the temporary file is removed and the destination is left
untouched; ``remove_temporaries_on_signals`` makes SIGTERM and SIGINT unwind the
same way, and temporaries still pending at exit are removed. The process umask
is never changed: files are created with the mode the umask leaves.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import ShuffleBitsError

_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EIO}
_PENDING: set[str] = set()  # temporaries being written, removed if the process is stopped
_PENDING_LOCK = threading.Lock()


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the process umask would leave it, found by creating a probe folder (umask untouched)."""
    probe = Path(tempfile.gettempdir()) / f".shufflebits-umask-{secrets.token_hex(8)}"
    os.mkdir(probe, 0o777)
    try:
        allowed = probe.stat().st_mode & 0o777
    finally:
        os.rmdir(probe)
    return mode & allowed


def _create_temporary(directory: Path, name: str, mode: int) -> tuple[int, str]:
    """An exclusive new file beside the destination, created with ``mode`` (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        candidate = str(directory / f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(candidate, flags, mode)
        except FileExistsError:
            continue
        with _PENDING_LOCK:
            _PENDING.add(candidate)
        return fd, candidate
    raise ShuffleBitsError(f"cannot create a temporary file in {directory}")


def _forget(tmp_name: str) -> None:
    with _PENDING_LOCK:
        _PENDING.discard(tmp_name)


def _publish_new(tmp_name: str, path: Path) -> None:
    """Put ``tmp_name`` at ``path`` only if nothing is there (atomically), else refuse."""
    try:
        os.link(tmp_name, path)
    except FileExistsError:
        raise ShuffleBitsError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        _copy_exclusive(tmp_name, path)  # a file system without hard links: create with O_EXCL
    os.unlink(tmp_name)


def _copy_exclusive(tmp_name: str, path: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, os.stat(tmp_name).st_mode & 0o777)
    except FileExistsError:
        raise ShuffleBitsError(f"{path} already exists; refusing to overwrite it") from None
    try:
        with os.fdopen(fd, "wb") as target, open(tmp_name, "rb") as source:
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "wb",
    *,
    overwrite: bool = True,
    permissions: int | None = None,
) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only if the block succeeds.

    ``overwrite=False`` refuses an existing destination, atomically (key files
    are never silently replaced). ``permissions`` (e.g. ``0o600``) is applied
    before any byte is written, so secrets are never world-readable even briefly.
    """
    path = Path(path)
    if not overwrite and path.exists():  # early, friendly refusal; the link below is what guarantees it
        raise ShuffleBitsError(f"{path} already exists; refusing to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ShuffleBitsError(f"output folder {directory} does not exist")
    try:
        fd, tmp_name = _create_temporary(directory, path.name, 0o666 if permissions is None else permissions & 0o777)
    except OSError as error:
        if error.errno in _WRITE_ERRORS:
            raise ShuffleBitsError(f"cannot write {path}: {error.strerror}") from error
        raise
    try:
        if permissions is not None:
            os.fchmod(fd, permissions)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp_name, path)
        else:
            _publish_new(tmp_name, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if error.errno in _WRITE_ERRORS:  # full disk, read-only or forbidden folder: the user's to fix
            raise ShuffleBitsError(f"cannot write {path}: {error.strerror}") from error
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        _forget(tmp_name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, **kwargs) -> None:
    with atomic_write(path, "wb", **kwargs) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, **kwargs) -> None:
    with atomic_write(path, "w", **kwargs) as handle:
        handle.write(text)


@atexit.register
def _remove_pending() -> None:
    """Temporaries a stopped thread left behind (the main thread's unwind removes its own)."""
    with _PENDING_LOCK:
        pending = list(_PENDING)
        _PENDING.clear()
    for name in pending:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _stop(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def remove_temporaries_on_signals() -> None:
    """SIGTERM (and SIGINT, already a KeyboardInterrupt) unwind the main thread, so every write cleans up."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
