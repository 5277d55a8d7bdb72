"""The leakage matrix on disk: ``leakage.json`` (the rows), ``leakage.md`` (a table) and the grid PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from .reconstruction_eval import grid_png
from .types import LeakageResult, LeakageRow

GRIDS_FILE = "reconstructions.json"  # [{cipher, attack, file}] naming the grid PNGs beside leakage.json
SECONDS_FILE = "leakage_seconds.json"  # {cipher: {attack: wall seconds}}: where the matrix's time went


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return "" if value is None else str(value)


def leakage_markdown(rows, per_attribute: bool = True) -> str:
    """The rows as a Markdown table (one line per row; ``per_attribute=False`` leaves out ``attr_bacc`` rows)."""
    rows = [row.as_dict() if isinstance(row, LeakageRow) else row for row in rows]
    if not per_attribute:
        rows = [row for row in rows if row["metric"] != "attr_bacc"]
    header = ["cipher", "attack", "metric", "attribute", "pairs", "value", "chance", "chance 95% CI", "p", "n"]
    keys = ["cipher", "attack", "metric", "attribute", "pairs", "value", "chance", "chance_ci", "p_value", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key in keys) + " |")
    return "\n".join(lines) + "\n"


def write_leakage(result: LeakageResult, out_dir) -> tuple[Path, Path]:
    """``out_dir/leakage.json`` (the list of rows), ``leakage.md``, one PNG per reconstruction grid, the timings."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "leakage.json", out_dir / "leakage.md"
    index = []
    for (cipher, attack), grid in result.grids.items():
        name = f"reconstruction_{cipher}_{attack}.png"
        with atomic_write(out_dir / name, "wb") as handle:
            handle.write(grid_png(grid))
        index.append({"cipher": cipher, "attack": attack, "file": name})
    atomic_write_text(out_dir / GRIDS_FILE, json.dumps(index, indent=1) + "\n")
    atomic_write_text(json_path, json.dumps([row.as_dict() for row in result.rows], indent=1) + "\n")
    atomic_write_text(md_path, leakage_markdown(result.rows))
    atomic_write_text(out_dir / SECONDS_FILE, json.dumps(result.seconds, indent=1) + "\n")
    return json_path, md_path


def read_leakage(folder) -> LeakageResult:
    """What ``write_leakage`` wrote into ``folder``, back in memory."""
    from PIL import Image

    folder = Path(folder)
    rows = tuple(LeakageRow.from_dict(row) for row in json.loads((folder / "leakage.json").read_text()))
    grids = {}
    for entry in json.loads((folder / GRIDS_FILE).read_text()):
        with Image.open(folder / entry["file"]) as image:
            grids[(entry["cipher"], entry["attack"])] = np.asarray(image.convert("RGB"))
    seconds_path = folder / SECONDS_FILE
    seconds = json.loads(seconds_path.read_text()) if seconds_path.is_file() else {}
    return LeakageResult(rows=rows, grids=grids, seconds=seconds)
