"""The report as plain text for the terminal (what ``shufflebits study`` prints at the end)."""

from __future__ import annotations

import math

import numpy as np

from .select import METRIC_ORDER, THROUGHPUT, best_rows, cipher_rank, measured, row_label


def summary_table(results: dict) -> str:
    """A compact plain-text summary for the terminal."""
    lines = []
    rows = results.get("leakage")
    if rows:
        best = best_rows(rows)
        ciphers = sorted({c for c, _ in best}, key=cipher_rank)
        metrics = [m for m in METRIC_ORDER if any(key[1] == m for key in best)]
        lines.append("leakage (best attack; value / chance)")
        lines.append(f"  {'features':<16}" + "".join(f"{m:>26}" for m in metrics))
        for cipher in ciphers:
            cells = []
            for metric in metrics:
                row = best.get((cipher, metric))
                cells.append(f"{_plain(row['value'])} / {_plain(row.get('chance'))}" if row else "-")
            lines.append(f"  {cipher:<16}" + "".join(f"{c:>26}" for c in cells))
    reid = results.get("reid")
    if reid:
        plain = reid["plaintext"]
        lines.append("re-ID (plaintext -> decrypted)")
        lines.append("  plaintext        " + "  ".join(f"{k} {_plain(v)}" for k, v in plain.items()))
        for name, figures in sorted(reid["decrypted"].items(), key=lambda kv: cipher_rank(kv[0])):
            lines.append(
                f"  {name:<16} mAP {_plain(figures['mAP'])}  bit-exact {'yes' if figures['bit_exact'] else 'NO'}"
                f"  same figures {'yes' if figures['same_figures'] else 'NO'}"
            )
    shown = measured(results.get("throughput") or [])
    if shown:
        lines.append("throughput (million floats/s)")
        lines.extend(f"  {row_label(row):<56} {row[THROUGHPUT]:>10,.1f}" for row in shown)
    lines.append("wall time (s)")
    lines.extend(f"  {name:<28} {seconds:>8.1f}" for name, seconds in results["timings"].items())
    for name, failure in results.get("failures", {}).items():
        lines.append(f"FAILED {name}: {failure}")
    return "\n".join(lines)


def _plain(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{value:.3f}" if math.isfinite(value) else "-"
