"""The report as plain text for the terminal (what ``shufflebits study`` prints at the end).

Figures are written by ``shufflebits.study.numbers.figure``, as on the page.
"""

from __future__ import annotations

import os

from ..load import load_text, overloaded
from ..numbers import figure
from .sections import REID_WORDS
from .select import (
    METRIC_ORDER,
    RECONSTRUCTION_ORDER,
    THROUGHPUT_COLUMNS,
    beaten_by,
    best_rows,
    cipher_rank,
    feature_label,
    headline_rule,
    is_throughput,
)

TERMINAL_METRICS = {  # column headings of the leakage summary, short enough for one line each
    "attr_bacc_mean": "attributes (bacc)",
    "recon_cosine_distance": "recon (cos dist)",
    "recon_rank1": "recon as query (r1)",
    "recon_success_rate": "recon accepted (SAR)",
    "recon_rank1_transfer": "recon r1, 2nd model",
    "recon_success_rate_transfer": "recon SAR, 2nd model",
    "recon_attr_bacc_mean": "recon attributes",
    "reid_rank1": "linking users (r1)",
    "key_bits_recovered": "key bits (of 32)",
}


def _reconstruction_lines(best: dict, ciphers: list[str]) -> list[str]:
    """The figures of each cipher's chosen reconstruction that the matrix above leaves out."""
    extra = [m for m in RECONSTRUCTION_ORDER if m not in METRIC_ORDER and any(key[1] == m for key in best)]
    lines = []
    for cipher in ciphers:
        cells = [(m, best[(cipher, m)]) for m in extra if (cipher, m) in best]
        if cells:
            said = ", ".join(f"{TERMINAL_METRICS[m]} {_cell(row)}" for m, row in cells)
            lines.append(f"  {feature_label(cipher):<16}{cells[0][1]['attack']}: {said}")
    if lines:
        lines.insert(0, "reconstruction (chosen on validation; SAR: accepted as its user at FMR 1e-3)")
    return lines


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row["metric"] == "key_bits_recovered":
        pairs = "" if row.get("pairs") is None else f" ({row['pairs']}p)"
        return f"{figure(row['value'], 1)} of {row.get('of', 32)}{pairs}"
    return f"{figure(row['value'])} / {figure(row.get('chance'))}"


SHORT_WORDS = ("million float32/s", "× AES-GCM", "× AES-GCM allocating", "× pure Python")  # THROUGHPUT_COLUMNS, short


def throughput_lines(rows: list[dict], cpu_count: int | None = None) -> list[str]:
    """The benchmark as text, each row once, in words; size, threads, load and what the ratios mean at the end."""
    width = max((len(_label(row)) for row in rows), default=20)
    lines = []
    for row in rows:
        if not is_throughput(row):
            continue
        rate, *ratios = (figure(row.get(key), digits) for key, _, digits in THROUGHPUT_COLUMNS)
        said = ", ".join(f"{value} {word}" for value, word in zip(ratios, SHORT_WORDS[1:]))
        spread = ""
        if row.get("mfloat_per_s_median") is not None:
            spread = (
                f"median {figure(row['mfloat_per_s_median'], 1)}, worst {figure(row.get('mfloat_per_s_worst'), 1)}; "
            )
        lines.append(f"  {_label(row):<{width}}  {rate:>9} {SHORT_WORDS[0]}  ({spread}{said})")
    for row in rows:
        if is_throughput(row):
            continue
        lines.append(
            f"  {_label(row):<{width}}  {figure(row.get('latency_us'), 1):>9} µs per call  "
            f"(fastest {figure(row.get('latency_us_min'), 1)}, slowest {figure(row.get('latency_us_max'), 1)})"
        )
    if rows:
        first = rows[0]
        sample = {"load_1min": first.get("load_average"), "cpu_count": first.get("cpu_count") or cpu_count}
        lines.append(
            f"  {figure(first.get('size_mib'), 0)} MiB of float32, best of 3-9 runs, "
            f"torch threads {first.get('threads')}, "
            f"{load_text(sample)}. × AES-GCM: relative to AES-256-GCM writing into a preallocated output; "
            "allocating: a new output each call; pure Python: the per-element definition (timed on a sample)."
        )
    return lines


def _label(row: dict) -> str:
    return f"{row['name']} [{row['kernel']}]" if row.get("kernel") else str(row["name"])


def summary_table(results: dict) -> str:
    """A compact plain-text summary for the terminal; its first line is the verdict."""
    lines = []
    verdict = results.get("verdict")
    if verdict:
        lines.append(("NOTE: " if not verdict["ok"] else "") + verdict["headline"])
    card = (results.get("victim") or {}).get("card")
    if card:
        worlds = (("own_world", "own world"), ("user_world", "user world"))
        lines.append(
            f"victim ({card['source']}): "
            + "; ".join(
                f"{label} rank-1 {figure(card[key]['rank1'])} mAP {figure(card[key]['mAP'])}" for key, label in worlds
            )
        )
    rows = results.get("leakage")
    if rows:
        best = best_rows(rows)
        ciphers = sorted({c for c, _ in best}, key=cipher_rank)
        metrics = [m for m in METRIC_ORDER if any(key[1] == m for key in best)]
        rules = sorted({headline_rule(row) for row in best.values()})
        lines.append(f"leakage (value / chance; each cell: {'; '.join(rules)})")
        lines.append(f"  {'features':<16}" + "".join(f"{TERMINAL_METRICS.get(m, m):>22}" for m in metrics))
        notes, single = [], {}
        for cipher in ciphers:
            cells = [_cell(best.get((cipher, metric))) for metric in metrics]
            lines.append(f"  {feature_label(cipher):<16}" + "".join(f"{c:>22}" for c in cells))
            for metric in metrics:
                row = best.get((cipher, metric))
                if row and row.get("single_class"):
                    single.setdefault(", ".join(row["single_class"]), []).append(feature_label(cipher))
                beaten = row and beaten_by(row)
                if beaten:
                    notes.append(
                        f"  note: {cipher} {TERMINAL_METRICS.get(metric, metric)}: {row['attack']} "
                        f"({headline_rule(row)}) gives {figure(row['value'])}; {beaten[0]} reaches "
                        f"{figure(beaten[1])} on the users' data"
                    )
        for names, where in single.items():
            said = f"{names} ({', '.join(where)})"
            lines.append(f"  note: left out of the attribute means (one class among the users): {said}")
        lines.extend(notes)
        lines.extend(_reconstruction_lines(best, ciphers))
    reid = results.get("reid")
    if reid:
        plain = reid["plaintext"]
        lines.append("re-ID (plaintext -> decrypted)")
        shown = "  ".join(f"{REID_WORDS.get(k, k)} {figure(v)}" for k, v in plain.items())
        if plain.get("mAP") == plain.get("mINP") and reid.get("matches_per_query") == [1, 1]:
            shown += "  (mAP = mINP: each query has one correct gallery match)"
        lines.append("  plaintext        " + shown)
        for name, figures in sorted(reid["decrypted"].items(), key=lambda kv: cipher_rank(kv[0])):
            lines.append(
                f"  {name:<16} mAP {figure(figures['mAP'])}  bit-exact {'yes' if figures['bit_exact'] else 'NO'}"
                f"  same figures {'yes' if figures['same_figures'] else 'NO'}"
            )
    shown = [row for row in results.get("throughput") or [] if (row.get("mfloat_per_s") or 0) > 0]
    if shown:
        lines.append("throughput")
        lines.extend(throughput_lines(shown, os.cpu_count()))
    if results.get("cost"):
        from ...ciphers.cost import cost_lines

        lines.append("what protection costs")
        lines.extend(f"  {line}" for line in cost_lines(results["cost"]))
    lines.append("wall time (s)")
    stages = results.get("stages") or {}
    for name, seconds in results["timings"].items():
        record = stages.get(name) or {}
        note = ""
        if record.get("cached"):
            computed = record.get("computed") or {}
            took = computed.get("seconds")
            note = "  reused from the cache" + ("" if took is None else f" (computed in {figure(took, 1)} s)")
        load = (record.get("computed") or {}).get("load") if record.get("cached") else record.get("load")
        if overloaded(load):
            note += f"  [busy: load {load['load_1min']:.1f} > {load['cpu_count']} CPUs]"
        lines.append(f"  {name:<28} {figure(seconds, 1):>8}{note}")
    for name, failure in results.get("failures", {}).items():
        lines.append(f"FAILED {name}: {failure}")
    return "\n".join(lines)
