"""Parquet feature stores: schemas, streamed encrypt/decrypt per cipher, tags, bad input, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shufflebits.ciphers import cipher_names, create_cipher, spec
from shufflebits.cli import main
from shufflebits.errors import IntegrityError, ShuffleBitsError, WrongKeyError
from shufflebits.stores import decrypt_store, encrypt_store, read_plain, read_store, schema, write_plain
from shufflebits.stores.plain import plain_batches
from shufflebits.stores.schema import TAGS_KEY

N, D = 50, 8


@pytest.fixture()
def features():
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    x[0, :3] = [np.nan, -0.0, np.inf]  # bits, not values, must survive
    return x


@pytest.fixture()
def store(tmp_path, features):
    """A plaintext store with labels, paths and two columns no shufflebits code knows (one with nulls)."""
    path = tmp_path / "plain.parquet"
    table = pa.table(
        {
            "id": [f"img{i:03d}" for i in range(N)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), D),
            "path": [f"q/{i:03d}.jpg" for i in range(N)],
            "pid": pa.array(np.arange(N) // 5, pa.int32()),
            "camid": np.arange(N) % 3,
            "score": np.linspace(0, 1, N),
            "note": [None if i % 7 else f"n{i}" for i in range(N)],
        }
    )
    pq.write_table(table, path, row_group_size=20)  # written by plain pyarrow: no shufflebits metadata
    return path, table


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def rewrite(source, target, change):
    """Copy an encrypted store group by group through ``change(index, table)``, keeping its metadata and tags."""
    parquet = pq.ParquetFile(source)
    footer = parquet.metadata.metadata[TAGS_KEY]
    with pq.ParquetWriter(target, parquet.schema_arrow) as writer:
        for index in range(parquet.metadata.num_row_groups):
            table = change(index, parquet.read_row_group(index))
            if table is not None:
                writer.write_table(table, row_group_size=max(1, table.num_rows))
        writer.add_key_value_metadata({TAGS_KEY: footer})


@pytest.mark.parametrize("name", cipher_names(exact=True))
def test_encrypt_decrypt_round_trips_every_column_bit_exact(tmp_path, store, features, name):
    path, table = store
    cipher = create_cipher(name)
    sealed = encrypt_store(path, tmp_path / "enc.parquet", cipher, rows=16)
    assert (sealed.rows, sealed.dim) == (N, D)
    groups = pq.ParquetFile(tmp_path / "enc.parquet").metadata
    counts = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
    assert max(counts) == 16 and sum(counts) == N and len(counts) == sealed.row_groups  # bounded batches
    encrypted = pq.read_table(tmp_path / "enc.parquet")
    assert "vector" not in encrypted.column_names and (
        ("nonce" in encrypted.column_names) == bool(spec(name).nonce_bytes)
    )
    decrypt_store(tmp_path / "enc.parquet", tmp_path / "dec.parquet", cipher)
    back = pq.read_table(tmp_path / "dec.parquet")
    assert back.column_names == table.column_names
    for column in table.column_names:
        if column != "vector":
            assert back.column(column).to_pylist() == table.column(column).to_pylist(), column
    vectors = np.asarray(back.column("vector").combine_chunks().flatten()).reshape(N, D)
    assert vectors.view(np.uint32).tolist() == features.view(np.uint32).tolist()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", cipher_names(exact=False))
def test_approximate_ciphers_are_refused_before_anything_is_written(tmp_path, store, name):
    with pytest.raises(ShuffleBitsError, match="bit-exact"):
        encrypt_store(store[0], tmp_path / "enc.parquet", create_cipher(name))
    assert not (tmp_path / "enc.parquet").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", cipher_names(nonce_bytes=0, exact=True))
def test_deterministic_ciphertext_is_the_in_memory_ciphers(tmp_path, store, features, name):
    path, _ = store
    cipher = create_cipher(name)
    encrypt_store(path, tmp_path / "enc.parquet", cipher)
    column = pq.read_table(tmp_path / "enc.parquet").column("ciphertext").combine_chunks()
    stored = np.frombuffer(column.buffers()[1], np.uint8).reshape(N, -1)
    expected = np.ascontiguousarray(cipher.encrypt(features).payload()).view(np.uint8)
    assert stored.tobytes() == expected.tobytes()


def test_reads_drop_each_row_group_from_the_page_cache_once_its_rows_are_read(store, monkeypatch):
    path, _ = store
    drops = []
    monkeypatch.setattr(
        schema, "drop_row_groups", lambda _file, _parquet, first, stop: drops.extend(range(first, stop))
    )
    meta = pq.ParquetFile(path).metadata
    ends = np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    read = 0
    for batch in plain_batches(path, rows=16)[1]:  # batches that straddle row groups
        read += batch.num_rows
        assert drops == [group for group, end in enumerate(ends) if end <= read]
    assert drops == list(range(meta.num_row_groups))


@pytest.mark.skipif(not schema.DROP_BEHIND, reason="drop-behind needs posix_fadvise")
def test_streams_drop_the_pages_they_read_and_write_and_keep_every_byte(tmp_path, store, features, monkeypatch):
    path, _ = store
    advised = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        advised.append((os.fstat(fd).st_ino, offset, offset + length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    monkeypatch.setattr(schema, "DROP_BYTES", 1)  # a step per write
    cipher = create_cipher("chacha20")
    encrypt_store(path, tmp_path / "enc.parquet", cipher, rows=16)
    decrypt_store(tmp_path / "enc.parquet", tmp_path / "dec.parquet", cipher)
    written = [start for inode, start, _ in advised if inode == (tmp_path / "dec.parquet").stat().st_ino]
    assert written[0] == 0 and written == sorted(written)  # steps from the start of the file, in order
    for file in (path, tmp_path / "enc.parquet", tmp_path / "dec.parquet"):  # read; written, then read; written
        spans = [(start, stop) for inode, start, stop in advised if inode == file.stat().st_ino]
        assert spans and max(stop for _, stop in spans) <= file.stat().st_size, file.name
    assert read_plain(tmp_path / "dec.parquet").features.tobytes() == features.tobytes()
    assert leftovers(tmp_path) == []


def test_write_and_read_plain_and_a_folder_store(tmp_path, features):
    folder = tmp_path / "store"
    folder.mkdir()
    pids = np.arange(N) % 4
    write_plain(
        folder / "part-0.parquet", features[:30], [f"a{i}" for i in range(30)], pids=pids[:30], camids=pids[:30]
    )
    write_plain(
        folder / "part-1.parquet", features[30:], [f"b{i}" for i in range(20)], pids=pids[30:], camids=pids[30:]
    )
    loaded = read_plain(folder)
    assert loaded.features.tobytes() == features.tobytes() and loaded.pids.tolist() == pids.tolist()
    cipher = create_cipher("chacha20")
    encrypt_store(folder, tmp_path / "enc.parquet", cipher)
    assert read_store(tmp_path / "enc.parquet", cipher).features.tobytes() == features.tobytes()


def test_bad_plaintext_stores_are_one_line_errors_with_no_output(tmp_path, features):
    cipher = create_cipher("shufflebits-dim")
    cases = {
        "novec.parquet": pa.table({"id": ["a"], "values": [1.0]}),
        "f64.parquet": pa.table({"id": ["a"], "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0]), 2)}),
        "intid.parquet": pa.table(
            {"id": [1], "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0], pa.float32()), 1)}
        ),
    }
    for name, table in cases.items():
        pq.write_table(table, tmp_path / name)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    for name, message in [
        ("novec.parquet", "needs columns 'id'"),
        ("f64.parquet", "fixed-size list of float32"),
        ("intid.parquet", "must be string"),
        ("junk.parquet", "not a Parquet file"),
        ("missing.parquet", "does not exist"),
    ]:
        with pytest.raises(ShuffleBitsError, match=message) as error:
            encrypt_store(tmp_path / name, tmp_path / "out.parquet", cipher)
        assert "\n" not in str(error.value)
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_plain(folder / "a.parquet", features)
    write_plain(folder / "b.parquet", features[:, :4].copy())
    with pytest.raises(ShuffleBitsError, match="differ"):
        encrypt_store(folder, tmp_path / "out.parquet", cipher)
    assert not (tmp_path / "out.parquet").exists() and leftovers(tmp_path) == []


def test_tampered_encrypted_stores_fail_and_write_nothing(tmp_path, store):
    path, _ = store
    cipher = create_cipher("shufflebits-otp")
    encrypt_store(path, tmp_path / "enc.parquet", cipher, rows=10)  # 5 row groups

    def flip_bit(index, table):
        if index != 3:
            return table
        rows = np.frombuffer(table.column("ciphertext").combine_chunks().buffers()[1], np.uint8).copy()
        rows[5] ^= 1
        column = pa.FixedSizeBinaryArray.from_buffers(
            table.schema.field("ciphertext").type, table.num_rows, [None, pa.py_buffer(rows)]
        )
        return table.set_column(table.schema.get_field_index("ciphertext"), table.schema.field("ciphertext"), column)

    def swap_ids(index, table):
        ids = table.column("id").to_pylist()
        ids[0], ids[1] = ids[1], ids[0]
        return table.set_column(0, table.schema.field("id"), pa.array(ids))

    def drop_nonces(index, table):
        return table.drop_columns(["nonce"])

    cases = {
        "flip": (lambda i, t: flip_bit(i, t), IntegrityError, "row group 3"),
        "ids": (swap_ids, IntegrityError, "row group 0"),
        "drop": (lambda i, t: None if i == 4 else t, IntegrityError, "truncated or spliced"),
        "order": (None, IntegrityError, "row group 0"),
    }
    for name, (change, error_type, message) in cases.items():
        target = tmp_path / f"{name}.parquet"
        if change is None:  # the same groups, two swapped
            parquet = pq.ParquetFile(tmp_path / "enc.parquet")
            order = [1, 0, 2, 3, 4]
            rewrite(tmp_path / "enc.parquet", target, lambda i, t: parquet.read_row_group(order[i]))
        else:
            rewrite(tmp_path / "enc.parquet", target, change)
        with pytest.raises(error_type, match=message):
            decrypt_store(target, tmp_path / "out.parquet", cipher)
    # A missing nonce column changes the schema: the header's column list no longer matches.
    parquet = pq.ParquetFile(tmp_path / "enc.parquet")
    schema = parquet.schema_arrow.remove(parquet.schema_arrow.get_field_index("nonce"))
    with pq.ParquetWriter(tmp_path / "nononce.parquet", schema) as writer:
        writer.write_table(parquet.read().drop_columns(["nonce"]).cast(schema))
        writer.add_key_value_metadata({TAGS_KEY: parquet.metadata.metadata[TAGS_KEY]})
    with pytest.raises(ShuffleBitsError, match="'nonce' column, which is missing"):
        decrypt_store(tmp_path / "nononce.parquet", tmp_path / "out.parquet", cipher)
    # No tags at all (rewritten by another tool).
    header_only = {b"shufflebits": parquet.metadata.metadata[b"shufflebits"]}
    pq.write_table(parquet.read().replace_schema_metadata(header_only), tmp_path / "untagged.parquet")
    with pytest.raises(IntegrityError, match="tags missing"):
        decrypt_store(tmp_path / "untagged.parquet", tmp_path / "out.parquet", cipher)
    with pytest.raises(WrongKeyError):
        decrypt_store(tmp_path / "enc.parquet", tmp_path / "out.parquet", create_cipher("shufflebits-otp"))
    with pytest.raises(ShuffleBitsError, match="key is for 'chacha20'"):
        decrypt_store(tmp_path / "enc.parquet", tmp_path / "out.parquet", create_cipher("chacha20"))
    assert not (tmp_path / "out.parquet").exists() and leftovers(tmp_path) == []


def test_a_store_mixing_key_fingerprints_is_refused(tmp_path, store):
    path, _ = store
    folder = tmp_path / "enc"
    folder.mkdir()
    first, second = create_cipher("chacha20"), create_cipher("chacha20")
    encrypt_store(path, folder / "a.parquet", first)
    encrypt_store(path, folder / "b.parquet", second)
    with pytest.raises(ShuffleBitsError, match="mixes key fingerprints") as error:
        decrypt_store(folder, tmp_path / "out.parquet", first)
    assert "\n" not in str(error.value) and not (tmp_path / "out.parquet").exists()
    (folder / "b.parquet").unlink()
    encrypt_store(path, folder / "b.parquet", first)  # same key, another file: each file has its own tags
    assert read_store(folder, first).features.shape == (2 * N, D)


def test_cli_extracted_store_encrypt_inspect_decrypt_reid(tmp_path, capsys, features):
    key = tmp_path / "k.json"
    pids, camids = np.arange(N) % 10, np.arange(N) // 10 % 2
    write_plain(tmp_path / "g.parquet", features[:, 3:] + 5, pids=pids, camids=camids)  # finite values only
    assert main(["keygen", "--cipher", "aes-gcm", "--out", str(key)]) == 0
    assert main(["encrypt", "--key", str(key), str(tmp_path / "g.parquet"), str(tmp_path / "e.parquet")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "e.parquet")]) == 0
    out = capsys.readouterr().out
    assert "encrypted feature store" in out and "aes-gcm" in out and json.loads(key.read_text())["material"] not in out
    plain = ["--query", str(tmp_path / "g.parquet"), "--gallery", str(tmp_path / "g.parquet"), "--json"]
    assert main(["reid", *plain]) == 0
    expected = json.loads(capsys.readouterr().out)
    sealed = ["--query", str(tmp_path / "e.parquet"), "--gallery", str(tmp_path / "e.parquet"), "--json"]
    assert main(["reid", *sealed, "--key", str(key)]) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert main(["reid", *plain, "--backend", "faiss"]) == 0
    through_faiss = json.loads(capsys.readouterr().out)
    assert through_faiss.pop("backend") == "faiss" and expected.pop("backend") == "numpy"
    assert through_faiss["cmc"] == expected["cmc"] and through_faiss["num_query"] == expected["num_query"]
    assert main(["reid", *sealed]) == 2  # encrypted without a key: a one-line error
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["decrypt", "--key", str(key), str(tmp_path / "e.parquet"), str(tmp_path / "e.npz")]) == 2
    assert main(["decrypt", "--key", str(key), str(tmp_path / "e.parquet"), str(tmp_path / "d.parquet")]) == 0
    assert read_plain(tmp_path / "d.parquet").features.tobytes() == (features[:, 3:] + 5).tobytes()
