"""Atomic writes under races and signals: a key file is never replaced, no temporary outlives its write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from shufflebits import atomic
from shufflebits.atomic import atomic_write, atomic_write_bytes, umask_mode
from shufflebits.ciphers import generate_key, load_key, save_key
from shufflebits.errors import ShuffleBitsError

SOURCE = str(Path(__file__).resolve().parents[1] / "src")


def test_a_destination_that_appears_mid_write_is_never_replaced(tmp_path):
    target = tmp_path / "server.key"
    with pytest.raises(ShuffleBitsError, match="refusing to overwrite"):
        with atomic_write(target, overwrite=False, permissions=0o600) as handle:
            handle.write(b"mine")
            target.write_bytes(b"theirs")  # another process wins the race after the early check
    assert target.read_bytes() == b"theirs"
    assert list(tmp_path.glob(".*.tmp")) == []


def test_concurrent_key_saves_leave_exactly_one_key(tmp_path):
    target = tmp_path / "k.json"
    keys = [generate_key("chacha20") for _ in range(8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(keys))

    def save(key):
        barrier.wait()
        try:
            save_key(target, key)
            outcomes.append(key.fingerprint)
        except ShuffleBitsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=save, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(winners) == 1 and load_key(target).fingerprint == winners[0]
    assert (target.stat().st_mode & 0o777) == 0o600 and list(tmp_path.glob(".*.tmp")) == []


def test_the_umask_is_never_changed(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError("os.umask called: a process-wide change other threads would see")

    monkeypatch.setattr(os, "umask", forbidden)
    atomic_write_bytes(tmp_path / "plain.bin", b"x")
    save_key(tmp_path / "k.json", generate_key("aes-gcm"))
    assert umask_mode(0o777) & 0o700 == 0o700


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_write_leaves_no_temporary_file(tmp_path, signum):
    script = textwrap.dedent(
        f"""
        import sys, time
        from shufflebits.atomic import atomic_write, remove_temporaries_on_signals
        remove_temporaries_on_signals()
        with atomic_write({str(tmp_path / "out.bin")!r}) as handle:
            handle.write(b"x" * (8 << 20))
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline() == b"writing\n"
        assert len(list(tmp_path.glob(".*.tmp"))) == 1
        child.send_signal(signum)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_pending_temporaries_of_other_threads_are_removed_at_exit(tmp_path):
    started = threading.Event()

    errors: list[BaseException] = []

    def write():
        try:
            with atomic_write(tmp_path / "slow.bin") as handle:
                handle.write(b"partial")
                started.set()
                time.sleep(0.5)
        except FileNotFoundError as error:  # its temporary is gone: the rename cannot happen
            errors.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    assert started.wait(10)
    atomic._remove_pending()  # what atexit runs if the process stops now
    assert list(tmp_path.glob(".*.tmp")) == []
    thread.join()
    assert len(errors) == 1 and not (tmp_path / "slow.bin").exists()
