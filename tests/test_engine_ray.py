"""``--engine ray``: the store pipelines on a local Ray (2 CPUs) give what the local engine gives.

References are the local engine's outputs on the same input and key: bit-identical
ciphertext for the deterministic fixed ShuffleBits, identical plaintext after a local
decryption for the nonce ciphers, the local extractor's features. One Ray instance
serves the module (starting it costs seconds; each pipeline run starts its actors).
"""

from __future__ import annotations

import socket
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from shufflebits.ciphers import cipher_for_key, load_key
from shufflebits.cli import main
from shufflebits.engine import on_ray
from shufflebits.errors import ShuffleBitsError
from shufflebits.stores import encrypt_store, read_plain, write_plain
from shufflebits.stores.schema import CIPHERTEXT, NONCE, TAGS_KEY

N, D = 70, 16


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture()
def store(tmp_path):
    """A plain-pyarrow store of 4 row groups with labels and a column with nulls (carried in the clear)."""
    x = np.random.default_rng(1).standard_normal((N, D)).astype(np.float32)
    x[0, :3] = [np.nan, -0.0, np.inf]
    table = pa.table(
        {
            "id": [f"img{i:03d}" for i in range(N)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), D),
            "pid": np.arange(N) // 5,
            "camid": np.arange(N) % 3,
            "note": [None if i % 7 else f"n{i}" for i in range(N)],
        }
    )
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=20)
    return tmp_path / "plain.parquet", x


def groups(path):
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def leftovers(folder):
    """Temporary files an atomic write would leave behind if it failed to clean up."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def keygen(tmp_path, cipher):
    key = tmp_path / f"{cipher}.key"
    assert main(["keygen", "--cipher", cipher, "--out", str(key)]) == 0
    return key


def crypt(action, key, source, target, *engine):
    assert main([action, "--key", str(key), str(source), str(target), *engine]) == 0


RAY = ("--engine", "ray", "--workers", "2")


def test_fixed_shufflebits_on_ray_is_bit_identical_to_local(tmp_path, ray_local, store):
    source, x = store
    key = keygen(tmp_path, "shufflebits")
    crypt("encrypt", key, source, tmp_path / "local.parquet")
    crypt("encrypt", key, source, tmp_path / "ray.parquet", *RAY)
    local, ray = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert ray.schema.names == local.schema.names
    assert groups(tmp_path / "ray.parquet") == groups(tmp_path / "local.parquet")
    for name in local.schema.names:
        assert ray.column(name).to_pylist() == local.column(name).to_pylist(), name
    crypt("decrypt", key, tmp_path / "ray.parquet", tmp_path / "back.parquet")  # local engine: tags and seals hold
    assert read_plain(tmp_path / "back.parquet").features.tobytes() == x.tobytes()
    assert main(["inspect", str(tmp_path / "ray.parquet")]) == 0


@pytest.mark.parametrize("cipher", ["chacha20", "shufflebits-otp", "aes-gcm"])
def test_nonce_ciphers_on_ray_decrypt_to_the_plaintext(tmp_path, ray_local, store, cipher):
    source, x = store
    key = keygen(tmp_path, cipher)
    crypt("encrypt", key, source, tmp_path / "ray.parquet", *RAY)
    sealed = pq.read_table(tmp_path / "ray.parquet")
    nonces = sealed.column(NONCE).to_pylist()
    assert len(set(nonces)) == N  # no nonce repeats across the workers' batches
    assert sealed.column(CIPHERTEXT).to_pylist() != [bytes(row) for row in x.view(np.uint8)]
    crypt("decrypt", key, tmp_path / "ray.parquet", tmp_path / "local_back.parquet")
    crypt("decrypt", key, tmp_path / "ray.parquet", tmp_path / "ray_back.parquet", *RAY)
    for back in ("local_back", "ray_back"):
        plain = read_plain(tmp_path / f"{back}.parquet")
        assert plain.features.tobytes() == x.tobytes()
        assert (
            pq.read_table(tmp_path / f"{back}.parquet").column("note").to_pylist()
            == pq.read_table(source).column("note").to_pylist()
        )


def test_small_batches_spread_over_both_workers_keep_the_local_layout(tmp_path, ray_local, store):
    source, x = store
    cipher = cipher_for_key(load_key(keygen(tmp_path, "chacha20")))
    encrypt_store(source, tmp_path / "local.parquet", cipher, rows=8)
    on_ray.encrypt_store_on_ray(source, tmp_path / "ray.parquet", cipher, rows=8, workers=2)
    assert groups(tmp_path / "ray.parquet") == groups(tmp_path / "local.parquet") == [8] * 8 + [6]
    assert len(set(pq.read_table(tmp_path / "ray.parquet").column(NONCE).to_pylist())) == N
    on_ray.decrypt_store_on_ray(tmp_path / "ray.parquet", tmp_path / "back.parquet", cipher, workers=2)
    assert groups(tmp_path / "back.parquet") == groups(tmp_path / "ray.parquet")
    assert read_plain(tmp_path / "back.parquet").features.tobytes() == x.tobytes()


def test_an_empty_store_round_trips_on_ray(tmp_path, ray_local):
    write_plain(tmp_path / "empty.parquet", np.zeros((0, D), np.float32))
    cipher = cipher_for_key(load_key(keygen(tmp_path, "chacha20")))
    on_ray.encrypt_store_on_ray(tmp_path / "empty.parquet", tmp_path / "enc.parquet", cipher)
    on_ray.decrypt_store_on_ray(tmp_path / "enc.parquet", tmp_path / "back.parquet", cipher)
    assert read_plain(tmp_path / "back.parquet").features.shape == (0, D)


def test_a_tampered_row_group_fails_on_a_worker_in_one_line_and_leaves_nothing(tmp_path, ray_local, store, capsys):
    source, _ = store
    key = keygen(tmp_path, "shufflebits-otp")
    encrypt_store(source, tmp_path / "enc.parquet", cipher_for_key(load_key(key)), rows=10)
    parquet = pq.ParquetFile(tmp_path / "enc.parquet")
    with pq.ParquetWriter(tmp_path / "bad.parquet", parquet.schema_arrow) as writer:
        for index in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(index)
            if index == 5:  # one id changed: the group's tag no longer holds
                ids = table.column("id").to_pylist()
                table = table.set_column(0, table.schema.field("id"), pa.array(["forged", *ids[1:]]))
            writer.write_table(table, row_group_size=table.num_rows)
        writer.add_key_value_metadata({TAGS_KEY: parquet.metadata.metadata[TAGS_KEY]})
    capsys.readouterr()
    assert main(["decrypt", "--key", str(key), str(tmp_path / "bad.parquet"), str(tmp_path / "out.parquet"), *RAY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "authentication failed in row group 5" in err, err
    assert not (tmp_path / "out.parquet").exists() and leftovers(tmp_path) == []


def test_engine_ray_refuses_npz_in_one_line(tmp_path, capsys):
    key = keygen(tmp_path, "shufflebits")
    np.savez(tmp_path / "f.npz", features=np.zeros((2, 4), np.float32))
    capsys.readouterr()
    assert main(["encrypt", "--key", str(key), str(tmp_path / "f.npz"), str(tmp_path / "e.npz"), *RAY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Parquet feature stores" in err
    assert not (tmp_path / "e.npz").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "2"], "--workers needs --engine ray"),
        (["--ray-address", "auto"], "--ray-address needs --engine ray"),
        (["--engine", "ray", "--workers", "0"], "--workers must be positive, got 0"),
    ],
)
def test_ray_flags_are_checked_before_anything_runs(tmp_path, store, capsys, flags, message):
    source, _ = store
    key = keygen(tmp_path, "shufflebits")
    capsys.readouterr()
    assert main(["encrypt", "--key", str(key), str(source), str(tmp_path / "out.parquet"), *flags]) == 2
    assert capsys.readouterr().err == f"shufflebits: error: {message}\n"
    assert not (tmp_path / "out.parquet").exists()


def test_extract_on_ray_gives_the_local_features(tmp_path, ray_local):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(10):
        pixels = rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i // 2:04d}_c{1 + i % 2}s1_{i:06d}_00.png")
    zoo = ["--model", "osnet_x0_25", "--pretrained", "osnet_x0_25-synth-128x64"]
    base = ["extract", *zoo, "--images", str(folder), "--batch-size", "4"]
    assert main([*base, "--out", str(tmp_path / "local.parquet"), "--quiet"]) == 0
    assert main([*base, "--out", str(tmp_path / "ray.parquet"), "--quiet", *RAY]) == 0
    local, ray = read_plain(tmp_path / "local.parquet"), read_plain(tmp_path / "ray.parquet")
    assert ray.image_paths == local.image_paths
    assert np.array_equal(ray.pids, local.pids) and np.array_equal(ray.camids, local.camids)
    # Ray gives each 1-CPU actor one torch thread: convolutions may sum in another order, so within float
    # rounding of features of magnitude ~3 (a few float32 ulps there).
    np.testing.assert_allclose(ray.features, local.features, rtol=1e-5, atol=1e-5)


def test_unreachable_ray_address_is_one_line_and_writes_nothing(tmp_path, store, capsys):
    source, _ = store
    key = keygen(tmp_path, "chacha20")
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    capsys.readouterr()
    args = ["encrypt", "--key", str(key), str(source), str(tmp_path / "out.parquet"), *RAY]
    assert main([*args, "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Ray cluster" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chacha20.key", "plain.parquet"]


def test_missing_ray_names_the_extra(monkeypatch):
    from shufflebits.engine import on_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ShuffleBitsError, match=r"pip install 'shufflebits\[ray\]'"):
        with on_ray.cluster(None, 2):
            pass
