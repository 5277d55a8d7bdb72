"""CKKS in the catalogue and the leakage matrix: its entry, and its rows against numpy references and chance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("tenseal")

from shufflebits.attacks.homomorphic import COEFFICIENTS, ckks_rows, coefficient_view
from shufflebits.ciphers import Key, create_cipher, generate_key, spec
from shufflebits.ciphers.catalogue import installed
from shufflebits.ciphers.ckks import Ckks, CkksKey
from shufflebits.ciphers.hazmat import experiment_cipher
from shufflebits.cli import main
from shufflebits.errors import ShuffleBitsError
from shufflebits.study.report.figures import score_reveal_html
from test_attacks_helpers import make_world


def test_catalogue_entry_declares_what_ckks_can_and_cannot_do():
    record = spec("ckks")
    assert record.homomorphic and record.matchable and record.match_metric == "euclidean"
    assert not (record.exact or record.format_preserving or record.authenticated) and record.permutation is None
    assert record.requires == "tenseal" and installed("ckks")
    cipher = create_cipher("ckks")
    assert isinstance(cipher, Ckks) and isinstance(cipher.key, CkksKey)
    assert create_cipher("ckks", cipher.key).key is cipher.key
    for refused in (
        lambda: create_cipher("ckks", generate_key("aes-gcm")),
        lambda: Key("ckks", bytes(32)),
        lambda: generate_key("ckks"),
        lambda: experiment_cipher("ckks", 0),
    ):
        with pytest.raises(ShuffleBitsError) as error:
            refused()
        assert "\n" not in str(error.value) and ("CkksKey" in str(error.value) or "ckks-keygen" in str(error.value))


def test_keygen_by_name_points_at_the_ckks_command(tmp_path, capsys):
    assert main(["keygen", "--cipher", "ckks", "--out", str(tmp_path / "k.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "ckks-keygen" in err and len(err.splitlines()) == 1 and not (tmp_path / "k.json").exists()


def test_coefficient_view_is_fresh_noise_per_encryption():
    key = create_cipher("ckks").key
    template = np.random.default_rng(0).standard_normal((1, 16))
    twice = coefficient_view(key, np.concatenate([template, template]))
    assert twice.shape == (2, 2 * COEFFICIENTS) and (0 <= twice).all() and (twice < 1).all()
    assert abs(np.corrcoef(twice)[0, 1]) < 0.2  # the same template, encrypted twice: uncorrelated words


@pytest.fixture(scope="module")
def rows():
    attacker, query, gallery, _ = make_world(identities=60, per_id=4, d=24, size=(16, 8))
    found, views = ckks_rows("ckks", attacker, query, gallery, seed=0)
    return {row.metric: row for row in found}, views, query, gallery


def numpy_rank1(query, gallery) -> float:
    """Nearest gallery row by euclidean distance, same person on the same camera left out (Market protocol)."""
    q, g = query.features.astype(np.float64), gallery.features.astype(np.float64)
    distances = ((q[:, None] - g[None]) ** 2).sum(-1)
    junk = (query.pids[:, None] == gallery.pids[None]) & (query.camids[:, None] == gallery.camids[None])
    nearest = np.where(junk, np.inf, distances).argmin(1)
    return float(np.mean(gallery.pids[nearest] == query.pids))


def test_rank1_through_the_key_holder_equals_numpy_ranking(rows):
    by_metric, _, query, gallery = rows
    reid = by_metric["reid_rank1_ciphertext"]
    assert reid.details["n_query"] == len(query)  # the toy world has fewer queries than the subsample
    assert abs(reid.value - numpy_rank1(query, gallery)) <= 1 / len(query) + 1e-12
    assert reid.value > 5 * max(reid.chance, 1 / len(query)) and reid.details["score_error_max"] < 1e-3
    assert by_metric["reid_map_ciphertext"].value == pytest.approx(
        by_metric["reid_map_ciphertext"].details["plaintext_map"], abs=0.01
    )


def test_wrong_key_rank1_sits_at_chance_and_the_renewed_key_still_matches(rows):
    by_metric, _, query, gallery = rows
    renew, reid = by_metric["renewability_rank1"], by_metric["reid_rank1_ciphertext"]
    one_in = len(np.unique(gallery.pids))  # a uniform guess finds the person once in this many
    assert renew.value <= 3 / one_in + 0.05 and renew.value < reid.value / 4
    assert abs(renew.details["renewed_key_rank1"] - numpy_rank1(query, gallery)) <= 1 / len(query) + 1e-12


def test_ciphertext_only_comparison_links_nothing(rows):
    by_metric, _, _, _ = rows
    link = by_metric["unlinkability_dsys"]
    bound = 0.2  # fresh keys: D_sys of two unrelated score sets over 120 mated pairs spreads to about 0.1
    assert link.chance == 0.0 and link.value < bound and link.details["wrong_key_scores_dsys"] < bound
    linking = by_metric["reid_rank1"]  # the same view, query and gallery under one key
    assert linking.value <= linking.details["chance_ci"][1] + 2 / linking.n  # fresh keys: two queries of slack


def test_score_reveal_curve_recovers_from_scores_not_from_top_k(rows):
    by_metric, views, query, _ = rows
    revealed, top_k = by_metric["score_reveal_cosine"], by_metric["score_reveal_topk_cosine"]
    counts = [n for n, _ in revealed.details["curve"]]
    assert counts == sorted(counts) and counts[-1] == revealed.details["enrolled"] >= query.features.shape[1]
    assert revealed.value > 0.99  # at least d scores: the query is determined
    assert revealed.details["success_curve"][-1][1] == 1.0
    assert top_k.value < revealed.value - 0.02 and top_k.chance == revealed.chance < revealed.value
    assert views.users_view.shape == (len(views.users), 2 * COEFFICIENTS)
    html = score_reveal_html([row.as_dict() for row in by_metric.values()])
    assert 'id="score-reveal-table"' in html and "top-5 ids only" in html
    assert score_reveal_html([by_metric["reid_rank1_ciphertext"].as_dict()]) is None


def test_irreversibility_judges_the_score_reveal_inversions_like_every_cipher(rows):
    from shufflebits.attacks.iso30136 import inversion_success

    by_metric, _, query, gallery = rows
    row = by_metric["irreversibility_success"]
    genuine = inversion_success(query.features, query, gallery)["success"]  # the true query as the "inversion"
    assert row.details["fmr"] == 1e-3 and row.details["enrolled"] >= query.features.shape[1]
    assert row.details["reveal_scores_mode"] >= genuine - 2 / len(query.features)  # d scores: recovered
    assert row.value < row.details["reveal_scores_mode"] and row.chance < genuine


def test_rows_repeat_bit_for_bit_with_the_seed(rows):
    by_metric, _, _, _ = rows
    attacker, query, gallery, _ = make_world(identities=60, per_id=4, d=24, size=(16, 8))
    again, _ = ckks_rows("ckks", attacker, query, gallery, seed=0)
    assert {row.metric: row.as_dict() for row in again} == {m: row.as_dict() for m, row in by_metric.items()}


def test_the_readme_script_prints_every_ckks_row(rows, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    by_metric, _, _, _ = rows
    attributes = {"cipher": "ckks", "metric": "attr_bacc_mean", "value": 0.5, "chance": 0.5, "n": 9}
    results = {
        "leakage": [row.as_dict() for row in by_metric.values()]
        + [{**attributes, "chance_ci": [0.4, 0.6], "p_value": 0.5}],
        "leakage_seconds": {"ckks": {"matching": 1.5, "attributes": 0.5}},
        "stages": {
            "leakage": {"seconds": 0.1, "computed": {"seconds": 9.0, "load": {"load_1min": 1.0, "cpu_count": 2}}}
        },
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    script = Path(__file__).resolve().parents[1] / "scripts" / "ckks_rows.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True).stdout
    reid = by_metric["reid_rank1_ciphertext"]
    assert f"rank-1 ckks {reid.value:.3f}" in out and "seconds in the leakage stage: 2.000 of 9.000" in out
    assert len(out.splitlines()) == 12 + len(by_metric["score_reveal_cosine"].details["curve"])
    assert "irreversibility (ISO/IEC 30136, FMR 0.001" in out


def test_reconstruction_on_a_query_subsample_keeps_every_model_on_the_same_rows():
    """More queries than the CKKS rows sample: the victim's and the second model's figures use the same rows."""
    from shufflebits.attacks import TransferModel
    from shufflebits.attacks.leakage import leakage_matrix
    from shufflebits.attacks.types import CkksSample
    from shufflebits.study.profiles import PROFILES
    from test_attacks_helpers import ToyEmbed

    attacker, query, gallery, embed = make_world(identities=60, per_id=4, d=24, size=(16, 8))
    other = ToyEmbed(16, (16, 8), seed=5)
    transfer = TransferModel("toy-5", other, other(query.images), other(gallery.images))
    result = leakage_matrix(
        attacker,
        query,
        gallery,
        embed,
        profile=replace(PROFILES["smoke"].attacks, ckks=CkksSample(queries=len(query) // 3)),
        seed=0,
        ciphers=("ckks",),
        transfer=transfer,
    )
    rows = {row.metric: row for row in result.rows if row.cipher == "ckks" and row.metric.startswith("recon_")}
    assert {"recon_rank1", "recon_rank1_transfer", "recon_success_rate_transfer"} <= set(rows)
    assert {row.n for row in rows.values()} == {len(query) // 3}
    assert rows["recon_rank1_transfer"].value <= rows["recon_rank1_transfer"].chance + 3 / (len(query) // 3)
