"""The study report on hand-made inputs: matrix selection, JSON hygiene, failures shown, atomic files.

The real page from a real run is checked in tests/test_study.py (also in a browser).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from shufflebits.study.report import best_rows, build_figures, jsonable, render_html, summary_table, write_report

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


def test_cached_stages_are_marked_in_the_timings_table():
    results = _results(cached_stages=["leakage"])
    page = render_html(results, {})
    timings = page.split('<table id="timings">')[1].split("</table>")[0]
    assert "leakage (cached)" in timings and "victim (cached)" not in timings


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
