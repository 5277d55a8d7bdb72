"""The README's "How long things take" table, measured: run its CLI walk-through, time each command.

    .venv/bin/python scripts/readme_timings.py [--study quick-out/results.json ...]

Runs the shell block after README.md's walk-through marker, one command at a
time, exactly as typed, in a fresh temporary folder (``shufflebits`` must be
on PATH: ``. .venv/bin/activate``), and prints a Markdown table: each
command's wall time with the 1-minute load average and CPU count around it.
Each ``--study`` adds the study run recorded in that ``results.json`` (its
command, total wall time and highest load). ``tests/test_readme.py`` runs the
same block at small sizes, so the README's commands and this table agree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- walkthrough: tested by tests/test_readme.py -->"
STORES_MARKER = "<!-- stores: run after the walk-through by tests/test_readme.py -->"


def walkthrough(text: str, marker: str = MARKER) -> list[str]:
    """The commands of the ```bash block right after ``marker``: comments dropped, ``\\`` continuations joined."""
    after = text.split(marker, 1)
    if len(after) != 2:
        raise SystemExit(f"README.md has no {marker!r}")
    block = re.match(r"\s*```bash\n(.*?)\n```", after[1], re.S)
    if block is None:
        raise SystemExit(f"{marker!r} is not followed by a ```bash block")
    joined = block.group(1).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def _load() -> float:
    return os.getloadavg()[0]


def minutes(seconds: float) -> str:
    """``7 min 18 s`` or ``42 s``."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def time_walkthrough(commands: list[str]) -> list[tuple[str, float, float]]:
    """(command, wall seconds, highest 1-min load at its start or end), run one by one in a temporary folder."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="readme-timings-") as folder:
        for command in commands:
            before = _load()
            start = time.perf_counter()
            subprocess.run(command, shell=True, cwd=folder, check=True, stdout=subprocess.DEVNULL)
            rows.append((command, time.perf_counter() - start, max(before, _load())))
    return rows


def study_row(path: Path) -> tuple[str, float, float]:
    results = json.loads(path.read_text())
    command = results["environment"]["command"] or f"shufflebits study --profile {results['profile']}"
    return command, results["timings"]["total"], results["load"]["load_1min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, action="append", default=[], help="a study's results.json to add")
    args = parser.parse_args()
    rows = time_walkthrough(walkthrough(README.read_text()))
    rows += [study_row(path) for path in args.study]
    cpus = os.cpu_count()
    models = [
        line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model" in line
    ]
    cpu = next((m for m in models if not m.isdigit()), "unknown CPU")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    print(f"Measured {day} on {cpus} CPUs ({cpu}) with `python {' '.join(sys.argv)}`:")
    print()
    print(f"| command | wall time | 1-min load average ({cpus} CPUs) |")
    print("|---|---|---|")
    for command, seconds, load in rows:
        busy = " (busy: above the CPU count)" if load > cpus else ""
        print(f"| `{command}` | {minutes(seconds)} | {load:.1f}{busy} |")


if __name__ == "__main__":
    main()
