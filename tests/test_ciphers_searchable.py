"""The searchable ciphers (DCPE, rotation, BioHash) against what their papers promise, and matching on ciphertexts."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from shufflebits.ciphers import BioHash, Dcpe, Key, Rotation, Sealed, cipher_names, create_cipher, keyed, load_key, spec
from shufflebits.ciphers.catalogue import installed
from shufflebits.ciphers.files import load_encrypted, save_encrypted
from shufflebits.ciphers.hazmat import experiment_nonces
from shufflebits.ciphers.matching import comparable, load_matchable, match_view
from shufflebits.cli import main
from shufflebits.errors import InvalidInputError, ShuffleBitsError, WrongKeyError
from shufflebits.features import save_features
from shufflebits.reid import evaluate, evaluate_ranking
from shufflebits.reid.metrics import distance_matrix

MATCHABLE = cipher_names(matchable=True, homomorphic=False)  # ckks: test_ckks.py


def key(name: str, tag: str = "", **params) -> Key:
    return Key(name, hashlib.sha256(f"tests/searchable/{name}/{tag}".encode()).digest(), params=params)


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("name", cipher_names(family="dcpe"))
def test_dcpe_perturbation_is_uniform_in_the_ball_of_radius_s_beta_over_4(name):
    beta, scale, d = 0.8, 3.0, 64
    cipher = Dcpe(key(name, beta=beta, scale=scale), nonce_source=experiment_nonces(0))
    x = unit_rows(4000, d)
    c = cipher.encrypt(x).words().view(np.float32).astype(np.float64)
    plain = x[:, cipher.order(d)].astype(np.float64)
    noise = c - scale * plain
    radius = np.linalg.norm(noise, axis=1) / (scale * beta / 4)
    assert radius.max() <= 1 + 1e-5
    # uniform in a d-ball: P(|lambda| <= r R) = r**d, so radius**d is U(0, 1)
    u = np.sort(radius**d)
    assert np.abs(u - (np.arange(1, len(u) + 1) - 0.5) / len(u)).max() < 0.03  # Kolmogorov-Smirnov, n = 4000
    direction = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    assert np.abs(direction.mean(axis=0)).max() < 4 / np.sqrt(d * len(x))
    np.testing.assert_allclose(direction.T @ direction / len(x), np.eye(d) / d, atol=0.01)


@pytest.mark.parametrize("name", cipher_names(family="dcpe"))
def test_dcpe_keeps_every_comparison_separated_by_more_than_beta(name):
    """The paper's guarantee: |x - y| < |x - z| - beta implies |c(x) - c(y)| < |c(x) - c(z)|."""
    beta = 0.5
    cipher = Dcpe(key(name, beta=beta, scale=2.5), nonce_source=experiment_nonces(1))
    x = unit_rows(300, 32, seed=1) * np.random.default_rng(2).uniform(0.2, 2.0, (300, 1)).astype(np.float32)
    c = cipher.encrypt(x).words().view(np.float32).astype(np.float64)
    plain = np.linalg.norm(x[:, None] - x[None], axis=-1)
    cipher_d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    separated = plain[:, :, None] < plain[:, None, :] - beta
    assert separated.sum() > 10_000
    assert np.all((cipher_d[:, :, None] < cipher_d[:, None, :])[separated])
    close = np.abs(plain[:, :, None] - plain[:, None, :]) < 0.05  # within beta the order may flip, and does
    flipped = (cipher_d[:, :, None] < cipher_d[:, None, :]) != (plain[:, :, None] < plain[:, None, :])
    assert flipped[close].mean() > 0.1


def test_dcpe_decrypts_approximately_fresh_nonces_and_a_keyed_shuffle():
    x = unit_rows(50, 40)
    plain_cipher = Dcpe(key("dcpe", beta=1e-6), nonce_source=experiment_nonces(2))
    shuffled = Dcpe(key("dcpe-shuffle", beta=1e-6), nonce_source=experiment_nonces(2))
    order = shuffled.order(40)
    assert sorted(order.tolist()) == list(range(40)) and order.tolist() != list(range(40))
    assert np.array_equal(Dcpe(key("dcpe-shuffle")).order(40), order)  # the key, not the instance, decides
    assert not np.array_equal(Dcpe(key("dcpe-shuffle", "other")).order(40), order)
    np.testing.assert_allclose(shuffled.encrypt(x).words().view(np.float32), x[:, order], atol=1e-6)
    np.testing.assert_allclose(plain_cipher.encrypt(x).words().view(np.float32), x, atol=1e-6)
    wide = Dcpe(key("dcpe", beta=1.0))
    first, second = wide.encrypt(x), wide.encrypt(x)
    assert not np.array_equal(first.words(), second.words())  # a fresh nonce per vector
    for sealed in (first, second):
        np.testing.assert_allclose(wide.decrypt(sealed), x, atol=1e-6)
    rows = Sealed.from_words(
        first.payload()[7:20],
        cipher="dcpe",
        key_fingerprint=first.key_fingerprint,
        dtype="float32",
        nonces=first.nonces[7:20],
    )
    np.testing.assert_allclose(wide.decrypt(rows), x[7:20], atol=1e-6)  # any subset of rows decrypts
    float64 = wide.decrypt(wide.encrypt(x.astype(np.float64)))
    assert float64.dtype == np.float64 and np.abs(float64 - x).max() < 1e-6


def test_rotation_is_a_haar_orthogonal_matrix_and_keeps_distances():
    d = 48
    cipher = Rotation(key("rotation"))
    R = cipher.matrix(d)
    np.testing.assert_allclose(R @ R.T, np.eye(d), atol=1e-12)
    assert abs(np.linalg.det(R)) == pytest.approx(1.0)
    x = unit_rows(30, d)
    c = cipher.encrypt(x).words().view(np.float32)
    np.testing.assert_allclose(c, x @ R.T, atol=1e-5)
    np.testing.assert_allclose(c @ c.T, x @ x.T, atol=1e-5)
    np.testing.assert_allclose(cipher.decrypt(cipher.encrypt(x)), x, atol=1e-5)
    entries = np.concatenate([Rotation(key("rotation", str(i))).matrix(d).ravel() for i in range(20)])
    assert abs(entries.mean()) < 4 / np.sqrt(entries.size * d) and entries.var() == pytest.approx(1 / d, rel=0.05)
    noisy = Rotation(key("rotation", noise=0.1), nonce_source=experiment_nonces(3))
    added = noisy.encrypt(np.zeros((2000, d), np.float32)).words().view(np.float32)
    assert added.std() == pytest.approx(0.1, rel=0.03) and abs(added.mean()) < 0.005


def test_biohash_bits_are_signs_of_an_orthonormal_projection_and_track_the_angle():
    d = 256
    cipher = BioHash(key("biohash"))
    Q = cipher.projection(d)
    assert Q.shape == (d, d)
    np.testing.assert_allclose(Q.T @ Q, np.eye(d), atol=1e-12)
    x = unit_rows(2, d)
    sealed = cipher.encrypt(x)
    bits = np.unpackbits(sealed.payload(), axis=1)
    assert np.array_equal(bits[:, :d], (x.astype(np.float64) @ Q > 0).astype(np.uint8))
    # random hyperplanes: P(a bit differs) = angle / pi (Charikar), here over many keys
    rng = np.random.default_rng(5)
    a = unit_rows(1, d, seed=6)[0]
    other = rng.standard_normal(d)
    other -= (other @ a) * a
    other /= np.linalg.norm(other)
    angle = np.pi / 3
    b = np.cos(angle) * a + np.sin(angle) * other
    pair = np.stack([a, b]).astype(np.float32)
    differ = [
        np.mean(np.diff(BioHash(key("biohash", str(i), bits=64)).hash_bits(pair), axis=0) != 0) for i in range(60)
    ]
    assert np.mean(differ) == pytest.approx(angle / np.pi, abs=0.03)
    short = BioHash(key("biohash", bits=20)).encrypt(x)
    assert short.payload().shape == (2, 4) and not np.unpackbits(short.payload(), axis=1)[:, 20:].any()


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: key("dcpe", beta=0), "beta must be a positive number"),
        (lambda: key("dcpe", beta=-1.5), "beta must be a positive number"),
        (lambda: key("dcpe", beta=float("nan")), "beta must be a positive number"),
        (lambda: key("dcpe", scale=0), "scale must be a positive number"),
        (lambda: key("rotation", noise=-0.1), "noise must be a number >= 0"),
        (lambda: key("biohash", bits=0), r"bits must be an integer in 1\.\.d"),
        (lambda: key("biohash", bits=2.5), r"bits must be an integer in 1\.\.d"),
        (lambda: BioHash(key("biohash", bits=17)).encrypt(unit_rows(2, 16)), r"bits must be in 1\.\.d \(d = 16\)"),
        (lambda: create_cipher("dcpe").encrypt(np.full((2, 4), np.nan, np.float32)), "finite features"),
        (lambda: create_cipher("rotation").encrypt(np.ones((2, 4), np.float16)), "float32 or float64"),
        (lambda: BioHash(key("biohash")).decrypt(BioHash(key("biohash")).encrypt(unit_rows(2, 8))), "decrypted"),
    ],
)
def test_bad_parameters_and_inputs_are_one_line_errors(build, message):
    with pytest.raises(InvalidInputError if "decrypt" not in message else ShuffleBitsError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def _labelled_world(ids: int = 40, per: int = 4, d: int = 32, seed: int = 7):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, d))
    x = np.repeat(centres, per, axis=0) + 0.6 * rng.standard_normal((ids * per, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    pids = np.repeat(np.arange(ids), per)
    camids = np.tile(np.arange(per), ids)
    query = camids == 0
    return (x[query], pids[query], camids[query]), (x[~query], pids[~query], camids[~query])


@pytest.mark.parametrize("name", MATCHABLE)
def test_matching_on_ciphertexts_ranks_like_the_scheme_promises(name):
    (qx, qp, qc), (gx, gp, gc) = _labelled_world()
    plain = evaluate(qx, gx, qp, gp, qc, gc)
    cipher = spec(name).resolve()(key(name), nonce_source=experiment_nonces(4))
    q, g = cipher.encrypt(qx), cipher.encrypt(gx)
    comparable(q, g)
    (qf, metric), (gf, _) = match_view(q), match_view(g)
    assert metric == spec(name).match_metric
    on_ciphertext = evaluate(qf, gf, qp, gp, qc, gc, metric=metric)
    if name == "rotation":
        assert on_ciphertext["rank1"] == plain["rank1"] and on_ciphertext["mAP"] == pytest.approx(plain["mAP"])
    else:  # approximate (DCPE, beta = 1 on unit vectors) or lossy (BioHash): close, and far above chance (1/40)
        assert on_ciphertext["rank1"] > 0.5 * plain["rank1"] and on_ciphertext["mAP"] > 0.3
    if metric == "hamming":
        reference = (qf[:, None, :] != gf[None, :, :]).sum(-1)
        assert np.array_equal(distance_matrix(qf, gf, "hamming"), reference)


def test_ciphertexts_under_different_keys_or_widths_are_not_compared():
    x = unit_rows(4, 16)
    first, other = create_cipher("rotation"), create_cipher("rotation")
    with pytest.raises(InvalidInputError, match="different keys"):
        comparable(first.encrypt(x), other.encrypt(x))
    with pytest.raises(InvalidInputError, match="gallery ones"):
        comparable(first.encrypt(x), first.encrypt(unit_rows(4, 8)))
    with pytest.raises(InvalidInputError, match="gallery ciphertexts are dcpe"):
        comparable(first.encrypt(x), create_cipher("dcpe").encrypt(x))
    with pytest.raises(ShuffleBitsError, match="cannot be compared without decrypting"):
        match_view(create_cipher("chacha20").encrypt(x))


def test_reid_cli_on_encrypted_files(tmp_path, capsys):
    (qx, qp, qc), (gx, gp, gc) = _labelled_world()
    cipher, stranger = create_cipher("rotation"), create_cipher("rotation")
    save_encrypted(tmp_path / "q.npz", cipher, cipher.encrypt(qx), pids=qp, camids=qc)
    save_encrypted(tmp_path / "g.npz", cipher, cipher.encrypt(gx), pids=gp, camids=gc)
    save_encrypted(tmp_path / "s.npz", stranger, stranger.encrypt(gx), pids=gp, camids=gc)
    save_features(tmp_path / "pq.npz", qx, pids=qp, camids=qc)
    save_features(tmp_path / "pg.npz", gx, pids=gp, camids=gc)
    sealed, passthrough = load_matchable(tmp_path / "q.npz")
    assert sealed.cipher == "rotation" and passthrough["pids"].tolist() == qp.tolist()

    def reid(query, gallery, *extra):
        code = main(["reid", "--query", str(tmp_path / query), "--gallery", str(tmp_path / gallery), *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = reid("q.npz", "g.npz", "--json")
    assert code == 0
    on_ciphertext = json.loads(out)
    code, out, _ = reid("pq.npz", "pg.npz", "--json")
    on_plaintext = json.loads(out)
    assert on_ciphertext["rank1"] == on_plaintext["rank1"] and on_ciphertext["metric"] == "euclidean"
    for query, gallery, extra, message in (
        ("q.npz", "s.npz", (), "different keys"),
        ("q.npz", "pg.npz", (), "both be plaintext or both encrypted"),
        ("q.npz", "g.npz", ("--metric", "cosine"), "compared by euclidean"),
    ):
        code, _, err = reid(query, gallery, *extra)
        assert code == 2 and message in err and err.count("\n") == 1
    chacha = create_cipher("chacha20")
    save_encrypted(tmp_path / "c.npz", chacha, chacha.encrypt(qx), pids=qp, camids=qc)
    code, _, err = reid("c.npz", "c.npz")
    assert code == 2 and "cannot be compared without decrypting" in err


@pytest.mark.parametrize(
    "name, flags, shown",
    [
        ("dcpe", ("--beta", "2.0", "--scale", "3.0"), "dcpe (beta=2.0, scale=3.0)"),
        ("dcpe-shuffle", ("--beta", "1.5"), "dcpe-shuffle (beta=1.5, scale=1.0)"),
        ("biohash", ("--bits", "12"), "biohash (bits=12)"),
    ],
)
def test_reid_cli_ranks_encrypted_files_by_the_schemes_own_comparison(tmp_path, capsys, name, flags, shown):
    """keygen with parameters, encrypt, reid on the files: the ranking is numpy's on the same ciphertexts
    (BioHash: on codes recomputed from the plaintext with the key's projection), ties in gallery order."""
    (qx, qp, qc), (gx, gp, gc) = _labelled_world()
    key_path = tmp_path / "key.json"
    assert main(["keygen", "--cipher", name, *flags, "--out", str(key_path)]) == 0
    for role, (x, p, c) in (("q", (qx, qp, qc)), ("g", (gx, gp, gc))):
        plain, encrypted = tmp_path / f"p{role}.npz", tmp_path / f"{role}.npz"
        save_features(plain, x, pids=p, camids=c)
        assert main(["encrypt", "--key", str(key_path), str(plain), str(encrypted)]) == 0
    capsys.readouterr()
    assert main(["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--json"]) == 0
    out = capsys.readouterr()
    on_ciphertext = json.loads(out.out)
    assert on_ciphertext["metric"] == spec(name).match_metric and f"comparing {shown} ciphertexts" in out.err
    if spec(name).match_metric == "hamming":
        projection = keyed.orthonormal(load_key(key_path).derive("biohash"), qx.shape[1], int(flags[1]))
        q, g = ((x.astype(np.float64) @ projection > 0).astype(np.int64) for x in (qx, gx))
        distances = (q[:, None, :] != g[None, :, :]).sum(-1)
    else:
        q, g = (np.load(tmp_path / f"{role}.npz")["ciphertext"].view(np.float32).astype(np.float64) for role in "qg")
        distances = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    reference = evaluate_ranking(np.argsort(distances, axis=1, kind="stable"), qp, gp, qc, gc)
    assert on_ciphertext["cmc"] == reference["cmc"].tolist()
    assert on_ciphertext["mINP"] == pytest.approx(reference["mINP"])
    assert on_ciphertext["mAP"] == pytest.approx(reference["mAP"]) and on_ciphertext["rank1"] > 0.2  # chance: 1/40


@pytest.mark.parametrize("name", MATCHABLE)
def test_files_empty_arrays_and_wrong_keys(tmp_path, name):
    cipher = create_cipher(name)
    x = unit_rows(6, 12)
    sealed = cipher.encrypt(x)
    save_encrypted(tmp_path / "e.npz", cipher, sealed, pids=np.arange(6))
    loaded, extra = load_encrypted(tmp_path / "e.npz", cipher)
    assert np.array_equal(loaded.payload(), sealed.payload()) and extra["pids"].tolist() == list(range(6))
    with pytest.raises(WrongKeyError):
        load_encrypted(tmp_path / "e.npz", create_cipher(name))
    if spec(name).invertible:
        np.testing.assert_allclose(cipher.decrypt(loaded), x, atol=1e-5)
        with pytest.raises(WrongKeyError):
            create_cipher(name).decrypt(sealed)
    for shape in [(0, 8), (3, 0)]:
        empty = cipher.encrypt(np.zeros(shape, np.float32))
        assert empty.shape[0] == shape[0] and match_view(empty)[0].shape[0] == shape[0]
        if spec(name).invertible:
            assert cipher.decrypt(empty).shape == shape


def test_cost_rows_cover_every_cipher_with_its_storage_and_comparison():
    from shufflebits.ciphers.cost import CKKS_ENCRYPTED_QUERY, DIM, cost_lines, cost_rows

    rows = cost_rows(gallery=64, repeats=2)
    he = [name for name in cipher_names(homomorphic=True) if installed(name)]  # the optional `he` extra
    he += [CKKS_ENCRYPTED_QUERY] if "ckks" in he else []
    assert [row["cipher"] for row in rows] == ["plaintext", *cipher_names(homomorphic=False), *he]
    by_name = {row["cipher"]: row for row in rows}
    for name in cipher_names(homomorphic=False):
        record = spec(name)
        ciphertext = -(-DIM // 32) * 4 if not record.invertible else DIM * 4 + record.tag_bytes  # BioHash: d bits
        assert by_name[name]["bytes_per_vector"] == ciphertext + record.nonce_bytes, name
        assert by_name[name]["comparison"].endswith("on ciphertexts") == record.matchable
        assert all(by_name[name][k] > 0 for k in ("encrypt_us_per_vector", "compare_1to1_us", "search_1toN_ms"))
    assert by_name["plaintext"]["bytes_per_vector"] == DIM * 4
    if CKKS_ENCRYPTED_QUERY in by_name:  # 257 full ciphertexts per 512-d query: 2 polynomials of N 8-byte words
        full = -(-(DIM + 1) // 2) * 2 * 8192 * 8
        assert 0.9 * full < by_name[CKKS_ENCRYPTED_QUERY]["bytes_per_vector"] < 1.01 * full
        assert all(by_name[CKKS_ENCRYPTED_QUERY][k] > 0 for k in ("encrypt_us_one", "search_1toN_ms"))
    assert all(row["batch"] == 64 and row["gallery"] == 64 for row in rows)  # a smaller gallery is its own batch
    lines = cost_lines(rows)
    assert len(lines) == len(rows) + 2 and "1:N over 64 512-d templates" in lines[-1]


def test_known_answers_freeze_the_key_derivations():
    """Frozen from this implementation (no reference implementation of these constructions is published
    with vectors): a change to a derivation would silently stop old files from decrypting. Float values
    carry a tolerance, since SIMD log/sin/cos and LAPACK may differ in the last bits between CPUs."""
    dcpe = Dcpe(key("dcpe-shuffle"), nonce_source=experiment_nonces(5))
    sealed = dcpe.encrypt(unit_rows(2, 8, seed=11))
    assert dcpe.order(8).tolist() == [2, 4, 7, 0, 1, 5, 3, 6]
    assert sealed.nonces[0].tolist() == [198, 167, 186, 16, 31, 149, 237, 226, 113, 115, 28, 39, 35, 97, 170, 172]
    expected = [0.560532, -0.089371, -0.157172, 0.08846, 0.578321, -0.199786, -0.24839, 0.238401]
    np.testing.assert_allclose(sealed.words().view(np.float32)[0], expected, atol=2e-6)
    np.testing.assert_allclose(
        Rotation(key("rotation")).matrix(4)[0], [-0.692498646, -0.217714906, 0.494693296, 0.477833013], atol=1e-8
    )
    hashed = BioHash(key("biohash")).encrypt(unit_rows(2, 32, seed=12)).payload()
    assert hashed.tolist() == [[148, 91, 200, 98], [55, 237, 121, 29]]
