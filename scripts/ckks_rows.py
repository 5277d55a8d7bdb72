"""The ckks rows of a study's results.json: matching through the key holder, renewal, linkage, score reveal, time.

python scripts/ckks_rows.py quick-out/results.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shufflebits.errors import ShuffleBitsError
from shufflebits.study.numbers import figure
from shufflebits.study.report.page import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    try:
        results = read_results(args.results, "leakage")
    except ShuffleBitsError as error:
        raise SystemExit(f"ckks_rows.py: {error}") from None
    rows = {r["metric"]: r for r in results["leakage"] if r["cipher"] == "ckks" and "attribute" not in r}
    if not rows:
        raise SystemExit(f"{args.results} has no ckks rows (is TenSEAL installed?)")
    reid, mean_ap = rows["reid_rank1_ciphertext"], rows["reid_map_ciphertext"]
    print(f"re-ID on {reid['n_query']} queries x {reid['n_gallery']} gallery templates, key holder ranks:")
    for label, row, plain in (("rank-1", reid, "plaintext_rank1"), ("mAP", mean_ap, "plaintext_map")):
        print(
            f"  {label:<6} ckks {figure(row['value'])}  plaintext {figure(row[plain])}  chance {figure(row['chance'])}"
        )
    print(f"  largest score error {figure(reid['score_error_max'])}")
    renew = rows["renewability_rank1"]
    print(
        f"renewability ({renew['n']} queries): old secret key on the renewed gallery rank-1 {figure(renew['value'])} "
        f"(chance {figure(renew['chance'])}); the renewed key's own {figure(renew['renewed_key_rank1'])}"
    )
    link = rows["unlinkability_dsys"]
    print(
        f"D_sys, ciphertext coefficients across keys ({link['n_query']} x {link['n_gallery']}): {figure(link['value'])}"
        f"; wrong-key scores: {figure(link['wrong_key_scores_dsys'])}"
    )
    linking = rows["reid_rank1"]
    low, high = linking["chance_ci"]
    print(
        f"linking users by coefficients under one key ({linking['n']} x {linking['n_gallery']}): rank-1 "
        f"{figure(linking['value'])} (shuffled queries {figure(low)}-{figure(high)}, p {figure(linking['p_value'])})"
    )
    attributes = rows["attr_bacc_mean"]
    low, high = attributes["chance_ci"]
    print(
        f"attributes, same-key learning on coefficients ({attributes['n']} users): {figure(attributes['value'])} "
        f"(chance {figure(attributes['chance'])}, shuffled labels {figure(low)}-{figure(high)}, "
        f"p {figure(attributes['p_value'])})"
    )
    revealed, top_k = rows["score_reveal_cosine"], rows["score_reveal_topk_cosine"]
    print(f"score reveal ({revealed['n']} queries; chance cosine {figure(revealed['chance'])}):")
    top = f"top-{top_k['top_k']} cosine"
    print(f"  {'enrolled':>8} {'cosine':>8} {'accepted':>9} {top:>13} {'accepted':>9}")
    for (n, cosine), (_, ok), (_, k_cosine), (_, k_ok) in zip(
        revealed["curve"], revealed["success_curve"], top_k["curve"], top_k["success_curve"], strict=True
    ):
        print(f"  {n:>8} {figure(cosine):>8} {figure(ok):>9} {figure(k_cosine):>13} {figure(k_ok):>9}")
    irreversible = rows["irreversibility_success"]
    print(
        f"irreversibility (ISO/IEC 30136, FMR {irreversible['fmr']}; {irreversible['enrolled']} enrolled): "
        f"{irreversible['attack']} accepted {figure(irreversible['value'])} (chance {figure(irreversible['chance'])})"
        f"; from revealed scores {figure(irreversible['reveal_scores_mode'])}"
    )
    seconds = sum(results["leakage_seconds"]["ckks"].values())
    stage = results["stages"]["leakage"]
    computed = stage.get("computed", stage)  # a cached stage: the run that computed it
    print(
        f"ckks seconds in the leakage stage: {figure(seconds)} of {figure(computed['seconds'])} "
        f"(1-min load {figure(computed['load']['load_1min'])} on {computed['load']['cpu_count']} CPUs)"
    )


if __name__ == "__main__":
    main()
