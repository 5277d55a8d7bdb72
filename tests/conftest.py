"""Shared fixtures: the read-only ../shared data (skipped cleanly when absent), one torch thread, seeded hypothesis."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real weights, vectors, crops)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (real data fixtures are optional)")
    return SHARED


def shared_file(relative: str) -> Path:
    """Path inside ../shared, or skip the test when it is missing."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared/{relative} is absent")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is as fast, and immune to OpenMP stalls on a busy CPU.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Hypothesis draws from a seed derived from each test, so a run is repeatable (and no example database).
settings.register_profile("shufflebits", derandomize=True, database=None)
settings.load_profile("shufflebits")


@pytest.fixture()
def no_torch_compile(monkeypatch):
    """torch.compile as on a machine without a C++ compiler: the compiled function fails when called."""
    import torch

    from shufflebits.ciphers import kernels_torch

    def no_compiler(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(kernels_torch, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", no_compiler)
