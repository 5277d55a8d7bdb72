"""The README's CLI blocks, extracted from README.md itself and run command by command at small sizes.

The block after the walk-through marker runs with ``bash`` in an empty
folder, with ``shufflebits`` on PATH running this checkout's code, once per
module; the Parquet, service, Ray, ONNX, searchable and CKKS blocks then run in
that folder. Only the numbers after the size flags in ``SMALL`` change (so 32
identities fill one P x K batch of 16 identities x 4 images); every other word
is as typed, except these substitutions, each in the test that makes it:
a free port for ``--port 8000`` (and in the ``curl`` URL) and ``--templates 100``
after ``bench --cost`` (10,000 by default).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from shufflebits.ciphers import cipher_for_key, load_key
from shufflebits.features import load_features
from shufflebits.service import HttpBlackBox
from shufflebits.service.wire import decode_answer
from shufflebits.stores import read_plain

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"--identities": "32", "--images-per-identity": "4", "--epochs": "1", "--size-mib": "0.25"}
SERVICE_MARKER = "<!-- service: run after the walk-through by tests/test_readme.py -->"
RAY_MARKER = "<!-- ray: run after the Parquet block by tests/test_readme.py -->"
ONNX_MARKER = "<!-- onnx: run after the walk-through by tests/test_readme.py -->"
SEARCHABLE_MARKER = "<!-- searchable: run after the walk-through by tests/test_readme.py -->"
CKKS_MARKER = "<!-- ckks: run after the walk-through by tests/test_readme.py -->"
TOKEN = "secret"  # SHUFFLEBITS_TOKEN of the serve lines, as typed
TYPED_PORT = 8000  # of the serve lines and the curl URL; the tests serve on a free port instead
SMALL_COST = "--templates 100"  # after `bench --cost`: 9 s instead of 26 s on 2 shared cores


@dataclass
class Walked:
    """The folder the walk-through ran in, and what the later blocks run with."""

    work: Path
    env: dict[str, str]
    stdout: str


def _timings_script():
    spec = importlib.util.spec_from_file_location("readme_timings", ROOT / "scripts" / "readme_timings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shrink(command: str) -> str:
    """``command`` with the value after each ``SMALL`` flag replaced."""
    for flag, value in SMALL.items():
        command = re.sub(rf"(?<!\S){re.escape(flag)} \S+", f"{flag} {value}", command)
    return command


def block(marker: str) -> list[str]:
    """The commands of the README's block after ``marker``."""
    return _timings_script().walkthrough((ROOT / "README.md").read_text(), marker)


def sh(work: Path, env: dict[str, str], commands: list[str]) -> str:
    """Each command run by bash in ``work``, each asserted to exit 0; their stdout, joined."""
    stdout = ""
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        stdout += done.stdout
    return stdout


def small_cost(command: str) -> str:
    return f"{command} {SMALL_COST}" if command.endswith("bench --cost") else command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(walked: Walked, command: str) -> Iterator[tuple[str, Path]]:
    """A README ``serve`` line in the background on a free port, once its health endpoint answers: (URL, log).

    Stopped (SIGTERM to its process group) when the block ends."""
    assert f"--port {TYPED_PORT}" in command, command
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", walked.work / f"serve-{port}.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            ["bash", "-c", command.replace(f"--port {TYPED_PORT}", f"--port {port}")],
            cwd=walked.work,
            env=walked.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"{command}\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no answer from {url}/v1/health within 120 s"
            time.sleep(0.2)
        yield url, log
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> Walked:
    """The walk-through then the Parquet block, run once, at small sizes, in a fresh folder."""
    timings, readme = _timings_script(), (ROOT / "README.md").read_text()
    commands = [*timings.walkthrough(readme), *timings.walkthrough(readme, timings.STORES_MARKER)]
    root = tmp_path_factory.mktemp("readme")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "shufflebits"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m shufflebits "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    work = root / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
    }
    return Walked(work, env, sh(work, env, [shrink(command) for command in commands]))


def test_stores_block_uses_only_what_it_or_the_walkthrough_makes():
    timings, readme = _timings_script(), (ROOT / "README.md").read_text()
    made = {"world", "victim.pt", "user.key", "q.npz", "g.npz"}
    for command in timings.walkthrough(readme, timings.STORES_MARKER):
        words = command.split()
        inputs = [words[i + 1] for i, w in enumerate(words) if w in ("--query", "--gallery", "--key", "--weights")]
        if words[1] in ("encrypt", "inspect"):
            inputs.append(words[-2] if words[1] == "encrypt" else words[-1])
        assert all(name in made for name in inputs), command
        if "--out" in words:
            made.add(words[words.index("--out") + 1])
        if words[1] == "encrypt":
            made.add(words[-1])


def test_walkthrough_is_complete():
    commands = _timings_script().walkthrough((ROOT / "README.md").read_text())
    verbs = [command.split()[1] for command in commands]
    assert all(command.split()[0] == "shufflebits" for command in commands)
    for verb in ("keygen", "synth", "train", "extract", "encrypt", "decrypt", "reid"):
        assert verb in verbs, verb
    extracts = [command for command in commands if command.split()[1] == "extract"]
    assert {"query", "gallery"} == {command.split("--split ")[1].split()[0] for command in extracts}
    for flag in SMALL:  # every size the test shrinks is in the block, or the test would run it full size
        assert any(f"{flag} " in command for command in commands), flag


@pytest.mark.usefixtures("one_torch_thread")
def test_readme_walkthrough_runs_as_typed(walked):
    work = walked.work
    plain, decrypted = load_features(work / "q.npz"), load_features(work / "q.dec.npz")
    assert decrypted.features.tobytes() == plain.features.tobytes()  # the walk-through's round trip is bit-exact
    assert decrypted.pids.tolist() == plain.pids.tolist() and len(load_features(work / "g.npz").pids) > 0
    reids = [line for line in walked.stdout.splitlines() if line.startswith("rank-1 ")]
    assert len(reids) == 3 and all("mAP" in line and "%" not in line for line in reids)
    figures = [line.split("  (")[0] for line in reids]
    assert figures[1] == figures[0]  # the encrypted stores, decrypted as read, rank as the decrypted .npz does
    assert "ranked by faiss" in reids[2]  # the approximate IVF index (its figures may differ)
    assert "million float32/s" in walked.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed: the service block's request needs it")
def test_readme_service_block_answers_ciphertext_that_the_server_key_decrypts(walked):
    *prepare, serve, request = block(SERVICE_MARKER)  # server.key and person.jpg, then the server, then curl
    sh(walked.work, walked.env, prepare)
    typed = f"http://127.0.0.1:{TYPED_PORT}"
    assert typed in request
    with serving(walked, serve) as (url, log):
        answer = json.loads(sh(walked.work, walked.env, [request.replace(typed, url)]))
    assert '"POST /v1/features HTTP/1.1" 200 OK' in log.read_text()
    sealed = decode_answer(answer)  # the seal binds the answer's id and row count
    features = cipher_for_key(load_key(walked.work / "server.key")).decrypt(sealed, require_authenticated=True)
    query = load_features(walked.work / "q.npz")
    person = (walked.work / "person.jpg").read_bytes()
    row = [(walked.work / path).read_bytes() for path in query.image_paths].index(person)
    np.testing.assert_allclose(features, query.features[row : row + 1], rtol=0, atol=1e-5)  # extract's features


# each command starts a local Ray (27-52 s for the three on 2 shared cores): in the suite, so CI runs the block
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (shufflebits[ray])")
def test_readme_ray_block_gives_the_local_engines_stores(walked):
    sh(walked.work, walked.env, block(RAY_MARKER))
    local = read_plain(walked.work / "g.parquet")  # the Parquet block's local extract
    decrypted = read_plain(walked.work / "g.ray.dec.parquet")
    assert decrypted.features.tobytes() == local.features.tobytes() and decrypted.image_paths == local.image_paths
    extracted = read_plain(walked.work / "g.ray.parquet")
    assert extracted.image_paths == local.image_paths
    np.testing.assert_allclose(extracted.features, local.features, rtol=0, atol=1e-5)  # one torch thread per actor


def test_readme_onnx_block_serves_ciphertext_that_the_pad_key_decrypts(walked):
    *prepare, serve = block(ONNX_MARKER)  # pad.key, enc.onnx, then the server
    sh(walked.work, walked.env, prepare)
    query = load_features(walked.work / "q.npz")
    with serving(walked, serve) as (url, _), HttpBlackBox(url, TOKEN, allow_untagged=True) as client:
        sealed = client.features([walked.work / query.image_paths[0]])  # the block has no request: this one
    assert sealed.cipher == "chacha20" and not sealed.authenticated  # encrypted in the graph, untagged
    features = cipher_for_key(load_key(walked.work / "pad.key")).decrypt(sealed)
    np.testing.assert_allclose(features, query.features[:1], rtol=0, atol=1e-5)  # onnxruntime against torch


def test_readme_searchable_block_ranks_ciphertexts_without_the_key(walked):
    commands = [small_cost(command) for command in block(SEARCHABLE_MARKER)]
    reid = [command for command in commands if command.split()[1] == "reid"]
    assert len(reid) == 1 and "--key" not in reid[0]
    out = sh(walked.work, walked.env, commands)
    assert len([line for line in out.splitlines() if line.startswith("rank-1 ") and " mAP " in line]) == 1
    assert "euclidean on ciphertexts" in out and "(1:N over 100 512-d templates;" in out


@pytest.mark.skipif(importlib.util.find_spec("tenseal") is None, reason="tenseal is not installed (shufflebits[he])")
def test_readme_ckks_block_releases_the_nearest_gallery_rows(walked):
    query, first = load_features(walked.work / "q.npz"), 2
    commands = [small_cost(command) for command in block(CKKS_MARKER)]
    encrypt_query = [command for command in commands if command.split()[1] == "ckks-encrypt-query"]
    assert len(encrypt_query) == 1 and f"--rows {first} " in encrypt_query[0]
    out = sh(walked.work, walked.env, commands)
    assert len([line for line in out.splitlines() if line.startswith("rank-1 ") and "ranked by ckks" in line]) == 3
    release = json.loads((walked.work / "ids.json").read_text())  # the last reid's: the encrypted queries'
    assert release["queries"] == first and release["top_k"] == 1
    gallery = load_features(walked.work / "g.npz").features
    distances = ((query.features[:first, None] - gallery[None]) ** 2).sum(-1)
    released = distances[np.arange(first), [ids[0] for ids in release["ids"]]]
    assert np.all(released <= 1.01 * distances.min(axis=1))  # the nearest row, up to CKKS's approximate scores
    assert "ckks (encrypted query)" in out and "(1:N over 100 512-d templates;" in out
