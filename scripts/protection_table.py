"""Template-protection figures of a study's results.json, one line per cipher: matching on ciphertexts,
inversion from known pairs and from ciphertexts alone, ISO/IEC 30136 unlinkability, renewability, irreversibility;
then the inversion curves (cosine to the truth per number of known pairs or ciphertexts) and the frontier sweep.

python scripts/protection_table.py quick-out/results.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shufflebits.errors import ShuffleBitsError
from shufflebits.study.numbers import figure
from shufflebits.study.report.page import read_results

COLUMNS = (
    ("reid_rank1_ciphertext", "rank-1 on ciphertexts"),
    ("reid_map_ciphertext", "mAP on ciphertexts"),
    ("known_pair_cosine", "known pairs (cosine)"),
    ("ciphertext_only_cosine", "no pairs (cosine)"),
    ("unlinkability_dsys", "D_sys"),
    ("renewability_rank1", "cross-key rank-1"),
    ("irreversibility_success", "inversions accepted"),
)


def cell(row: dict | None) -> str:
    """``value / chance``, and how many pairs or ciphertexts an inversion curve reached."""
    if row is None:
        return "-"
    text = f"{figure(row['value'])} / {figure(row['chance'])}"
    if row["metric"] == "known_pair_cosine":
        text += f" ({row['pairs_used']}p)"
    elif row["metric"] == "ciphertext_only_cosine":
        text += f" ({row['curve'][-1][0]}c)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    try:
        results = read_results(args.results, "leakage")
    except ShuffleBitsError as error:
        raise SystemExit(f"protection_table.py: {error}") from None
    leakage = results["leakage"]
    rows = {(r["cipher"], r["metric"]): r for r in leakage if r.get("pairs") is None and "attribute" not in r}
    ciphers = list(dict.fromkeys(r["cipher"] for r in leakage if (r["cipher"], COLUMNS[4][0]) in rows))
    if not ciphers:
        raise SystemExit(f"{args.results} has no template-protection rows")
    table = [["cipher", *(label for _, label in COLUMNS)]]
    table += [[name, *(cell(rows.get((name, metric))) for metric, _ in COLUMNS)] for name in ciphers]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
    print("(value / chance; D_sys chance 0; p: known pairs used, c: ciphertexts seen; irreversibility at FMR 0.001)")
    for metric, label in COLUMNS[2:4]:
        for name in ciphers:
            row = rows.get((name, metric))
            if row is not None:
                points = "  ".join(f"{count}: {figure(cosine)}" for count, cosine in row["curve"])
                print(f"{name} {label.split(' (')[0]}: {points}")
    frontier = results.get("frontier")
    if frontier:
        print_frontier(frontier)


def print_frontier(frontier: dict) -> None:
    """The study's parameter sweep: one line per cipher and parameter (the report's frontier table)."""
    probe = frontier["points"][0].get("attr_probe", "-") if frontier["points"] else "-"
    print(f"frontier sweep (attributes: {probe}):")
    print("scheme   parameter                        rank-1 on ciphertexts  D_sys  attributes  µs per vector  bytes")
    for point in frontier["points"]:
        if "bits" in point:
            parameter = f"b = {point['bits']}"
        else:
            parameter = f"beta = {figure(point['beta_relative'])} x median distance"
        print(
            f"{point['cipher']:<8} {parameter:<32} {figure(point['reid_rank1_ciphertext']):>21}  "
            f"{figure(point['unlinkability_dsys']):>5}  {figure(point['attr_bacc_mean']):>10}  "
            f"{figure(point['encrypt_us_per_vector']):>13}  {point['bytes_per_vector']:>5.0f}"
        )


if __name__ == "__main__":
    main()
