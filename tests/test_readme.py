"""The README's CLI walk-through, extracted from README.md itself and run as a shell script at small sizes.

The block after the walk-through marker runs with ``bash -e`` in an empty
folder, with ``shufflebits`` on PATH running this checkout's code. Only the
numbers after the size flags in ``SMALL`` change (so 32 identities fill one
P x K batch of 16 identities x 4 images); every other word is as typed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shufflebits.features import load_features

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"--identities": "32", "--images-per-identity": "4", "--epochs": "1", "--size-mib": "0.25"}


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
def test_readme_walkthrough_runs_as_typed(tmp_path):
    timings, readme = _timings_script(), (ROOT / "README.md").read_text()
    stores = timings.walkthrough(readme, timings.STORES_MARKER)  # the Parquet block, in the walk-through's folder
    commands = [shrink(command) for command in [*timings.walkthrough(readme), *stores]]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "shufflebits"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m shufflebits "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
    }
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    plain, decrypted = load_features(work / "q.npz"), load_features(work / "q.dec.npz")
    assert decrypted.features.tobytes() == plain.features.tobytes()  # the walk-through's round trip is bit-exact
    assert decrypted.pids.tolist() == plain.pids.tolist() and len(load_features(work / "g.npz").pids) > 0
    reids = [line for line in done.stdout.splitlines() if line.startswith("rank-1 ")]
    assert len(reids) == 3 and all("mAP" in line and "%" not in line for line in reids)
    figures = [line.split("  (")[0] for line in reids]
    assert figures[1] == figures[0]  # the encrypted stores, decrypted as read, rank as the decrypted .npz does
    assert "ranked by faiss" in reids[2]  # the approximate IVF index (its figures may differ)
    assert "million float32/s" in done.stdout
