"""The leakage matrix end to end on a toy victim, its files, and the CLI's parser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shufflebits.attacks import AttributeInference, Reconstructor
from shufflebits.attacks.leakage import leakage_matrix
from shufflebits.attacks.leakage_files import leakage_markdown, read_leakage, write_leakage
from shufflebits.ciphers.catalogue import cipher_names, installed
from shufflebits.errors import ShuffleBitsError
from shufflebits.study.profiles import PROFILES
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)

CIPHERS = cipher_names(homomorphic=False)  # per-vector ciphers; ckks: test_ckks_rows_and_their_chance_levels
SMOKE = PROFILES["smoke"].attacks
RECON = {"recon_cosine_distance", "recon_rank1", "recon_success_rate", "recon_attr_bacc_mean"}
METRICS = {"attr_bacc_mean", "attr_bacc", "key_bits_recovered", "reid_rank1", *RECON}
PROTECTION = {"reid_rank1_ciphertext", "reid_map_ciphertext", "known_pair_cosine", "ciphertext_only_cosine"}
ISO = {"unlinkability_dsys", "renewability_rank1", "irreversibility_success"}
SCORE_REVEAL = {"score_reveal_cosine", "score_reveal_topk_cosine"}
LEARNED_AND_LOOKUP = ("nn-lookup", "recon-autoencoder")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("leakage")
    attacker, query, gallery, embed = make_world(identities=60, per_id=4, d=24, size=(16, 8))
    result = leakage_matrix(attacker, query, gallery, embed, profile=SMOKE, seed=0, progress=False)
    return result, out


def _one(rows, cipher, metric):
    rows = [r.as_dict() for r in rows.rows] if hasattr(rows, "rows") else rows
    found = [r for r in rows if r["cipher"] == cipher and r["metric"] == metric and "pairs" not in r]
    assert len(found) == 1, (cipher, metric, found)
    return found[0]


def test_rows_follow_the_schema(matrix):
    result, _ = matrix
    rows = [row.as_dict() for row in result.rows]
    for row in rows:
        assert {"cipher", "attack", "metric", "value", "chance", "n"} <= set(row)
        assert row["metric"] in METRICS | PROTECTION | ISO | SCORE_REVEAL and row["cipher"] in (
            "image",
            "plaintext",
            *cipher_names(),
        )  # image: pixel probe
        assert isinstance(row["value"], float) and isinstance(row["n"], int) and row["n"] > 0
        assert ("attribute" in row) == (row["metric"] == "attr_bacc")
    for cipher in ("plaintext", *CIPHERS):
        best = _one(rows, cipher, "attr_bacc_mean")
        assert best["attack"] in best["candidates"] and best["selected_by"] == "validation"
        assert best["validation"] == max(c["validation"] for c in best["candidates"].values())
        assert best["single_class"] == []  # every toy attribute has several classes among the users
        lo, hi = best["chance_ci"]
        assert lo <= hi
        shuffles_at_least = best["p_value"] * (SMOKE.permutations + 1)  # p = (1 + #null >= value) / (1 + shuffles)
        assert shuffles_at_least == pytest.approx(round(shuffles_at_least)) and shuffles_at_least >= 1
        assert len([r for r in rows if r["cipher"] == cipher and r["metric"] == "attr_bacc"]) == 5
        for metric in ("reid_rank1", *RECON):
            _one(rows, cipher, metric)
    key_ciphers = {row["cipher"] for row in rows if row["metric"] == "key_bits_recovered"}
    assert key_ciphers == {*cipher_names(permutation="fixed"), *cipher_names(permutation="per-dimension")}
    for cipher in key_ciphers:
        key = _one(rows, cipher, "key_bits_recovered")
        assert 0 <= key["validation"] <= 1  # the attacker's own words decrypted bit-exactly by the recovered key
        assert 0 <= key["words_exact"] <= 1
        assert key["chance"] == 1.0 and key["value"] > 2 * key["chance"]  # measured 19 (fixed) and 9.3 (per dimension)


def test_every_reconstruction_cell_holds_the_lookup_and_is_chosen_on_validation(matrix):
    result, _ = matrix
    rows = [row.as_dict() for row in result.rows]
    for cipher in ("plaintext", *CIPHERS, *(("ckks",) if installed("ckks") else ())):
        cells = [_one(rows, cipher, metric) for metric in sorted(RECON)]
        assert len({cell["attack"] for cell in cells}) == 1  # one reconstruction behind every figure of a cipher
        candidates = cells[0]["candidates"]
        assert sum(attack.endswith("nn-lookup") for attack in candidates) == 1
        chosen = cells[0]["attack"]
        assert cells[0]["validation"] == min(c["validation"] for c in candidates.values())
        assert candidates[chosen]["validation"] == cells[0]["validation"]
        for cell in cells:
            assert cell["candidates"][chosen]["value"] == cell["value"] and "attacker's validation" in cell["rule"]
            assert {(cipher, attack) for attack in cell["candidates"]} <= set(result.grids)
    success = _one(rows, "plaintext", "recon_success_rate")
    assert success["fmr"] == 1e-3 and success["impostor_pairs"] > 0 and -1 <= success["threshold"] <= 1
    image = _one(rows, "image", "attr_bacc_mean")  # the raw-pixel probe, the baseline of attribute inference
    assert image["attack"] == "pixel-probe"
    assert _one(rows, "plaintext", "recon_attr_bacc_mean")["original_images"] == pytest.approx(image["value"])


def test_plaintext_leaks_and_the_stream_ciphers_do_not(matrix):
    rows, _ = matrix
    plain = _one(rows, "plaintext", "attr_bacc_mean")
    assert plain["value"] > plain["chance_ci"][1] and plain["p_value"] < 0.05
    for cipher in ("chacha20", "aes-gcm"):
        row = _one(rows, cipher, "attr_bacc_mean")
        lo, hi = row["chance_ci"]
        assert lo <= row["value"] <= hi and row["p_value"] > 0.05  # indistinguishable from shuffled labels
        linking = _one(rows, cipher, "reid_rank1")
        lo, hi = linking["chance_ci"]
        assert lo <= linking["value"] <= hi and linking["p_value"] > 0.05  # rank-1 as of shuffled queries
    linking = _one(rows, "plaintext", "reid_rank1")
    assert linking["value"] > linking["chance_ci"][1] and linking["p_value"] < 0.05
    one_time = _one(rows, "shufflebits-otp", "attr_bacc_mean")  # the same test rejects a leak this size
    assert one_time["value"] > one_time["chance_ci"][1] and one_time["p_value"] < 0.05
    zeros_reid = _one(rows, "shufflebits-otp", "reid_rank1")
    assert zeros_reid["value"] > zeros_reid["chance"]  # the zero pattern survives one-time keys
    assert _one(rows, "shufflebits", "key_bits_recovered")["value"] >= 8


def test_searchable_and_iso_rows(matrix):
    rows, _ = matrix
    rows = [r.as_dict() for r in rows.rows]
    for cipher in ("plaintext", *CIPHERS):
        for metric in ISO:
            _one(rows, cipher, metric)
    matched = {row["cipher"] for row in rows if row["metric"] == "reid_rank1_ciphertext"}
    assert matched == {"plaintext", *filter(installed, cipher_names(matchable=True))}
    plain = _one(rows, "plaintext", "reid_rank1_ciphertext")["value"]
    assert _one(rows, "rotation", "reid_rank1_ciphertext")["value"] == plain  # distances kept exactly
    for cipher in cipher_names(matchable=True, homomorphic=False):
        known = _one(rows, cipher, "known_pair_cosine")
        assert known["curve"][-1] == [known["pairs_used"], known["value"]]
        assert [k for k, _ in known["curve"]] == sorted({k for k, _ in known["curve"]})
    assert _one(rows, "rotation", "known_pair_cosine")["value"] > 0.99  # d = 24 pairs are enough
    assert {row["cipher"] for row in rows if row["metric"] == "ciphertext_only_cosine"} == {
        "dcpe",
        "dcpe-shuffle",
        "rotation",
        "biohash",
    }
    for cipher in ("chacha20", "aes-gcm"):  # fresh pads: nothing links two keys' templates
        assert _one(rows, cipher, "unlinkability_dsys")["value"] < 0.15
        renew = _one(rows, cipher, "renewability_rank1")
        assert renew["value"] <= renew["chance"] + 0.1
    assert _one(rows, "plaintext", "unlinkability_dsys")["value"] > 0.5
    assert _one(rows, "dcpe", "unlinkability_dsys")["value"] > 0.5  # s = 1, no shuffle: c is m plus a little noise


def test_ckks_rows_and_their_chance_levels(matrix):
    if not installed("ckks"):
        pytest.skip("the optional `he` extra (TenSEAL) is not installed")
    result, _ = matrix
    rows = [r.as_dict() for r in result.rows if r.cipher == "ckks"]
    expected = {"reid_rank1_ciphertext", "reid_map_ciphertext", "renewability_rank1", "unlinkability_dsys"}
    linking_rows = {"attr_bacc_mean", "attr_bacc", "reid_rank1", "irreversibility_success"}
    assert {r["metric"] for r in rows} == expected | SCORE_REVEAL | linking_rows | RECON
    assert all(np.isfinite(r["chance"]) and 0 <= r["value"] <= 1 for r in rows)
    reid = _one(rows, "ckks", "reid_rank1_ciphertext")
    assert abs(reid["value"] - reid["plaintext_rank1"]) <= 0.005 and reid["score_error_max"] < 1e-3
    renew = _one(rows, "ckks", "renewability_rank1")
    assert renew["value"] <= renew["chance"] + 0.1 and renew["renewed_key_rank1"] == reid["value"]
    assert _one(rows, "ckks", "unlinkability_dsys")["value"] < 0.2  # fresh keys: test_ckks_matrix.py
    linking = _one(rows, "ckks", "reid_rank1")
    hi = linking["chance_ci"][1]
    assert linking["attack"] == "same-key-coefficients" and linking["value"] <= hi + 2 / linking["n"]  # fresh keys
    attributes = _one(rows, "ckks", "attr_bacc_mean")
    assert attributes["attack"] == "same-key-coefficients" and attributes["value"] < attributes["chance_ci"][1] + 0.05
    revealed, top_k = _one(rows, "ckks", "score_reveal_cosine"), _one(rows, "ckks", "score_reveal_topk_cosine")
    assert revealed["curve"][-1] == [revealed["enrolled"], revealed["value"]] and revealed["value"] > 0.99  # n > d
    assert top_k["value"] < revealed["value"] and revealed["chance"] == top_k["chance"]
    recon = {metric: _one(rows, "ckks", metric) for metric in RECON}  # decoders on the attacker's own coefficients
    assert {cell["attack"] for cell in recon.values()} < {f"same-key-coefficients+{a}" for a in LEARNED_AND_LOOKUP}
    distance, plain = recon["recon_cosine_distance"], _one(result, "plaintext", "recon_cosine_distance")
    assert distance["value"] >= distance["chance"] - 0.05 > plain["value"] and recon["recon_rank1"]["n"] == reid["n"]
    inverted = _one(rows, "ckks", "irreversibility_success")  # all d scores recover a template the system accepts
    assert inverted["value"] <= inverted["reveal_scores_mode"] and inverted["fmr"] == 1e-3
    assert "encrypted matching, renewal, linkage, score reveal" in result.seconds["ckks"]


def test_known_pairs_rows_follow_the_profile(matrix):
    result, _ = matrix
    rows = [row.as_dict() for row in result.rows]
    permuted = (*cipher_names(permutation="fixed"), *cipher_names(permutation="per-dimension"))
    key_rows = {r["cipher"] for r in rows if r["metric"] == "key_bits_recovered" and "pairs" in r}
    assert key_rows == set(permuted)  # no other cipher has a known-pair key attack
    for cipher in permuted:
        key = [r for r in rows if r["cipher"] == cipher and r["metric"] == "key_bits_recovered" and "pairs" in r]
        attr = [r for r in rows if r["cipher"] == cipher and r["attack"] == "known-pairs+attr-mlp" and "pairs" in r]
        assert [r["pairs"] for r in key] == [r["pairs"] for r in attr] == list(SMOKE.known_pairs)
        assert all(r["attack"] == "known-pairs" and r["of"] == 32 for r in key)
        assert all(0 <= r["words_exact"] <= 1 and 0 <= r["validation"] <= 1 for r in key)
        assert key[-1]["bits_determined"] >= key[0]["bits_determined"]
        assert key[-1]["words_exact"] > 0.9  # a handful of the attacker's own pairs decrypt (nearly) every word
        reid = [r for r in rows if r["cipher"] == cipher and r["metric"] == "reid_rank1" and "pairs" in r]
        assert [r["pairs"] for r in reid] == [SMOKE.known_pairs[-1]]
        plain_reid = _one(rows, "plaintext", "reid_rank1")["value"]
        assert reid[0]["value"] == pytest.approx(plain_reid, abs=0.1)
        best = _one(rows, cipher, "attr_bacc_mean")
        assert "known-pairs+attr-mlp" in best["candidates"]


def test_files_are_written(matrix):
    result, out = matrix
    json_path, md_path = write_leakage(result, out)
    rows = [row.as_dict() for row in result.rows]
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(rows))
    again = read_leakage(out)
    assert again.rows == result.rows and set(again.grids) == set(result.grids)
    assert all(np.array_equal(again.grids[key], result.grids[key]) for key in result.grids)
    table = md_path.read_text()
    assert table.startswith("| cipher | attack | metric |") and table.count("\n") == len(rows) + 2
    assert leakage_markdown(rows, per_attribute=False).count("attr_bacc |") == 0
    written = sorted(p.name for p in out.glob("reconstruction_plaintext_*.png"))
    assert written == ["reconstruction_plaintext_nn-lookup.png", "reconstruction_plaintext_recon-autoencoder.png"]
    assert ("plaintext", "recon-autoencoder") in result.grids


def test_bad_arguments_raise():
    attacker, query, gallery, embed = make_world(identities=8, per_id=4, d=8, size=(16, 8))
    with pytest.raises(TypeError):
        leakage_matrix(attacker, query, gallery, embed, profile="huge")
    with pytest.raises(ShuffleBitsError):
        leakage_matrix(attacker, query, gallery, embed, profile=PROFILES["smoke"].attacks, ciphers=("rot13",))


def test_matrix_attacks_are_clones_of_the_registered_ones():
    from shufflebits.attacks.leakage import _Matrix

    attacker, query, gallery, embed = make_world(identities=8, per_id=4, d=8, size=(16, 8))
    profile = PROFILES["quick"].attacks
    matrix = _Matrix(attacker, query, gallery, embed, profile, 3, "cpu", False)
    bits, paper = matrix.attribute_model("mlp", "bits"), matrix.attribute_model("paper", None)
    assert isinstance(bits, AttributeInference) and bits.get_params() == {
        **AttributeInference().get_params(),
        "view": "bits",
        "hidden": profile.bits_hidden,
        "input_dropout": 0.0,  # the bit view's 16,384 inputs per vector: no mask to draw
        "epochs": profile.mlp_epochs,
        "random_state": 3,
    }
    assert paper.config == "paper" and paper.epochs == profile.paper_epochs
    assert paper is not matrix.attribute_model("paper", None)  # a fresh clone each time
    assert matrix.attribute_model("mlp", "invariants").hidden == matrix.attribute_model("mlp", None).hidden
    assert matrix.attribute_model("mlp", None).hidden == profile.hidden
    assert matrix.attribute_model("mlp", None).input_dropout == AttributeInference().input_dropout > 0
    assert all(p.bits_hidden <= p.hidden for p in (q.attacks for q in PROFILES.values()))
    decoder = matrix.reconstructor("autoencoder", view="invariants")
    assert isinstance(decoder, Reconstructor) and decoder.get_params() == {
        **Reconstructor().get_params(),
        "view": "invariants",
        "epochs": profile.recon_epochs,
        "width": profile.recon_width,
        "surrogate_epochs": profile.surrogate_epochs,
        "random_state": 3,
    }


def test_cli_registers_the_attack_command():
    from shufflebits.cli import build_parser, options
    from shufflebits.cli.attack import handler

    argv = ["attack", "--profile", "quick", "--out", "x", "--seed", "3", "--no-progress", "--via-http"]
    args = build_parser().parse_args([*argv, "--dataset", "market1501", "--root", "r", "--attributes", "a.mat"])
    assert args.func is handler and args.seed == 3 and args.no_progress and args.victim is None
    config = options.study_config(args)
    assert config.profile == PROFILES["quick"] and config.seed == 3 and config.via_http and not config.progress
    assert config.data.dataset == "market1501"
    assert config.data.root.endswith("/r") and config.data.attributes.endswith("/a.mat")


def test_cli_handler_wires_victim_matrix_and_files(monkeypatch, tmp_path, capsys):
    """The handler with the study's victim stages and the matrix replaced by stand-ins; a re-run hits the cache."""
    from shufflebits.attacks import LeakageResult, LeakageRow, leakage
    from shufflebits.cli import main
    from shufflebits.study import run
    from shufflebits.study.stages import Stage

    calls = {"matrix": 0}
    attacker, query, gallery, embed = make_world(identities=8, per_id=4, d=8, size=(16, 8))

    def fake_features(context):
        calls["config"] = context.config
        return type(
            "Victim",
            (),
            dict(
                attacker=attacker,
                user_query=query,
                user_gallery=gallery,
                embed=embed,
                victim="toy",
                dataset="toy world",
            ),
        )()

    def fake_matrix(*args, **kwargs):
        calls["matrix"] += 1
        calls["kwargs"] = kwargs
        row = LeakageRow(cipher="plaintext", attack="attr-mlp", metric="attr_bacc_mean", value=0.7, chance=0.4, n=3)
        return LeakageResult(rows=(row,))

    monkeypatch.setattr(run, "victim_stages", lambda config: [Stage("extract_features", run=fake_features)])
    monkeypatch.setattr(run, "transfer_stages", lambda config: [])  # whichever zoo entries are trained
    monkeypatch.setattr(leakage, "leakage_matrix", fake_matrix)
    out = tmp_path / "run"
    argv = ["attack", "--profile", "quick", "--out", str(out), "--seed", "5", "--no-progress"]
    assert main(argv) == 0
    config = calls["config"]
    assert config.profile.name == "quick" and config.seed == 5 and not config.progress
    assert calls["kwargs"]["profile"] == PROFILES["quick"].attacks and calls["kwargs"]["seed"] == 5
    assert json.loads((out / "leakage.json").read_text())[0]["value"] == 0.7
    assert "| plaintext | attr-mlp | attr_bacc_mean |" in capsys.readouterr().out
    assert main(argv) == 0 and calls["matrix"] == 1  # the leakage stage came from the cache
    assert "| plaintext | attr-mlp | attr_bacc_mean |" in capsys.readouterr().out


def test_bit_permutations_share_their_invariants_attack(matrix):
    """Popcount and zero pattern survive any bit permutation: the three ShuffleBits modes give one invariants score."""
    result, _ = matrix
    scores = {
        r.cipher: r.details["candidates"]["invariants"]
        for r in result.rows
        if r.metric == "attr_bacc_mean"
        and r.pairs is None
        and r.cipher in ("shufflebits", "shufflebits-dim", "shufflebits-otp")
    }
    assert len(scores) == 3 and len({json.dumps(s) for s in scores.values()}) == 1


def test_matrix_reports_where_its_time_went(matrix):
    result, _ = matrix
    assert set(result.seconds) == {"image", "plaintext", *filter(installed, cipher_names())}
    assert all(s >= 0 for per in result.seconds.values() for s in per.values())
    assert "known-pairs" in result.seconds["shufflebits"] and "pixel-probe" in result.seconds["image"]


def test_black_box_is_asked_once_per_distinct_image():
    from shufflebits.attacks.leakage import _RememberedEmbed

    calls = []

    def reference(images):
        return images.reshape(len(images), 24)[:, :4] * 2

    def embed(images):
        calls.append(len(images))
        return reference(images)

    images = np.random.default_rng(0).uniform(0, 1, (5, 3, 4, 2)).astype(np.float32)
    remembered = _RememberedEmbed(embed)
    first = remembered(images)
    first[:] = -1  # the caller's copy: the remembered answer stays as the black box gave it
    assert np.array_equal(remembered(images.copy()), reference(images)) and calls == [5]
    assert np.array_equal(remembered(images[[3, 0, 3]]), reference(images[[3, 0, 3]])) and calls == [5]
    fresh = np.random.default_rng(1).uniform(0, 1, (2, 3, 4, 2)).astype(np.float32)
    mixed = np.concatenate([images[:2], fresh, fresh[:1]])  # only the two unseen images go, once each
    assert np.array_equal(remembered(mixed), reference(mixed)) and calls == [5, 2]
    assert remembered(images[:0]).shape == (0, 4)


def test_the_protection_table_script_prints_each_ciphers_rows(matrix, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from shufflebits.study.numbers import figure

    result, _ = matrix
    rows = [row.as_dict() for row in result.rows]
    path = tmp_path / "results.json"
    point = {"cipher": "biohash", "bits": 8, "reid_rank1_ciphertext": 0.25, "unlinkability_dsys": 0.0625}
    point |= {"attr_bacc_mean": 0.5, "encrypt_us_per_vector": 1.5, "bytes_per_vector": 4.0, "attr_probe": "mlp"}
    path.write_text(json.dumps({"leakage": rows, "frontier": {"points": [point]}}))
    script = Path(__file__).resolve().parents[1] / "scripts" / "protection_table.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True).stdout
    printed = out.splitlines()
    footnote = next(i for i, line in enumerate(printed) if line.startswith("("))
    lines = {line.split()[0]: line for line in printed[1:footnote]}
    curves = printed[footnote + 1 : printed.index("frontier sweep (attributes: mlp):")]
    assert printed[-1].split() == ["biohash", "b", "=", "8", "0.250", "0.062", "0.500", "1.500", "4"]
    assert set(lines) == {r["cipher"] for r in rows if r["metric"] == "unlinkability_dsys"}
    for cipher, line in lines.items():
        for metric in ("unlinkability_dsys", "renewability_rank1", "irreversibility_success"):
            row = _one(rows, cipher, metric)
            assert f"{figure(row['value'])} / {figure(row['chance'])}" in line, (cipher, metric)
    rotation = _one(rows, "rotation", "known_pair_cosine")
    assert f"({rotation['pairs_used']}p)" in lines["rotation"] and lines["chacha20"].count(" - ") >= 1
    first, last = rotation["curve"][0], rotation["curve"][-1]
    pairs_line = next(line for line in curves if line.startswith("rotation known pairs:"))
    assert f"{first[0]}: {figure(first[1])}" in pairs_line and pairs_line.endswith(f"{last[0]}: {figure(last[1])}")
