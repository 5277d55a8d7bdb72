"""CKKS gallery: scores against numpy, rankings against plaintext, packing, files, CLI and one-line errors."""

from __future__ import annotations

import builtins
import stat

import numpy as np
import pytest

pytest.importorskip("tenseal")

from shufflebits.attacks.scorereveal import ScoreReveal, from_top_k, inner_products
from shufflebits.ciphers import ckks
from shufflebits.ciphers.ckks_files import load_gallery, load_key, save_gallery, save_key
from shufflebits.cli import main
from shufflebits.errors import InvalidInputError, ShuffleBitsError, WrongKeyError
from shufflebits.features import save_features
from shufflebits.reid import evaluate

DIM = 24


def world(ids: int, per: int, seed: int, dim: int = DIM):
    """Identity centres plus per-image noise, ReLU and unit norm: re-ID-like features."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    x = np.maximum(np.repeat(centres, per, axis=0) + 0.6 * rng.standard_normal((ids * per, dim)), 0) + 0.01
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(ids), per)


@pytest.fixture(scope="module")
def key():
    return ckks.generate_key()


@pytest.fixture(scope="module")
def data():
    gallery, g_pids = world(40, 3, 1)
    rng = np.random.default_rng(2)
    query = gallery[::3] + 0.3 * rng.standard_normal((40, DIM)).astype(np.float32)
    return query * 2.5, np.arange(40), gallery * 1.7, g_pids  # norms other than 1: the scaling must hold


def test_scores_match_numpy_within_ckks_precision(key, data):
    query, _, gallery, _ = data
    encrypted = ckks.encrypt_gallery(key, gallery)
    scores = ckks.KeyHolder(key).release(ckks.score(encrypted, query[:4]), reveal_scores=True).scores
    q, g = query[:4].astype(np.float64) / encrypted.norm_scale, gallery.astype(np.float64) / encrypted.norm_scale
    a = 1 / np.maximum(np.linalg.norm(q, axis=1), 1)
    expected = a[:, None] * (2 * q @ g.T - (g**2).sum(1)[None])
    np.testing.assert_allclose(scores, expected, atol=1e-3)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ranking_on_ciphertexts_equals_plaintext(key, data, metric):
    query, q_pids, gallery, g_pids = data
    q_cams, g_cams = np.zeros(len(query)), np.ones(len(gallery))
    release = ckks.KeyHolder(key).release(
        ckks.score(ckks.encrypt_gallery(key, gallery, metric), query), top_k=len(gallery)
    )
    from shufflebits.reid import evaluate_ranking

    encrypted = evaluate_ranking(release.ids, q_pids, g_pids, q_cams, g_cams)
    plain = evaluate(query, gallery, q_pids, g_pids, q_cams, g_cams, metric=metric, backend="numpy")
    assert abs(encrypted["rank1"] - plain["rank1"]) <= 0.005 and abs(encrypted["mAP"] - plain["mAP"]) <= 0.005
    distances = ((query[:, None] - gallery[None]) ** 2).sum(-1) if metric == "euclidean" else None
    if distances is not None:
        np.testing.assert_array_equal(release.ids[:, 0], distances.argmin(1))


def test_packing_two_columns_per_ciphertext_in_complex_slots(key, data):
    _, _, gallery, _ = data
    encrypted = ckks.encrypt_gallery(key, gallery)
    columns = DIM + 1  # + the squared norms
    assert len(encrypted.groups) == 1 and len(encrypted.groups[0]) == -(-columns // 2)
    assert encrypted.slots == ckks.POLY_DEGREE // 2
    bigger = ckks.encrypt_gallery(key, np.ones((encrypted.slots + 1, 4)))
    assert [len(group) for group in bigger.groups] == [3, 3]
    ciphertext = len(encrypted.groups[0][0])
    assert encrypted.nbytes == -(-columns // 2) * ciphertext
    assert ciphertext < 2 * ckks.POLY_DEGREE * 8 * 1.01  # two polynomials, one 60-bit prime, 8 bytes each
    # What the slots hold, read with SEAL's own decryptor: column k real, column k + h imaginary
    seal = ckks.sealapi()
    decryptor, encoder = seal.Decryptor(key.context(), key.secret_key()), seal.CKKSEncoder(key.context())
    g = gallery.astype(np.float64) / encrypted.norm_scale
    full = np.concatenate([g, (g**2).sum(1, keepdims=True)], axis=1)
    half = -(-columns // 2)
    for k in (0, half - 1):
        plain = seal.Plaintext()
        decryptor.decrypt(ckks.from_bytes("Ciphertext", key.context(), encrypted.groups[0][k]), plain)
        slots = np.asarray(encoder.decode_complex(plain))[: len(g)]
        np.testing.assert_allclose(slots.real, full[:, k], atol=3e-4)  # CKKS noise at scale 2^26
        imaginary = full[:, k + half] if k + half < columns else np.zeros(len(g))
        np.testing.assert_allclose(slots.imag, imaginary, atol=3e-4)


def test_512_d_template_takes_8_kib_when_the_slots_are_full():
    key = ckks.generate_key(seed=3)
    slots = ckks.POLY_DEGREE // 2
    full = ckks.encrypt_gallery(key, np.random.default_rng(0).standard_normal((slots, 512)))
    assert len(full.groups[0]) == 257
    # 257 ciphertexts of 2 x 8192 words (8 bytes) for 4096 templates: 8,224 bytes each, plus SEAL's headers
    assert full.bytes_per_template <= 8 * 1024 * 1.01


def test_seeded_keys_repeat_and_fresh_keys_do_not(data, tmp_path):
    _, _, gallery, _ = data
    first, again, other = ckks.generate_key(seed=7), ckks.generate_key(seed=7), ckks.generate_key(seed=8)
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert ckks.encrypt_gallery(first, gallery).groups == ckks.encrypt_gallery(again, gallery).groups
    assert ckks.encrypt_gallery(first, gallery).groups != ckks.encrypt_gallery(first, gallery[::-1]).groups
    fresh = ckks.generate_key()
    assert ckks.encrypt_gallery(fresh, gallery).groups != ckks.encrypt_gallery(fresh, gallery).groups
    # A reused seeded generator would repeat the noise: the second polynomial (pk1 u + e1) does not depend
    # on the message, so its tail would repeat across ciphertexts of one gallery
    words = {blob[-4096:] for blob in ckks.encrypt_gallery(first, gallery).groups[0]}
    assert len(words) == len(ckks.encrypt_gallery(first, gallery).groups[0])
    with pytest.raises(ShuffleBitsError, match="seeded CKKS key is insecure"):
        save_key(tmp_path / "seeded.key", first)
    with pytest.raises(InvalidInputError, match="seed"):
        ckks.generate_key(seed=-1)


def test_top_k_and_threshold_release_ids_only(key, data):
    query, _, gallery, _ = data
    scores = ckks.score(ckks.encrypt_gallery(key, gallery), query[:3])
    holder = ckks.KeyHolder(key)
    release = holder.release(scores, top_k=2)
    assert release.scores is None and release.ids.shape == (3, 2)
    plain = holder.decrypt(scores)
    cut = holder.release(scores, top_k=3, threshold=float(np.median(plain)) + 10.0)
    assert (cut.ids == -1).all()


def test_encrypted_query_scores_equal_plaintext_query(key, data):
    query, _, gallery, _ = data
    encrypted = ckks.encrypt_gallery(key, gallery[:10])
    holder = ckks.KeyHolder(key)
    plain = holder.decrypt(ckks.score(encrypted, query[:1]))
    hidden = holder.decrypt(ckks.score(encrypted, ckks.encrypt_query(key, encrypted, query[:1])))
    np.testing.assert_allclose(hidden, plain, atol=1e-3)


def test_an_encrypted_query_scores_only_the_gallery_scale_it_was_made_for(key, data):
    query, _, gallery, _ = data
    small, large = ckks.encrypt_gallery(key, gallery[:5]), ckks.encrypt_gallery(key, 3 * gallery[:5])
    hidden = ckks.encrypt_query(key, small, query[:1])
    assert hidden.norm_scale == small.norm_scale != large.norm_scale
    with pytest.raises(InvalidInputError, match="norm scale"):
        ckks.score(large, hidden)
    with pytest.raises(InvalidInputError, match="query of zeros"):
        ckks.encrypt_query(key, small, np.zeros((1, DIM)))
    plain = ckks.KeyHolder(key).decrypt(ckks.score(small, query[:2]))
    for bad in ({"top_k": 0}, {"top_k": 1.5}, {"top_k": True}, {"threshold": float("nan")}):
        with pytest.raises(InvalidInputError):
            ckks.release_from(plain, **bad)


def test_one_line_errors(key, data, tmp_path):
    query, _, gallery, _ = data
    encrypted = ckks.encrypt_gallery(key, gallery[:5])
    with pytest.raises(TypeError, match="CkksKey"):
        ckks.KeyHolder(encrypted)
    with pytest.raises(ShuffleBitsError, match="not a CKKS Ciphertext"):
        ckks.from_bytes("Ciphertext", key.context(), encrypted.groups[0][0][:1000])
    with pytest.raises(InvalidInputError, match="-d but the CKKS gallery is"):
        ckks.score(encrypted, query[:, :5])
    other = ckks.generate_key()
    with pytest.raises(WrongKeyError, match="wrong key"):
        ckks.KeyHolder(other).decrypt(ckks.score(encrypted, query[:1]))
    foreign = ckks.encrypt_query(other, ckks.encrypt_gallery(other, gallery[:5]), query[:1])
    with pytest.raises(InvalidInputError, match="different CKKS keys"):
        ckks.score(encrypted, foreign)
    save_gallery(tmp_path / "g.npz", key, encrypted)
    with pytest.raises(WrongKeyError):
        load_gallery(tmp_path / "g.npz", other)


def test_missing_tenseal_is_one_line(monkeypatch):
    real_import = builtins.__import__

    def no_tenseal(name, *args, **kwargs):
        if name == "tenseal":
            raise ImportError("No module named 'tenseal'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tenseal)
    with pytest.raises(ShuffleBitsError, match=r"pip install 'shufflebits\[he\]'"):
        ckks.generate_key()


def test_files_round_trip_and_tamper(key, data, tmp_path):
    _, _, gallery, g_pids = data
    save_key(tmp_path / "k.npz", key)
    assert stat.S_IMODE((tmp_path / "k.npz").stat().st_mode) == 0o600
    with pytest.raises(ShuffleBitsError):
        save_key(tmp_path / "k.npz", key)  # never overwritten
    loaded_key = load_key(tmp_path / "k.npz")
    assert loaded_key.fingerprint == key.fingerprint
    encrypted = ckks.encrypt_gallery(key, gallery)
    save_gallery(tmp_path / "g.npz", key, encrypted, pids=g_pids, camids=np.ones(len(g_pids)))
    back, passthrough = load_gallery(tmp_path / "g.npz", loaded_key)
    assert back.groups == encrypted.groups and (passthrough["pids"] == g_pids).all()
    raw = bytearray((tmp_path / "g.npz").read_bytes())
    raw[len(raw) // 2] ^= 1
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(ShuffleBitsError):
        load_gallery(tmp_path / "bad.npz", loaded_key)


def test_a_version_1_key_file_is_a_one_line_error(tmp_path):
    import json

    header = {"format": "shufflebits-ckks-key", "version": 1, "cipher": "ckks", "key_fingerprint": "00"}
    np.savez(tmp_path / "old.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8))
    with pytest.raises(ShuffleBitsError, match="unsupported shufflebits-ckks-key version 1"):
        load_key(tmp_path / "old.npz")


def test_cli_reid_on_a_ckks_gallery_equals_plaintext(data, tmp_path, capsys):
    query, q_pids, gallery, g_pids = data
    save_features(tmp_path / "q.npz", query, pids=q_pids, camids=np.zeros(len(query)))
    save_features(tmp_path / "g.npz", gallery, pids=g_pids, camids=np.ones(len(gallery)))
    assert main(["ckks-keygen", "--out", str(tmp_path / "k.npz")]) == 0
    assert main(["ckks-encrypt", "--key", str(tmp_path / "k.npz"), "--features", str(tmp_path / "g.npz"),
                 "--out", str(tmp_path / "eg.npz")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "eg.npz"),
                 "--key", str(tmp_path / "k.npz"), "--json"]) == 0  # fmt: skip
    import json

    encrypted = json.loads(capsys.readouterr().out)
    plain = evaluate(query, gallery, q_pids, g_pids, np.zeros(len(query)), np.ones(len(gallery)), backend="numpy")
    assert encrypted["backend"] == "ckks" and abs(encrypted["rank1"] - plain["rank1"]) <= 0.005
    assert main(["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "eg.npz")]) == 2
    assert "--key" in capsys.readouterr().err


def test_score_reveal_recovers_from_revealed_scores_and_not_from_top_k(key):
    attacker, _ = world(60, 2, 5)
    victim, _ = world(20, 1, 6)
    enrolled = attacker[: DIM * 2]
    encrypted = ckks.encrypt_gallery(key, enrolled)
    holder = ckks.KeyHolder(key)
    revealed = holder.release(ckks.score(encrypted, victim), reveal_scores=True).scores
    # undo the public scalings: gallery / norm_scale, score * a with a = 1 (unit queries / norm_scale >= 1)
    s = inner_products(revealed, enrolled / encrypted.norm_scale) * encrypted.norm_scale
    model = ScoreReveal().fit(attacker)
    assert model.score(s, victim, enrolled) >= 0.9
    chance = model.score(np.zeros((len(victim), 0)), victim)
    ids = holder.release(ckks.score(encrypted, victim), top_k=1).ids
    top_k = from_top_k(ids, np.arange(len(enrolled)), enrolled, model.mean_)
    from shufflebits.attacks.searchable import mean_cosine

    assert mean_cosine(top_k, victim) < model.score(s, victim, enrolled) - 0.1
    assert abs(mean_cosine(np.repeat(model.mean_[None], len(victim), 0), victim) - chance) < 1e-12
