"""CLI: keygen / encrypt / decrypt / inspect / bench, exit codes, no output on failure."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from shufflebits.ciphers import cipher_names, spec
from shufflebits.cli import main
from shufflebits.features import load_features, save_features


@pytest.fixture()
def plain(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    x[0, :3] = [np.nan, -0.0, np.inf]
    path = tmp_path / "plain.npz"
    save_features(path, x, [f"q/{i:04d}.jpg" for i in range(6)], pids=np.arange(6), camids=np.ones(6))
    return path, x


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", cipher_names(exact=True))  # the float-valued ones refuse NaN: below
def test_keygen_encrypt_decrypt_round_trip(tmp_path, capsys, plain, name):
    path, x = plain
    key = tmp_path / "key.json"
    code, out, _ = run(capsys, "keygen", "--cipher", name, "--out", key)
    assert code == 0 and "fingerprint" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert run(capsys, "encrypt", "--key", key, path, tmp_path / "enc.npz")[0] == 0
    assert run(capsys, "decrypt", "--key", key, tmp_path / "enc.npz", tmp_path / "dec.npz")[0] == 0
    back = load_features(tmp_path / "dec.npz")
    assert back.features.tobytes() == x.tobytes()
    assert back.image_paths[5] == "q/0005.jpg" and back.pids.tolist() == list(range(6))
    assert run(capsys, "decrypt", "--key", key, tmp_path / "enc.npz", tmp_path / "dec.npy")[0] == 0
    assert np.load(tmp_path / "dec.npy").tobytes() == x.tobytes()


@pytest.mark.parametrize("name", cipher_names(exact=False, homomorphic=False))  # ckks: test_ckks_matrix.py
def test_searchable_ciphers_through_the_cli(tmp_path, capsys, plain, name):
    path, x = plain
    key, enc, dec = tmp_path / "key.json", tmp_path / "enc.npz", tmp_path / "dec.npz"
    assert run(capsys, "keygen", "--cipher", name, "--out", key)[0] == 0
    code, _, err = run(capsys, "encrypt", "--key", key, path, enc)
    assert code == 2 and "finite features" in err and not enc.exists()  # the plaintext holds NaN and Inf
    finite = tmp_path / "finite.npz"
    save_features(finite, np.nan_to_num(x, posinf=1.0), pids=np.arange(6), camids=np.ones(6))
    assert run(capsys, "encrypt", "--key", key, finite, enc)[0] == 0
    code, _, err = run(capsys, "decrypt", "--key", key, enc, dec)
    if spec(name).invertible:
        assert code == 0
        np.testing.assert_allclose(load_features(dec).features, np.nan_to_num(x, posinf=1.0), atol=1e-5)
    else:
        assert code == 2 and "cannot be decrypted" in err and not dec.exists()


def test_seed_key_warns_and_matches_paper(tmp_path, capsys, plain):
    _path, _x = plain
    code, _, err = run(capsys, "keygen", "--cipher", "shufflebits", "--seed", "0", "--out", tmp_path / "k.json")
    assert code == 0 and "INSECURE" in err
    code, _, err = run(capsys, "keygen", "--cipher", "chacha20", "--seed", "0", "--out", tmp_path / "c.json")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "c.json").exists()


def test_inspect_never_prints_key_material(tmp_path, capsys, plain):
    path, _ = plain
    key = tmp_path / "k.json"
    run(capsys, "keygen", "--cipher", "shufflebits-otp", "--out", key)
    record = json.loads(key.read_text())
    code, out, _ = run(capsys, "inspect", key)
    assert code == 0 and record["fingerprint"] in out and "one-time" in out
    assert record["material"] not in out
    run(capsys, "encrypt", "--key", key, path, tmp_path / "e.npz")
    code, out, _ = run(capsys, "inspect", tmp_path / "e.npz")
    assert code == 0 and "shufflebits-otp" in out and "[6, 16]" in out and record["material"] not in out
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0 and "plaintext" in out


def test_failures_are_one_line_with_no_output_file(tmp_path, capsys, plain):
    path, _ = plain
    key, other = tmp_path / "k.json", tmp_path / "o.json"
    run(capsys, "keygen", "--cipher", "chacha20", "--out", key)
    run(capsys, "keygen", "--cipher", "chacha20", "--out", other)
    code, _, err = run(capsys, "keygen", "--cipher", "chacha20", "--out", key)
    assert code == 2 and "refusing to overwrite" in err
    run(capsys, "encrypt", "--key", key, path, tmp_path / "e.npz")
    data = (tmp_path / "e.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:-200])
    np.save(tmp_path / "ints.npy", np.zeros((2, 3), np.int64))
    cases = [
        (("decrypt", "--key", other, tmp_path / "e.npz", tmp_path / "out1.npz"), "wrong key"),
        (("decrypt", "--key", key, tmp_path / "cut.npz", tmp_path / "out2.npz"), "truncated"),
        (("encrypt", "--key", key, tmp_path / "ints.npy", tmp_path / "out3.npz"), "cannot encrypt dtype"),
        (("encrypt", "--key", key, tmp_path / "missing.npz", tmp_path / "out4.npz"), "does not exist"),
        (("encrypt", "--key", path, path, tmp_path / "out5.npz"), "not a shufflebits key file"),
        (("decrypt", "--key", key, path, tmp_path / "out6.npz"), "not an encrypted"),
        (("inspect", tmp_path / "nothing.json"), "does not exist"),
    ]
    for argv, message in cases:
        code, _out, err = run(capsys, *argv)
        assert code == 2, argv
        assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*tmp"))


def test_files_that_cannot_round_trip_are_refused(tmp_path, capsys, plain):
    """Found by hand: a 1-D .npy was encrypted (then crashed), a .npy given to decrypt raised TypeError."""
    path, _ = plain
    key = tmp_path / "k.json"
    run(capsys, "keygen", "--cipher", "shufflebits", "--out", key)
    np.save(tmp_path / "flat.npy", np.zeros(8, np.float32))
    np.save(tmp_path / "plain.npy", np.zeros((2, 8), np.float32))
    (tmp_path / "folder.npz").mkdir()
    cases = [
        (("encrypt", "--key", key, tmp_path / "flat.npy", tmp_path / "out1.npz"), "must be 2-D"),
        (("decrypt", "--key", key, tmp_path / "plain.npy", tmp_path / "out2.npy"), "not an encrypted"),
        (("encrypt", "--key", key, path, tmp_path / "folder.npz"), f"Is a directory: {tmp_path / 'folder.npz'}"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*tmp"))


def test_bench_json_small(capsys):
    code, out, _ = run(capsys, "bench", "--json", "--size-mib", "0.25")
    rows = json.loads(out)
    assert code == 0
    names = {row["name"] for row in rows}
    assert {"numpy copy", "AES-256-GCM (cryptography, one call)", "ShuffleBits fixed"} <= names
    assert all(row["mfloat_per_s"] > 0 for row in rows)
    by_name = {row["name"]: row for row in rows}
    # each ratio is the row's rate over its named baseline's, recomputed here from the rates alone
    aes = by_name["AES-256-GCM (cryptography, one call)"]["mfloat_per_s"]
    aes_allocating = by_name["AES-256-GCM (cryptography, one call, alloc)"]["mfloat_per_s"]
    reference = by_name["per-element reference (pure Python, extrapolated)"]["mfloat_per_s"]
    for row in rows:
        assert row["ratio_vs_aes_gcm"] == pytest.approx(row["mfloat_per_s"] / aes), row["name"]
        assert row["ratio_vs_aes_gcm_allocating"] == pytest.approx(row["mfloat_per_s"] / aes_allocating), row["name"]
        assert row["ratio_vs_reference"] == pytest.approx(row["mfloat_per_s"] / reference), row["name"]
        # throughput seconds are for the whole 0.25 MiB (65536 floats), also where only a sample was timed;
        # latency and setup rows time single calls
        floats = 0.25 * 2**20 / 4 if row["kind"] == "throughput" else (65536 if "d=65,536" in row["name"] else 512)
        assert row["seconds"] * row["mfloat_per_s"] * 1e6 == pytest.approx(floats), row["name"]
        assert row["mfloat_per_s"] >= row["mfloat_per_s_median"] >= row["mfloat_per_s_worst"] > 0, row["name"]
    latency = {row["name"]: row for row in rows if row["kind"] != "throughput"}
    for name in cipher_names(homomorphic=False):  # every row cipher has a single-vector latency row, in µs
        row = latency[f"{name}, cipher.encrypt, 1 vector"]
        assert row["latency_us_min"] <= row["latency_us"] <= row["latency_us_max"]
        assert row["latency_us"] == pytest.approx(row["seconds_median"] * 1e6)
    assert "shufflebits-dim key setup, d=65,536" in latency
    assert [row["name"] for row in rows if row["extrapolated"]] == [
        "per-element reference (pure Python, extrapolated)",
        "ChaChaPad, device kernel (1/16 of the data)",
        "ChaChaPad, device kernel (1/16 of the data), 1 thread",
    ]


def test_encrypt_and_decrypt_keep_an_existing_output_unless_forced(tmp_path, capsys, plain):
    path, x = plain
    key = tmp_path / "k.json"
    run(capsys, "keygen", "--cipher", "chacha20", "--out", key)
    enc, dec = tmp_path / "e.npz", tmp_path / "d.npz"
    assert run(capsys, "encrypt", "--key", key, path, enc)[0] == 0
    assert run(capsys, "decrypt", "--key", key, enc, dec)[0] == 0
    before = {enc: enc.read_bytes(), dec: dec.read_bytes()}
    for argv, output in ((("encrypt", "--key", key, path, enc), enc), (("decrypt", "--key", key, enc, dec), dec)):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err == f"shufflebits: error: {output} exists; pass --force to replace it\n"
        assert output.read_bytes() == before[output]
    assert run(capsys, "encrypt", "--key", key, path, enc, "--force")[0] == 0
    assert enc.read_bytes() != before[enc]  # fresh nonces: a new ciphertext replaced the old one
    assert run(capsys, "decrypt", "--key", key, enc, dec, "--force")[0] == 0
    assert load_features(dec).features.tobytes() == x.tobytes()


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"shufflebits {version('shufflebits')}\n"


def test_bench_cost_refuses_an_empty_gallery_in_one_line(capsys):
    code, out, err = run(capsys, "bench", "--cost", "--templates", "0")
    assert code == 2 and not out and err == "shufflebits: error: --templates must be at least 1\n"


def test_bench_prints_each_row_once_in_words(capsys):
    from shufflebits.ciphers.bench import run_benchmark

    code, out, err = run(capsys, "bench", "--size-mib", "0.25")
    assert code == 0
    names = {f"{row['name']} [{row['kernel']}]" for row in run_benchmark(size_mib=0.01, progress=False)}
    for name in names:
        assert (out + err).count(f"{name} ") == 1, name
    assert "million float32/s" in out and "× AES-GCM" in out
    assert "_per_s" not in out + err and "ratio_vs" not in out + err and "issue" not in out + err


def test_seed_keys_are_refused_unless_asked_for(tmp_path, capsys, plain):
    path, x = plain
    key = tmp_path / "seed.json"
    run(capsys, "keygen", "--cipher", "shufflebits", "--seed", "424242", "--out", key)
    code, _, err = run(capsys, "encrypt", "--key", key, path, tmp_path / "e.npz")
    assert code == 2 and "--insecure-seed-key" in err and err.count("\n") == 1
    assert not (tmp_path / "e.npz").exists()
    code, _, err = run(capsys, "encrypt", "--insecure-seed-key", "--key", key, path, tmp_path / "e.npz")
    assert code == 0 and "INSECURE" in err
    code, _, err = run(capsys, "decrypt", "--key", key, tmp_path / "e.npz", tmp_path / "d.npy")
    assert code == 2 and "--insecure-seed-key" in err and not (tmp_path / "d.npy").exists()
    assert run(capsys, "decrypt", "--insecure-seed-key", "--key", key, tmp_path / "e.npz", tmp_path / "d.npy")[0] == 0
    assert np.load(tmp_path / "d.npy").tobytes() == x.tobytes()
    code, _, err = run(capsys, "serve", "--model", "osnet_x0_25", "--encrypt-with", key, "--token", "t")
    assert code == 2 and "--insecure-seed-key" in err


def test_cli_says_whether_ciphertext_is_authenticated(tmp_path, capsys, plain):
    from shufflebits.ciphers import create_cipher, save_key
    from shufflebits.ciphers.files import save_encrypted

    path, x = plain
    key = tmp_path / "k.json"
    run(capsys, "keygen", "--cipher", "chacha20", "--out", key)
    run(capsys, "encrypt", "--key", key, path, tmp_path / "e.npz")
    code, out, _ = run(capsys, "inspect", tmp_path / "e.npz")
    assert code == 0 and "authenticated=True (1 sealed batch)" in out
    cipher = create_cipher("chacha20")
    save_key(tmp_path / "raw.json", cipher.key)
    save_encrypted(tmp_path / "raw.npz", cipher, cipher.encrypt(x))  # raw, untagged (the in-model output)
    code, out, _ = run(capsys, "inspect", tmp_path / "raw.npz")
    assert code == 0 and "authenticated=False" in out
    code, _, err = run(capsys, "decrypt", "--key", tmp_path / "raw.json", tmp_path / "raw.npz", tmp_path / "d.npy")
    assert code == 0 and "authenticated=False" in err
    assert np.load(tmp_path / "d.npy").tobytes() == x.tobytes()


def test_bench_compiled_rows_only_when_asked_and_named_for_the_kernel_that_ran(no_torch_compile):
    """Without a working compiler the opt-in rows still come, labelled as the eager fallback they timed."""
    from shufflebits.ciphers.bench import run_benchmark

    assert not any("compiled" in row["name"] for row in run_benchmark(size_mib=0.01, progress=False))
    with pytest.warns(UserWarning, match="torch.compile unavailable"):
        rows = {row["name"]: row for row in run_benchmark(size_mib=0.01, progress=False, compiled=True)}
    for name in (
        "ChaChaPad, compiled device kernel (1/16 of the data)",
        "ChaChaPad, compiled device kernel (1/16 of the data), 1 thread",
        "ChaChaPad, compiled device kernel: compile once",
    ):
        assert rows[name]["kernel"] == "torch ops on cpu (torch.compile unavailable)", name
    assert rows["ChaChaPad, compiled device kernel (1/16 of the data)"]["extrapolated"]


def test_odd_key_and_feature_files_are_one_line_errors(tmp_path, capsys, plain):
    """A key file nested too deep, string pids and encrypted members declaring huge shapes: exit 2, one line."""
    import io
    import zipfile

    path, _ = plain
    key = tmp_path / "k.json"
    run(capsys, "keygen", "--cipher", "chacha20", "--out", key)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for argv in (("inspect", deep), ("encrypt", "--key", deep, path, tmp_path / "o.npz")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "not a shufflebits key file" in err and err.count("\n") == 1, err
    strings = tmp_path / "strings.npz"
    np.savez(strings, accumulated_feature_array=np.zeros((2, 4), np.float32), pids=np.array(["a", "b"]))
    code, _, err = run(capsys, "encrypt", "--key", key, strings, tmp_path / "o.npz")
    assert code == 2 and "pids must be" in err and err.count("\n") == 1 and not (tmp_path / "o.npz").exists()
    assert run(capsys, "encrypt", "--key", key, path, tmp_path / "e.npz")[0] == 0
    huge = tmp_path / "huge.npz"  # members stored raw (as encrypt writes them), one declaring 2**40 words
    with zipfile.ZipFile(tmp_path / "e.npz") as source, zipfile.ZipFile(huge, "w") as target:
        for name in source.namelist():
            blob = source.read(name)
            if name == "ciphertext.npy":
                header = {"descr": "<u4", "fortran_order": False, "shape": (2**20, 2**20)}
                buffer = io.BytesIO()
                np.lib.format.write_array_header_1_0(buffer, header)
                blob = buffer.getvalue() + bytes(64)
            target.writestr(name, blob)
    for argv in (("inspect", huge), ("decrypt", "--key", key, huge, tmp_path / "d.npz")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "cannot read" in err and err.count("\n") == 1, err
    assert not (tmp_path / "d.npz").exists()
