"""Where torch runs and on how many threads: one home for the device and thread policy.

On 2 shared cores torch's default of one thread per core becomes 10-50x slower
whenever another process is busy, so the study, the attacks and the tests pin
small models to one thread with ``torch_threads``. NumPy's BLAS (OpenBLAS)
does the same with small products: a 32 x 32 co-occurrence over 2M rows took
57 s on its 2 threads beside a busy core and 0.4 s on one, so the attacks also
pin it with ``blas_threads``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache

import torch

from .errors import ShuffleBitsError


def check_device(device: str) -> str:
    """Refuse a device this machine cannot use here, not deep inside torch with a traceback."""
    device = str(device)
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ShuffleBitsError(f"device {device!r} requested but CUDA is not available here; use device 'cpu'")
        index, count = device[len("cuda:") :], torch.cuda.device_count()
        if device != "cuda" and not (index.isdecimal() and int(index) < count):
            raise ShuffleBitsError(
                f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return device
    raise ShuffleBitsError(f"unknown device {device!r}; expected cpu or cuda")


@lru_cache(maxsize=1)
def _start_numba_threads() -> None:
    """Start numba's thread pool now: its OpenMP layer resets the process's OpenMP thread count
    (torch's too) when it starts, so a cipher kernel's first call inside ``torch_threads(1)`` used
    to put torch on 2 threads for the rest of the run, moving figures in their 6th decimal."""
    import numba

    numba.get_num_threads()


def serving_threads() -> int:
    """Torch threads for the server's model: every core but one, which HTTP and image decoding need.

    With torch's default (one thread per core) the model's threads share every
    core with the request threads and whatever else runs, and each step of a
    forward waits for its slowest thread: at load 3 on 2 cores, OSNet-x0.25 on
    8 crops took 6x longer on 2 threads than on 1.
    """
    return max(1, (os.cpu_count() or 1) - 1)


@contextmanager
def blas_threads(n: int):
    """Run NumPy's (and SciPy's) BLAS on ``n`` threads: the attacks' products are too small to share."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


@contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch threads (``None``: unchanged): small models' steps are slower split across cores."""
    if n is not None:
        _start_numba_threads()
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
