"""The study report on hand-made inputs: matrix selection, JSON hygiene, failures shown, atomic files.

The real page from a real run is checked in tests/test_study.py (also in a browser).
"""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np
import pytest

from shufflebits.study.numbers import figure
from shufflebits.study.report import best_rows, build_figures, jsonable, render_html, summary_table, write_report
from shufflebits.study.report.select import RULE_ONLY, RULE_USERS, RULE_VALIDATION
from shufflebits.study.verdict import MIN_PLAINTEXT_ADVANTAGE, verdict

ROWS = [
    {"cipher": "plaintext", "attack": "mlp", "metric": "attr_bacc_mean", "value": 0.81, "chance": 0.4, "n": 50},
    {"cipher": "plaintext", "attack": "linear", "metric": "attr_bacc_mean", "value": 0.77, "chance": 0.4, "n": 50},
    {"cipher": "plaintext", "attack": "ae", "metric": "recon_cosine_distance", "value": 0.30, "chance": 0.9, "n": 50},
    {"cipher": "plaintext", "attack": "gan", "metric": "recon_cosine_distance", "value": 0.20, "chance": 0.9, "n": 50},
    {
        "cipher": "plaintext",
        "attack": "mlp",
        "metric": "attr_bacc",
        "attribute": "gender",
        "value": 0.95,
        "chance": 0.5,
        "n": 50,
    },
    {"cipher": "aes-gcm", "attack": "bits", "metric": "attr_bacc_mean", "value": 0.41, "chance": 0.4, "n": 50},
    {
        "cipher": "aes-gcm",
        "attack": "bits",
        "metric": "attr_bacc",
        "attribute": "gender",
        "value": 0.49,
        "chance": 0.5,
        "n": 50,
    },
]


def _results(**overrides) -> dict:
    results = {
        "profile": "unit",
        "victim": None,
        "training_history": [{"epoch": 1, "loss": 3.0, "acc": 0.2}, {"epoch": 2, "loss": 2.0, "acc": 0.5}],
        "leakage": ROWS,
        "reid": {
            "plaintext": {"mAP": 0.5, "rank1": 0.7},
            "decrypted": {"chacha20": {"mAP": 0.5, "rank1": 0.7, "bit_exact": True, "same_figures": True}},
            "n_query": 10,
            "n_gallery": 40,
        },
        "throughput": [{"name": "ShuffleBits fixed", "kernel": "numba", "mfloat_per_s": 900.0}],
        "timings": {"victim": 1.5, "leakage": 2.5, "total": 4.0},
        "failures": {},
        "environment": {
            "started_utc": "2026-01-01 00:00:00",
            "seeds": {"seed": 0},
            "python": "3.11",
            "profile": {"epochs": 2},
        },
    }
    results.update(overrides)
    return results


def test_best_rows_takes_the_attackers_best_in_each_metrics_direction():
    best = best_rows(ROWS)
    assert best[("plaintext", "attr_bacc_mean")]["attack"] == "mlp"  # higher is better
    assert best[("plaintext", "recon_cosine_distance")]["attack"] == "gan"  # lower is better
    assert ("plaintext", "attr_bacc") not in best  # per-attribute rows have their own table


def test_jsonable_unwraps_numpy_and_nulls_non_finite_numbers():
    out = jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": [float("nan"), np.inf], "d": (np.int64(7),)})
    assert out == {"a": 0.5, "b": [0, 1, 2], "c": [None, None], "d": [7]}
    json.dumps(out, allow_nan=False)


def test_page_shows_matrix_per_attribute_table_and_embedded_figures(tmp_path):
    results = _results()
    index_html, results_json = write_report(results, build_figures(results, {}), tmp_path)
    page = index_html.read_text()
    assert 'id="leakage-matrix"' in page and 'id="leakage-attributes"' in page and 'id="reid"' in page
    assert "0.810" in page and "0.200" in page and "0.770" not in page.split('id="leakage-attributes"')[0]
    assert page.count("data:image/png;base64,") >= 3  # training curves, throughput bars, stage times
    assert "http://" not in page and "https://" not in page  # self-contained
    loaded = json.loads(results_json.read_text())
    assert loaded["leakage"] == ROWS and loaded["reid"]["plaintext"]["mAP"] == 0.5
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_failed_stages_are_named_on_the_page_and_in_the_summary(tmp_path):
    results = _results(leakage=None, failures={"leakage": "ModuleNotFoundError: No module named 'x'"})
    page = render_html(results, build_figures(results, {}))
    assert "did not complete" in page and "No module named" in page
    assert 'id="leakage-matrix"' not in page
    assert "FAILED leakage" in summary_table(results)


def test_results_json_refuses_nothing_it_cannot_represent(tmp_path):
    results = _results(timings={"victim": math.inf, "total": 1.0})
    _, results_json = write_report(results, {}, tmp_path)
    assert json.loads(results_json.read_text())["timings"]["victim"] is None


def test_summary_lists_best_attack_per_cipher():
    text = summary_table(_results())
    plaintext_line = next(line for line in text.splitlines() if line.strip().startswith("plaintext") and "/" in line)
    assert "0.810 / 0.400" in plaintext_line and "0.200 / 0.900" in plaintext_line


@pytest.mark.parametrize("history", [None, []])
def test_no_training_curve_without_history(history):
    figures = build_figures(_results(training_history=history), {})
    assert "training" not in figures


def test_cached_stage_shows_the_time_and_load_of_the_run_that_computed_it():
    computed = {"seconds": 321.5, "load": {"load_1min": 3.5, "cpu_count": 2}, "finished_utc": "2026-01-01 00:05:00"}
    stages = {
        "victim": {"seconds": 1.5, "load": {"load_1min": 0.5, "cpu_count": 2}, "cached": False},
        "leakage": {"seconds": 0.2, "load": {"load_1min": 0.4, "cpu_count": 2}, "cached": True, "computed": computed},
    }
    results = _results(stages=stages, timings={"victim": 1.5, "leakage": 0.2, "total": 4.0})
    page = render_html(results, {})
    timings = page.split('<table id="timings">')[1].split("</table>")[0]
    leakage = timings.split('<td class="name">leakage</td>')[1].split("</tr>")[0]
    assert "<td>0.2</td><td>321.5</td>" in leakage and "reused from the cache (computed 2026-01-01 00:05:00)" in leakage
    assert 'class="name busy"' in leakage and "load 3.5 on 2 CPUs" in leakage  # 3.5 > 2 cores: flagged
    victim = timings.split('<td class="name">victim</td>')[1].split("</tr>")[0]
    assert "this run" in victim and "busy" not in victim
    assert "1 stages reused from the cache, which took 322 s to compute" in page
    summary = summary_table(results)
    line = next(line for line in summary.splitlines() if line.startswith("  leakage "))
    assert "reused from the cache (computed in 321.5 s)" in line and "busy: load 3.5 > 2 CPUs" in line


def test_training_section_names_the_failed_victim_stage():
    results = _results(training_history=None, failures={"train_victim": "RuntimeError: diverged"})
    page = render_html(results, build_figures(results, {}))
    training = page.split('<section id="training">')[1].split("</section>")[0]
    assert "did not complete: train_victim: RuntimeError: diverged" in training


def test_matrix_lists_features_in_catalogue_order():
    from shufflebits.ciphers.catalogue import cipher_names

    rows = [{**ROWS[0], "cipher": name} for name in reversed(cipher_names())] + [ROWS[0]]
    page = render_html(_results(leakage=rows), {})
    matrix = page.split('<table id="leakage-matrix">')[1].split("</table>")[0]
    names = re.findall(r'<td class="name">([^<]+)</td>', matrix)
    assert names == ["plaintext", *cipher_names()]


CANDIDATES = {
    "cipher": "shufflebits",
    "attack": "invariants",
    "metric": "attr_bacc_mean",
    "value": 0.465,
    "chance": 0.416,
    "chance_ci": [0.406, 0.425],
    "p_value": 0.005,
    "n": 800,
    "validation": 0.61,
    "candidates": {
        "same-key-bits": {"value": 0.45, "validation": 0.55},
        "invariants": {"value": 0.465, "validation": 0.61},
        "key-recovery+attr-mlp": {"value": 0.49, "validation": 0.60},
    },
}
KEY_ROW = {
    "cipher": "shufflebits",
    "attack": "key-recovery",
    "metric": "key_bits_recovered",
    "value": 24.0,
    "chance": 1.0,
    "n": 819200,
    "of": 32,
}


def test_every_candidate_is_a_row_and_a_beaten_choice_says_so():
    page = render_html(_results(leakage=[*ROWS, CANDIDATES, KEY_ROW]), {})
    full = page.split('<table id="leakage-all">')[1].split("</table>")[0]
    lines = full.split("<tr>")[2:]  # after the header row
    assert len(lines) == len(ROWS) + 3 + 1  # each candidate is its own line
    by_attack = {attack: next(line for line in lines if f">{attack}<" in line) for attack in CANDIDATES["candidates"]}
    assert "0.490" in by_attack["key-recovery+attr-mlp"] and "higher on the users" in by_attack["key-recovery+attr-mlp"]
    assert "yes: chosen on the attacker" in by_attack["invariants"]
    assert "no: invariants scored higher on validation" in by_attack["same-key-bits"]
    matrix = page.split('<table id="leakage-matrix">')[1].split("</table>")[0]
    assert "beaten on the users' data by key-recovery+attr-mlp (0.490)" in html.unescape(matrix)
    assert (
        "24.0 of 32" in matrix and "819,200 ciphertext words" in matrix and "bit positions placed correctly" in matrix
    )
    summary = summary_table(_results(leakage=[*ROWS, CANDIDATES, KEY_ROW]))
    assert "key-recovery+attr-mlp reaches 0.490 on the users' data" in summary and "24.0 of 32" in summary


@pytest.mark.parametrize(
    "value, text",
    [
        (0.0025, "0.0025"),
        (0.00049, "0.00049"),
        (0.013, "0.013"),
        (0.4159, "0.416"),
        (0.0, "0.000"),
        (819200, "819,200"),
    ],
)
def test_figure_keeps_small_chance_levels_apart_from_zero(value, text):
    assert figure(value) == text


def test_chance_of_random_ranking_is_printed_with_its_digits():
    row = {
        "cipher": "chacha20",
        "attack": "invariants",
        "metric": "reid_rank1",
        "value": 0.0,
        "chance": 1 / 400,
        "n": 400,
    }
    assert "chance 0.0025" in render_html(_results(leakage=[*ROWS, row]), {})
    assert "0.000 / 0.0025" in summary_table(_results(leakage=[*ROWS, row]))


def test_weak_victim_verdict_is_the_first_line_with_figure_and_fix():
    reid = {"plaintext": {"mAP": 0.04, "mINP": 0.04, "rank1": 0.013}, "decrypted": {}, "n_query": 400, "n_gallery": 400}
    results = _results(profile="quick", reid=reid)
    results["verdict"] = verdict(results)
    assert not results["verdict"]["ok"]
    page = render_html(results, {})
    body = page.split("<body>")[1]
    assert body.startswith('<p id="verdict" class="verdict weak">This run cannot compare ciphers')
    first = summary_table(results).splitlines()[0]
    for text in ("re-ID rank-1 on the users' images is 0.013", "(needs at least 0.050)", "--profile default"):
        assert text in first and text in html.unescape(body.split("</p>")[0])


def test_strong_victim_passes_both_checks():
    plaintext = {**ROWS[0], "chance_ci": [0.39, 0.42]}  # 0.81 clears 0.42 by far
    results = _results(leakage=[plaintext, *ROWS[1:]], reid={**_results()["reid"], "plaintext": {"rank1": 0.3}})
    judged = verdict(results)
    assert judged["ok"] and [check["passed"] for check in judged["checks"]] == [True, True]
    barely = {**ROWS[0], "value": 0.44, "chance_ci": [0.39, MIN_PLAINTEXT_ADVANTAGE + 0.42]}
    weak = verdict(_results(leakage=[barely], reid={**_results()["reid"], "plaintext": {"rank1": 0.3}}))
    assert not weak["ok"] and "attribute inference" in weak["headline"]


def test_map_equal_to_minp_is_explained_when_each_query_has_one_match():
    reid = {**_results()["reid"], "plaintext": {"mAP": 0.14, "mINP": 0.14, "rank1": 0.06}, "matches_per_query": [1, 1]}
    assert "exactly one correct match in the gallery" in render_html(_results(reid=reid), {})
    several = {**reid, "matches_per_query": [2, 5]}
    page = render_html(_results(reid=several), {})
    assert "exactly one correct match" not in page and "2–5 correct matches" in page
    assert "mAP = mINP: each query has one correct gallery match" in summary_table(_results(reid=reid))
    assert "mAP = mINP" not in summary_table(_results(reid=several))


def test_throughput_headers_are_words_and_each_row_prints_once():
    rows = [
        {
            "name": "ShuffleBits fixed",
            "kernel": "numba",
            "mfloat_per_s": 900.0,
            "ratio_vs_aes_gcm": 0.5,
            "ratio_vs_aes_gcm_allocating": 0.75,
            "ratio_vs_reference": 1800.0,
            "size_mib": 64.0,
            "threads": 2,
            "load_average": 2.6,
            "cpu_count": 2,
        }
    ]
    figures = build_figures(_results(throughput=rows), {})
    table = figures["throughput"].split('<table id="throughput">')[1]
    assert "million float32 per second" in table and "mfloat_per_s" not in table and "ratio_vs" not in table
    assert "load 2.6 on 2 CPUs (load above the CPU count" in table
    text = summary_table(_results(throughput=rows))
    assert text.count("ShuffleBits fixed [numba]") == 1 and "mfloat" not in text


def _key_row(attack, value, validation, pairs=None):
    row = {"cipher": "shufflebits", "attack": attack, "metric": "key_bits_recovered", "value": value, "chance": 1.0}
    row.update(n=100, of=32, validation=validation, words_exact=validation, bits_equivalent=value + 1)
    return row if pairs is None else {**row, "pairs": pairs}


PAIR_ROWS = [
    _key_row("key-recovery", 26.0, 0.4),
    _key_row("known-pairs", 31.0, 0.98, pairs=1),
    _key_row("known-pairs", 30.0, 1.0, pairs=64),  # lower on the users' key, better on the attacker's own pairs
    {"cipher": "shufflebits", "attack": "known-pairs+attr-mlp", "metric": "attr_bacc_mean", "pairs": 1}
    | {"value": 0.6, "chance": 0.4, "n": 50, "validation": 0.55},
    {"cipher": "shufflebits", "attack": "known-pairs+attr-mlp", "metric": "attr_bacc_mean", "pairs": 64}
    | {"value": 0.7, "chance": 0.4, "n": 50, "validation": 0.65, "single_class": ["backpack"]},
]


def test_cells_are_chosen_on_the_attackers_validation_split_and_say_how():
    best = best_rows([*ROWS, *PAIR_ROWS])
    key = best[("shufflebits", "key_bits_recovered")]
    assert key["pairs"] == 64 and key["value"] == 30.0 and key["selected_by"] == RULE_VALIDATION
    assert best[("shufflebits", "attr_bacc_mean")]["pairs"] == 64
    assert best[("aes-gcm", "attr_bacc_mean")]["selected_by"] == RULE_ONLY
    assert best[("plaintext", "attr_bacc_mean")]["selected_by"] == RULE_USERS  # no validation recorded: flagged
    text = summary_table(_results(leakage=[*ROWS, *PAIR_ROWS]))
    assert "30.0 of 32 (64p)" in text and RULE_VALIDATION in text
    assert "left out of the attribute means (one class among the users): backpack (shufflebits)" in text


def test_known_pairs_curve_is_drawn_and_tabled():
    figures = build_figures(_results(leakage=[*ROWS, *PAIR_ROWS]), {})
    pairs = figures["known_pairs"]
    assert pairs.count("data:image/png;base64,") == 1 and 'id="known-pairs-table"' in pairs
    table = pairs.split('<table id="known-pairs-table">')[1].split("</table>")[0]
    assert table.count("<tr>") == 3 and "31.0" in table and "0.700" in table  # header + one line per pair count
    page = render_html(_results(leakage=[*ROWS, *PAIR_ROWS]), figures)
    assert 'id="known-pairs"' in page and "64 known pairs" in page
    assert "known_pairs" not in build_figures(_results(), {})


def _curve_row(cipher, attack, metric, curve, chance):
    """A known-pair or ciphertext-only row as leakage.json holds it: ``curve`` is ``[count, cosine]`` points."""
    row = {"cipher": cipher, "attack": attack, "metric": metric, "value": curve[-1][1], "chance": chance, "n": 50}
    return {**row, "curve": curve}


CURVE_ROWS = [
    _curve_row("rotation", "invert-procrustes", "known_pair_cosine", [[8, 0.412], [64, 0.937], [512, 0.9999]], 0.61),
    _curve_row("biohash", "invert-biohash", "known_pair_cosine", [[8, 0.583], [512, 0.824]], 0.61),
    _curve_row("dcpe-shuffle", "align-moments", "ciphertext_only_cosine", [[100, 0.702], [1000, 0.918]], 0.605),
]


def test_inversion_curves_draw_and_table_every_point_of_every_cipher():
    results = _results(leakage=[*ROWS, *CURVE_ROWS])
    curves = build_figures(results, {})["inversion_curves"]
    assert curves.count("data:image/png;base64,") == 1
    table = curves.split('<table id="inversion-curves-table">')[1].split("</table>")[0]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", line) for line in table.split("<tr>")[2:]]  # past the header
    word = {"known_pair_cosine": "pairs", "ciphertext_only_cosine": "ciphertexts"}
    expected = [
        [row["cipher"], row["attack"], f"{figure(n)} {word[row['metric']]}", figure(cosine), figure(row["chance"])]
        for row in CURVE_ROWS
        for n, cosine in row["curve"]
    ]
    assert sorted(cells) == sorted(expected) and len(cells) == 7
    assert "1,000 ciphertexts" in table and "0.605" in table  # the ciphertext-only panel, its own chance level
    page = render_html(results, build_figures(results, {}))
    assert 'id="inversion-curves"' in page and "from ciphertexts alone" in page
    assert "inversion_curves" not in build_figures(_results(), {})  # no curve rows, no figure
    assert 'id="inversion-curves"' not in render_html(_results(), build_figures(_results(), {}))
    alone = build_figures(_results(leakage=[*ROWS, CURVE_ROWS[-1]]), {})["inversion_curves"]
    assert "ciphertexts" in alone and " pairs</td>" not in alone  # one panel when one kind of curve ran


def test_a_distance_cell_is_beaten_only_by_a_lower_distance():
    from shufflebits.study.report.select import beaten_by

    row = {
        "cipher": "plaintext",
        "attack": "nn-lookup",
        "metric": "recon_cosine_distance",
        "value": 0.2,
        "candidates": {"nn-lookup": {"value": 0.2}, "recon-gan": {"value": 0.3}, "recon-autoencoder": {"value": 0.1}},
    }
    assert beaten_by(row) == ("recon-autoencoder", 0.1)
    row["candidates"].pop("recon-autoencoder")
    assert beaten_by(row) is None


def test_the_reconstruction_figures_get_their_own_table_and_summary_lines():
    def recon(metric, value, chance, **extra):
        return {"cipher": "plaintext", "attack": "nn-lookup", "metric": metric, "value": value, "chance": chance,
                "n": 50, **extra}  # fmt: skip

    rows = [
        *ROWS,
        recon("recon_success_rate", 0.35, 0.01, threshold=0.8, fmr=1e-3),
        recon("recon_rank1_transfer", 0.125, 0.02, transfer_model="zoo-b"),
        recon("recon_attr_bacc_mean", 0.61, 0.42),
    ]
    page = render_html(_results(leakage=rows), {})
    matrix = page.split('<table id="leakage-matrix">')[1].split("</table>")[0]
    table = page.split('<table id="leakage-reconstruction">')[1].split("</table>")[0]
    assert "0.350" not in matrix and "0.350" in table and "0.125" in table and "0.610" in table
    assert "the re-ID model zoo-b" in page
    text = summary_table(_results(leakage=rows))
    line = next(line for line in text.splitlines() if "recon accepted (SAR)" in line)
    assert "nn-lookup" in line and "0.350 / 0.010" in line and "recon r1, 2nd model 0.125 / 0.020" in line
    assert "recon attributes 0.610 / 0.420" in line


def _cost_row(cipher, comparison, encrypt_us, bytes_per_vector):
    return {
        "cipher": cipher,
        "comparison": comparison,
        "encrypt_us_per_vector": encrypt_us,
        "encrypt_us_one": 10 * encrypt_us,
        "compare_1to1_us": 1.5,
        "search_1toN_ms": 4.25,
        "bytes_per_vector": bytes_per_vector,
        "gallery": 10_000,
        "batch": 1_000,
        "dim": 512,
        "load_average": 0.5,
        "cpu_count": 2,
    }


COST_ROWS = [
    _cost_row("plaintext", "euclidean on features", 0.0, 2048.0),
    _cost_row("aes-gcm", "decrypt, then euclidean", 0.75, 2076.0),
    _cost_row("dcpe", "euclidean on ciphertexts", 2.5, 2064.0),
    _cost_row("biohash", "hamming on ciphertexts", 7.5, 64.0),
]


def test_cost_table_has_a_row_per_cipher_with_headers_in_words_and_units():
    page = render_html(_results(cost=COST_ROWS), {})
    assert "What protection costs" in page
    table = page.split('<table id="cost-table">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + len(COST_ROWS)  # the header and one row per cipher
    assert (
        "µs per vector, in batches of 1,000" in table
        and "ms over 10,000 templates" in table
        and "per protected 512-d vector" in table
    )
    assert "hamming on ciphertexts" in table and "2,076" in table and "4.25" in table
    assert "encrypt_us" not in table and "search_1toN" not in table and "bytes_per_vector" not in table
    assert "load 0.5 on 2 CPUs" in page
    assert 'id="cost"' not in render_html(_results(), {})  # no cost rows, no section
    text = summary_table(_results(cost=COST_ROWS))
    assert "what protection costs" in text and text.count("hamming on ciphertexts") == 1


def _protection_row(cipher, metric, value, chance=0.0, validation=None):
    row = {"cipher": cipher, "attack": "scheme", "metric": metric, "value": value, "chance": chance, "n": 50}
    return row if validation is None else {**row, "validation": validation}


FRONTIER_ROWS = [
    *ROWS,
    _protection_row("plaintext", "reid_rank1", 0.9, 0.02, validation=0.8),
    _protection_row("plaintext", "unlinkability_dsys", 0.95),
    _protection_row("aes-gcm", "unlinkability_dsys", 0.01),
    _protection_row("dcpe", "reid_rank1_ciphertext", 0.85, 0.02),
    _protection_row("dcpe", "attr_bacc_mean", 0.7, 0.4, validation=0.65),
    _protection_row("dcpe", "attr_bacc_mean", 0.75, 0.4, validation=0.6),  # better on users, worse on validation
    _protection_row("dcpe", "unlinkability_dsys", 0.9),
    _protection_row("biohash", "reid_rank1_ciphertext", 0.6, 0.02),
    _protection_row("biohash", "attr_bacc_mean", 0.5, 0.4, validation=0.45),
    _protection_row("biohash", "unlinkability_dsys", 0.05),
]


def _sweep_point(cipher, rank1, dsys, attributes=True, **params):
    point = {"cipher": cipher, **params, "reid_rank1_ciphertext": rank1, "unlinkability_dsys": dsys}
    point.update(encrypt_us_per_vector=3.0, bytes_per_vector=2064.0)
    return {**point, "attr_bacc_mean": 0.6, "attr_chance_mean": 0.4} if attributes else point


SWEEP = {
    "points": [
        _sweep_point("dcpe", 0.875, 0.9, beta=0.25, beta_relative=0.125),
        _sweep_point("dcpe", 0.125, 0.2, beta=16.0, beta_relative=8.0),
        _sweep_point("biohash", 0.3, 0.04, bits=8),
        _sweep_point("biohash", 0.65, 0.06, bits=512),
    ],
    "attribute_probe": True,
    "load_average": 3.0,
    "cpu_count": 2,
}


def test_frontier_figure_and_table_come_from_the_rows_and_the_sweep():
    results = _results(leakage=FRONTIER_ROWS, cost=COST_ROWS, frontier=SWEEP)
    frontier = build_figures(results, {})["frontier"]
    assert frontier.count("data:image/png;base64,") == 1
    table = frontier.split('<table id="frontier-table">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 4 + len(SWEEP["points"])  # header, plaintext + 3 ciphers, the sweep
    aes = next(line for line in table.split("<tr>") if "aes-gcm" in line)
    assert "after decryption" in aes and "<td>0.900</td><td>0.410</td>" in aes  # plaintext's rank-1, its own leak
    assert "<td>0.010</td><td>0.75</td><td>2,076</td>" in aes  # D_sys, µs per encryption, bytes
    dcpe = next(line for line in table.split("<tr>") if "dcpe" in line and "as catalogued" in line)
    assert "0.850" in dcpe and "0.700" in dcpe and "0.750" not in dcpe  # the validation-chosen attribute cell
    assert "β = 0.250 (0.125× distance)" in table and "b = 512" in table and "0.875" in table
    assert "cheap probe" in frontier and "Sweep timed under load 3.0 on 2 CPUs (load above the CPU count" in frontier
    page = render_html(results, build_figures(results, {}))
    assert 'id="frontier"' in page and "The frontier" in page


def test_frontier_is_absent_without_its_rows_and_says_when_the_sweep_has_no_probe():
    assert "frontier" not in build_figures(_results(), {})  # no re-ID or linkability rows, no sweep
    assert 'id="frontier"' not in render_html(_results(), build_figures(_results(), {}))
    lean = {"points": [_sweep_point("dcpe", 0.5, 0.5, attributes=False, beta=1.0, beta_relative=0.5)]}
    frontier = build_figures(_results(frontier={**lean, "attribute_probe": False}), {})["frontier"]
    assert frontier.count("data:image/png;base64,") == 1 and "right panel only" in frontier


def test_full_table_names_every_figure_in_words_and_key_recovery_counts_its_words():
    key_pair = {**KEY_ROW, "attack": "known-pairs", "pairs": 1, "n": 512, "value": 30.0, "words_exact": 1.0}
    protection = [
        {
            "cipher": "rotation",
            "attack": "scheme-comparison",
            "metric": metric,
            "value": 0.79,
            "chance": 0.0024,
            "n": 972,
        }
        for metric in ("reid_rank1_ciphertext", "reid_map_ciphertext", "renewability_rank1")
    ] + [
        {
            "cipher": "rotation",
            "attack": "cross-key",
            "metric": "unlinkability_dsys",
            "value": 0.06,
            "chance": 0.0,
            "n": 9,
        },
        {
            "cipher": "rotation",
            "attack": "procrustes",
            "metric": "known_pair_cosine",
            "value": 1.0,
            "chance": 0.5,
            "n": 9,
        },
        {
            "cipher": "rotation",
            "attack": "none",
            "metric": "irreversibility_success",
            "value": 0.8,
            "chance": 0.003,
            "n": 9,
        },
    ]
    page = html.unescape(render_html(_results(leakage=[*ROWS, KEY_ROW, key_pair, *protection]), {}))
    full = page.split('<table id="leakage-all">')[1].split("</table>")[0]
    figures = [re.findall(r"<td[^>]*>(.*?)</td>", line)[2] for line in full.split("<tr>")[2:]]
    raw = {row["metric"] for row in [*ROWS, KEY_ROW, *protection]}
    assert not raw & set(figures), figures  # no figure named by its raw leakage.json key
    assert "re-ID on ciphertexts (rank-1, the scheme's comparison)" in figures
    assert "key recovery, bit positions correct of 32 (user samples: ciphertext words)" in figures
    assert "known-pairs (1 pair)" in full
    matrix = page.split('<table id="leakage-matrix">')[1].split("</table>")[0]
    assert "from 1 known plaintext–ciphertext pair (512 ciphertext words)" in matrix
    assert "1 known pairs" not in matrix and "· 1 known pair" in matrix


def test_read_results_refuses_what_no_study_wrote_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from shufflebits.errors import ShuffleBitsError
    from shufflebits.study.report.page import read_results

    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "other.json").write_text('{"x": 1}')
    (tmp_path / "good.json").write_text('{"leakage": []}')
    for name, said in (("absent.json", "cannot read"), ("broken.json", "not JSON"), ("other.json", "no leakage")):
        with pytest.raises(ShuffleBitsError, match=said) as error:
            read_results(tmp_path / name, "leakage")
        assert "\n" not in str(error.value)
    assert read_results(tmp_path / "good.json", "leakage") == {"leakage": []}
    script = Path(__file__).resolve().parents[1] / "scripts" / "protection_table.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "other.json")], capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0 and "no leakage" in done.stderr
