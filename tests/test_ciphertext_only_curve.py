"""scripts/ciphertext_only_curve.py at a tiny size: the study's alignments on a population of the victim's features."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from shufflebits.attacks.protection import ciphertext_only_attack
from shufflebits.ciphers.catalogue import cipher_names

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ciphertext_only_curve.py"
TINY = ["--profile", "quick", "--counts", "40", "80", "--evaluate", "40", "--attacker-identities", "12"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(out: Path, capsys) -> tuple[dict, str]:
    spec = importlib.util.spec_from_file_location("ciphertext_only_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([*TINY, "--no-progress", "--out", str(out)])
    return json.loads(out.read_text()), capsys.readouterr().out


def test_curve_rows_cover_every_alignment_repeat_with_the_seed_and_print_a_table(tmp_path, capsys):
    first, printed = _run(tmp_path / "a.json", capsys)
    again, _ = _run(tmp_path / "b.json", capsys)
    aligned = [name for name in cipher_names() if ciphertext_only_attack(name) is not None]
    assert [(r["cipher"], r["ciphertexts"]) for r in first["rows"]] == [(c, n) for c in aligned for n in (40, 80)]
    population = first["population"]
    assert population["user_images"] == 80 and population["attacker_identities"] == [1, 12]
    assert population["user_identities"][0] == 13  # users are other people than the attacker's
    assert "the study's: 1-500" in population["description"]  # an attacker smaller than the study's says so
    by_cipher = {r["cipher"]: r for r in first["rows"] if r["ciphertexts"] == 80}
    assert by_cipher["dcpe"]["cosine"] > 0.99 > by_cipher["dcpe"]["chance"]  # no shuffle: the scale alone inverts it
    assert len({r["chance"] for r in first["rows"]}) == 1 and first["seed"] == 0

    def figures(result):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in result["rows"]]

    assert figures(first) == figures(again)  # same seed, same figures
    lines = printed.splitlines()
    assert lines[0] == population["description"] and len(lines) == 2 + len(first["rows"]) + 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--out", "absent/x.json"], "output folder absent does not exist"),
        (["--profile", "nope"], "unknown study profile"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_work(tmp_path, argv, said):
    import subprocess
    import sys

    argv = [*argv, "--out", str(tmp_path / "x.json")] if "--out" not in argv else argv
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 2 and said in done.stderr.splitlines()[-1] and not (tmp_path / "x.json").exists()
