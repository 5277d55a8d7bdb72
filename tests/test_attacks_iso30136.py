"""ISO/IEC 30136 metrics: D_sys against its definition, and the cross-key protocol on ciphers that link or not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from shufflebits.attacks.iso30136 import cross_key, dsys, inversion_success
from shufflebits.attacks.types import LabelledFeatures
from shufflebits.ciphers.hazmat import experiment_cipher


def test_dsys_is_zero_for_identical_and_one_for_separated_scores():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=5000)
    assert dsys(scores, scores) == 0.0
    assert dsys(rng.normal(size=20000), rng.normal(size=20000)) < 0.03  # same distribution, other samples
    assert dsys(rng.normal(10, 1, 500), rng.normal(0, 1, 500)) == 1.0
    assert dsys(np.ones(3), np.ones(5)) == 0.0


@pytest.mark.parametrize("shift", [0.5, 1.5, 3.0])
def test_dsys_matches_the_integral_for_two_gaussians(shift):
    """mated N(shift, 1), non-mated N(0, 1): D_sys = integral of max(0, (LR - 1) / (LR + 1)) p_mated."""
    mated, non_mated = stats.norm(shift, 1), stats.norm(0, 1)

    def local(s):
        ratio = mated.pdf(s) / non_mated.pdf(s)
        return max(0.0, (ratio - 1) / (ratio + 1)) * mated.pdf(s)

    reference = integrate.quad(local, -10, 15, limit=200)[0]
    rng = np.random.default_rng(1)
    estimate = dsys(rng.normal(shift, 1, 200_000), rng.normal(0, 1, 200_000))
    assert estimate == pytest.approx(reference, abs=0.02)


def _people(ids=30, per=4, d=32, seed=3):
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.standard_normal((ids, d)), 0) * 3
    x = np.maximum(np.repeat(centres, per, axis=0) + 0.5 * rng.standard_normal((ids * per, d)), 0).astype(np.float32)
    pids, camids = np.repeat(np.arange(ids), per), np.tile(np.arange(per), ids)

    def part(mask):
        return LabelledFeatures(
            features=x[mask],
            labels=np.zeros((mask.sum(), 1), np.int64),
            attribute_names=("a",),
            num_classes={"a": 2},
            pids=pids[mask],
            camids=camids[mask],
        )

    return part(camids == 0), part(camids != 0)


def test_cross_key_links_plaintext_and_unshuffled_dcpe_but_not_chacha_or_biohash():
    query, gallery = _people()
    plain = cross_key(query.features, gallery.features, query, gallery)
    assert plain["dsys"] > 0.8 and plain["rank1"] > 0.9
    results = {}
    for name in ("dcpe", "chacha20", "biohash"):
        a, b = experiment_cipher(name, 0), experiment_cipher(name, 1)
        assert a.key.fingerprint != b.key.fingerprint
        results[name] = cross_key(a.encrypt(query.features), b.encrypt(gallery.features), query, gallery)
    assert results["dcpe"]["dsys"] > 0.8 and results["dcpe"]["view"] in ("scheme", "sorted-values")  # s = 1: c ~ m
    for name in ("chacha20", "biohash"):
        assert results[name]["dsys"] < 0.3, (name, results[name])
        assert results[name]["rank1"] < 0.25  # chance is 1/30
    assert set(results["biohash"]["views"]) == {"invariants", "scheme"}


def test_inversion_success_is_the_plaintext_acceptance_rate_at_the_fmr():
    query, gallery = _people()
    itself = inversion_success(query.features, query, gallery)
    assert itself["success"] > 0.9 and itself["fmr"] == 1e-3
    someone_else = query.features[np.roll(np.arange(len(query)), 1)]  # another person's real template
    assert inversion_success(someone_else, query, gallery)["success"] < 0.1


def test_rank1_chance_levels_are_random_rankings_mean_not_one_shuffle():
    """Renewability's and ciphertext re-ID's rank-1 chance: the mean of many query shuffles (one is often 0)."""
    from shufflebits.attacks.protection import ciphertext_reid_rows
    from shufflebits.attacks.reconstruction_eval import rank1_chance

    query, gallery = _people(ids=120, per=4)
    expected = rank1_chance(query.features, gallery.features, query, gallery, 0, "euclidean", n_shuffles=200)
    assert expected["chance"] == pytest.approx(1 / 120, abs=0.004)  # 3 matches among 360 gallery rows
    linked = cross_key(query.features, gallery.features, query, gallery, seed=0)
    assert linked["rank1_chance"] == expected["chance"]
    rank1_row, map_row = ciphertext_reid_rows(
        "plaintext", query.features, gallery.features, "euclidean", query, gallery, 0
    )
    assert rank1_row.metric == "reid_rank1_ciphertext" and rank1_row.chance == expected["chance"]
    assert rank1_row.details["chance_ci"] == expected["chance_ci"] and rank1_row.details["p_value"] < 0.01
    assert rank1_row.details["comparison"] == map_row.details["comparison"] == "euclidean"
    assert 0 < map_row.chance < 0.1
