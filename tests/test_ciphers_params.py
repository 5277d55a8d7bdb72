"""Scheme parameters (DCPE beta/scale, rotation noise, BioHash bits) live in the key: keygen, files, matching, wire."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shufflebits.ciphers import Key, cipher_for_key, create_cipher, files, generate_key, keyed, load_key, save_key
from shufflebits.ciphers.catalogue import format_params
from shufflebits.ciphers.files import load_encrypted, save_encrypted
from shufflebits.ciphers.keys import key_to_json
from shufflebits.ciphers.matching import comparable, load_matchable
from shufflebits.cli import main
from shufflebits.errors import InvalidInputError, WrongKeyError
from shufflebits.features import load_features, save_features
from shufflebits.service.wire import answer_context, decode_answer, encode_result

MATERIAL = bytes(range(32))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(n: int = 40, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_keys_hold_every_declared_parameter_and_default_keys_keep_their_fingerprints():
    key = Key("dcpe", MATERIAL)
    assert key.params == (("beta", 1.0), ("scale", 1.0))
    assert Key("biohash", MATERIAL).params == (("bits", None),) and Key("chacha20", MATERIAL).params == ()
    # frozen: what default dcpe keys (and the files they wrote) carried before keys had parameters
    assert key.fingerprint == "f3bde833a4146a9b463de16d1fb32138"
    assert Key("dcpe", MATERIAL, params={"beta": 1, "scale": 1.0}) == key  # explicit defaults are the same key
    assert Key("dcpe", MATERIAL, params={"beta": 1}).fingerprint == key.fingerprint
    wide = Key("dcpe", MATERIAL, params={"beta": 1.5})
    assert wide.params == (("beta", 1.5), ("scale", 1.0)) and wide.fingerprint != key.fingerprint
    assert Key("dcpe", MATERIAL, params=wide.params) == wide  # pairs, as Key.params gives them, are accepted too
    assert cipher_for_key(wide).beta == 1.5 and cipher_for_key(Key("biohash", MATERIAL, params={"bits": 9})).bits == 9
    assert generate_key("rotation", noise=0.25).params == (("noise", 0.25),)
    assert (
        format_params(Key("biohash", MATERIAL).params) == "bits=d"
        and format_params(wide.params) == "beta=1.5, scale=1.0"
    )


@pytest.mark.parametrize(
    "cipher, params, message",
    [
        ("dcpe", {"beta": 0}, "dcpe beta must be a positive number, got 0"),
        ("dcpe-shuffle", {"beta": float("inf")}, "beta must be a positive number"),
        ("dcpe", {"beta": "1.5"}, "beta must be a positive number, got '1.5'"),
        ("dcpe", {"scale": -2.0}, "scale must be a positive number"),
        ("dcpe", {"scale": True}, "scale must be a positive number"),
        ("rotation", {"noise": float("nan")}, "noise must be a number >= 0"),
        ("rotation", {"noise": -1e-9}, "noise must be a number >= 0"),
        ("biohash", {"bits": -3}, r"bits must be an integer in 1\.\.d"),
        ("biohash", {"bits": np.float32(8)}, r"bits must be an integer in 1\.\.d"),
        ("dcpe", {"bits": 8}, r"dcpe has no parameter bits \(its parameters are beta, scale\)"),
        ("chacha20", {"beta": 1.0}, r"chacha20 has no parameter beta \(it has none\)"),
        ("dcpe", ["beta"], "dcpe parameters must map names to values"),
        ("dcpe", {"beta": 10**400}, "beta must be a positive number"),  # an integer past float range
    ],
)
def test_bad_parameters_are_one_line_errors(cipher, params, message):
    with pytest.raises(InvalidInputError, match=message) as error:
        Key(cipher, MATERIAL, params=params)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--cipher", "dcpe", "--beta", "0"), "dcpe beta must be a positive number, got 0.0"),
        (("--cipher", "dcpe", "--scale", "nan"), "scale must be a positive number"),
        (("--cipher", "rotation", "--noise", "-0.5"), "noise must be a number >= 0"),
        (("--cipher", "biohash", "--bits", "0"), "bits must be an integer in 1..d"),
        (("--cipher", "dcpe", "--bits", "8"), "--bits is a parameter of biohash keys, not of dcpe"),
        (("--cipher", "shufflebits", "--seed", "0", "--noise", "1"), "--noise is a parameter of rotation keys"),
    ],
)
def test_keygen_refuses_bad_parameters_in_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "keygen", *argv, "--out", tmp_path / "k.json")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name, flags",
    [
        ("dcpe", ("--beta", "1.5", "--scale", "2.0")),
        ("dcpe-shuffle", ("--beta", "0.75", "--scale", "3.0")),
        ("rotation", ("--noise", "0.05")),
    ],
)
def test_cli_round_trip_with_non_default_parameters(tmp_path, capsys, name, flags):
    x = rows()
    plain, key_path, enc, dec = (tmp_path / n for n in ("plain.npz", "key.json", "enc.npz", "dec.npz"))
    save_features(plain, x, pids=np.arange(len(x)), camids=np.zeros(len(x)))
    code, out, _ = run(capsys, "keygen", "--cipher", name, *flags, "--out", key_path)
    params = {flag[2:]: float(value) for flag, value in zip(flags[::2], flags[1::2])}
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    assert code == 0 and shown in out
    assert json.loads(key_path.read_text())["params"] == params
    key = load_key(key_path)
    assert dict(key.params) == params and shown in run(capsys, "inspect", key_path)[1]
    assert run(capsys, "encrypt", "--key", key_path, plain, enc)[0] == 0
    assert shown in run(capsys, "inspect", enc)[1]
    with np.load(enc) as archive:
        header = json.loads(archive["header"].tobytes())
        c = archive["ciphertext"].view(np.float32).astype(np.float64)
    assert header["params"] == params and header["key_fingerprint"] == key.fingerprint
    d = x.shape[1]
    reference = x.astype(np.float64)
    if name == "rotation":  # numpy reference: c = x R^T + noise, R from the key's `rotation` sub-key
        residual = c - reference @ keyed.orthonormal(key.derive("rotation"), d, d).T
        assert residual.std() == pytest.approx(params["noise"], rel=0.15)
        tolerance = 6 * params["noise"]
    else:  # c = s * x[:, order] + lambda, |lambda| <= s * beta / 4: the ball is the one the key asked for
        order = keyed.shuffle(key.derive("dcpe-shuffle"), d) if name == "dcpe-shuffle" else np.arange(d)
        radius = np.linalg.norm(c - params["scale"] * reference[:, order], axis=1) / (
            params["scale"] * params["beta"] / 4
        )
        assert radius.max() <= 1 + 1e-5 and radius.max() > 0.8
        tolerance = 1e-5
    assert run(capsys, "decrypt", "--key", key_path, enc, dec)[0] == 0
    np.testing.assert_allclose(load_features(dec).features, x, atol=tolerance)


def test_biohash_bits_reach_the_codes_and_codes_of_other_lengths_are_not_compared(tmp_path, capsys):
    """12- and 20-bit codes both pad to one 4-byte word: only the recorded parameters tell them apart."""
    x = rows(8, 32)
    plain = tmp_path / "plain.npz"
    save_features(plain, x, pids=np.arange(8), camids=np.zeros(8))
    for bits in (12, 20):
        assert run(capsys, "keygen", "--cipher", "biohash", "--bits", bits, "--out", tmp_path / f"k{bits}.json")[0] == 0
        assert run(capsys, "encrypt", "--key", tmp_path / f"k{bits}.json", plain, tmp_path / f"e{bits}.npz")[0] == 0
    sealed, _ = load_matchable(tmp_path / "e12.npz")
    other, _ = load_matchable(tmp_path / "e20.npz")
    assert sealed.params == (("bits", 12),) and sealed.payload().shape == other.payload().shape == (8, 4)
    projection = keyed.orthonormal(load_key(tmp_path / "k12.json").derive("biohash"), 32, 12)
    codes = np.unpackbits(sealed.payload(), axis=1)
    assert np.array_equal(codes[:, :12], (x.astype(np.float64) @ projection > 0)) and not codes[:, 12:].any()
    with pytest.raises(InvalidInputError, match=r"biohash bits=12, gallery ones bits=20") as error:
        comparable(sealed, other)
    assert "\n" not in str(error.value)
    argv = ("reid", "--query", tmp_path / "e12.npz", "--gallery", tmp_path / "e20.npz")
    code, _, err = run(capsys, *argv)
    assert code == 2 and "bits=12, gallery ones bits=20" in err and err.count("\n") == 1
    save_key(tmp_path / "k33.json", generate_key("biohash", bits=33))
    code, _, err = run(capsys, "encrypt", "--key", tmp_path / "k33.json", plain, tmp_path / "no.npz")
    assert code == 2 and "bits must be in 1..d (d = 32), got 33" in err and not (tmp_path / "no.npz").exists()


def test_mismatched_parameters_are_refused_in_one_line_not_decrypted(tmp_path, capsys):
    x = rows(6, 8)
    wide = create_cipher("dcpe", Key("dcpe", MATERIAL, params={"beta": 1.5}))
    narrow = create_cipher("dcpe", Key("dcpe", MATERIAL))  # same material: only the parameters differ
    sealed = wide.encrypt(x)
    with pytest.raises(WrongKeyError, match=r"made with dcpe beta=1\.5, scale=1\.0, this key has beta=1\.0"):
        narrow.decrypt(sealed)
    save_encrypted(tmp_path / "wide.npz", wide, sealed)
    with pytest.raises(WrongKeyError, match=r"encrypted with dcpe beta=1\.5, scale=1\.0, but this key has beta=1\.0"):
        load_encrypted(tmp_path / "wide.npz", narrow)
    save_key(tmp_path / "narrow.json", narrow.key)
    code, _, err = run(capsys, "decrypt", "--key", tmp_path / "narrow.json", tmp_path / "wide.npz", tmp_path / "o.npz")
    assert code == 2 and "parameters are part of the key" in err and err.count("\n") == 1
    assert not (tmp_path / "o.npz").exists()
    with pytest.raises(InvalidInputError, match=r"dcpe beta=1\.5, scale=1\.0, gallery ones beta=1\.0"):
        comparable(sealed, narrow.encrypt(x))
    # a header rewritten to the defaults still carries the beta=1.5 key's fingerprint (and its MAC fails)
    rewrite_header(tmp_path / "wide.npz", tmp_path / "forged.npz", lambda header: header.pop("params"))
    with pytest.raises(WrongKeyError, match="wrong key"):
        load_encrypted(tmp_path / "forged.npz", narrow)


def rewrite_header(source, target, edit, cipher=None) -> None:
    """``source`` with its header edited; re-tagged under ``cipher``'s file MAC when given (an honest old file)."""
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("header").tobytes())
    edit(header)
    raw = json.dumps(header, sort_keys=True).encode()
    tag = arrays.pop("tag")
    if cipher is not None:
        tag = np.frombuffer(files._mac(cipher, raw, arrays), np.uint8)
    np.savez(target, header=np.frombuffer(raw, np.uint8), tag=tag, **arrays)


def test_files_and_keys_from_before_parameters_were_recorded_hold_the_defaults(tmp_path, capsys):
    """Before this, keygen and files knew only the defaults, and default keys kept their fingerprints:
    so such files load with the defaults, and a key with other parameters refuses them."""
    key = Key("dcpe", MATERIAL)
    cipher = create_cipher("dcpe", key)
    x = rows(6, 8)
    save_encrypted(tmp_path / "new.npz", cipher, cipher.encrypt(x))
    rewrite_header(tmp_path / "new.npz", tmp_path / "old.npz", lambda header: header.pop("params"), cipher)
    sealed, _ = load_encrypted(tmp_path / "old.npz", cipher)
    np.testing.assert_allclose(cipher.decrypt(sealed), x, atol=1e-5)
    assert "beta=1.0, scale=1.0 (not recorded: an older file" in run(capsys, "inspect", tmp_path / "old.npz")[1]
    with pytest.raises(WrongKeyError, match=r"encrypted with dcpe beta=1\.0, scale=1\.0, but this key has beta=2\.0"):
        load_encrypted(tmp_path / "old.npz", create_cipher("dcpe", Key("dcpe", MATERIAL, params={"beta": 2.0})))
    record = json.loads(key_to_json(key))
    old_key = {name: value for name, value in record.items() if name != "params"}
    (tmp_path / "old.json").write_text(json.dumps(old_key))
    assert load_key(tmp_path / "old.json") == key  # same fingerprint as the record without params
    record["params"]["beta"] = 2.0  # parameters edited by hand: the fingerprint no longer matches
    (tmp_path / "edited.json").write_text(json.dumps(record))
    code, _, err = run(capsys, "decrypt", "--key", tmp_path / "edited.json", tmp_path / "old.npz", tmp_path / "o.npz")
    assert code == 2 and "does not match its material and parameters" in err and err.count("\n") == 1
    rewrite_header(tmp_path / "new.npz", tmp_path / "bad.npz", lambda header: header.update(params={"beta": -1}))
    code, _, err = run(capsys, "reid", "--query", tmp_path / "bad.npz", "--gallery", tmp_path / "bad.npz")
    assert code == 2 and "malformed header (dcpe beta must be a positive number, got -1)" in err


def test_service_answers_carry_the_parameters():
    cipher = create_cipher("rotation", generate_key("rotation", noise=0.01))
    x = rows(3, 8)
    rid = "d" * 32
    answer = encode_result(cipher.encrypt(x, authenticate=True, context=answer_context(rid, 3)), rid)
    payload = json.loads(json.dumps(answer))
    assert payload["encryption"]["params"] == {"noise": 0.01}
    sealed = decode_answer(payload)
    assert sealed.params == cipher.key.params
    np.testing.assert_allclose(cipher.decrypt(sealed, require_authenticated=True), x, atol=0.1)
    del payload["encryption"]["params"]  # read as the defaults: another key's ciphertext
    with pytest.raises(WrongKeyError, match=r"noise=0\.0, this key has noise=0\.01"):
        cipher.decrypt(decode_answer(payload))


@pytest.mark.parametrize("scale", [1e-50, 1e39])
def test_a_dcpe_scale_the_features_dtype_cannot_hold_is_refused_not_encrypted_to_zeros_or_inf(scale):
    cipher = cipher_for_key(generate_key("dcpe", scale=scale))
    with pytest.raises(InvalidInputError, match="float32") as error:
        cipher.encrypt(rows())
    assert "\n" not in str(error.value)
    assert np.isfinite(cipher.decrypt(cipher.encrypt(rows().astype(np.float64)))).all()  # float64 holds both
