"""Dataset layouts and attribute files: real fixtures in ../shared plus tmp folders we build."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.io
from PIL import Image

from conftest import shared_file
from shufflebits.data import (
    SCHEMAS,
    load_attributes,
    load_dukemtmc,
    load_market1501,
    load_msmt17,
    save_attributes,
)
from shufflebits.errors import ShuffleBitsError

MINI = "data/market1501-mini"
MARKET_MAT = "data/attributes/market_attribute.mat"
DUKE_MAT = "data/attributes/duke_attribute.mat"


def _raw_split(path, key, split):
    table = scipy.io.loadmat(str(path))[key][0, 0][split][0, 0]
    pids = [int(np.asarray(c).reshape(-1)[0]) for c in table["image_index"].reshape(-1)]
    return table, pids


def _jpeg(path, colour=(120, 60, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 128), colour).save(path)


# --- attribute files -------------------------------------------------------------------------


def test_market_attributes_counts_and_classes():
    tables = load_attributes(shared_file(MARKET_MAT), "market")
    assert len(tables["train"]) == 751 and len(tables["test"]) == 750
    schema = SCHEMAS["market"]
    for table in tables.values():
        for labels in table.values():
            assert set(labels) == set(schema.names)
            for name, value in labels.items():
                assert -1 <= value < schema.num_classes[name]
    ages = {labels["age"] for labels in tables["train"].values()}
    assert ages == {0, 1, 2, 3}


@pytest.mark.parametrize("split", ["train", "test"])
def test_market_fields_are_read_by_name_not_position(split):
    path = shared_file(MARKET_MAT)
    table, pids = _raw_split(path, "market_attribute", split)
    labels = load_attributes(path, "market")[split]
    colours = SCHEMAS["market"].colours["up_colour"][1]
    for column in range(0, len(pids), 37):
        pid = pids[column]
        assert labels[pid]["gender"] == int(table["gender"][0, column]) - 1
        assert labels[pid]["age"] == int(table["age"][0, column]) - 1
        marked = [c for c in colours if table["up" + c][0, column] == 2]
        expected = colours.index(marked[0]) if len(marked) == 1 else -1
        assert labels[pid]["up_colour"] == expected


def test_train_and_test_colour_orders_differ_but_classes_agree():
    """The train table lists colours alphabetically, test in README order; class 0 is black in both."""
    path = shared_file(MARKET_MAT)
    train, _ = _raw_split(path, "market_attribute", "train")
    test, _ = _raw_split(path, "market_attribute", "test")
    train_colours = [f for f in train.dtype.names if f.startswith("down") and len(f) > 4]
    test_colours = [f for f in test.dtype.names if f.startswith("down") and len(f) > 4]
    assert train_colours != test_colours and sorted(train_colours) == sorted(test_colours)
    tables = load_attributes(path, "market")
    for split, table in (("train", train), ("test", test)):
        _, pids = _raw_split(path, "market_attribute", split)
        black = [pid for pid, col in zip(pids, table["downblack"][0]) if col == 2]
        assert all(tables[split][pid]["down_colour"] in (0, -1) for pid in black)
        assert sum(tables[split][pid]["down_colour"] == 0 for pid in black) > 0.8 * len(black)


def test_identities_without_a_single_colour_are_masked_or_dropped_when_strict():
    path = shared_file(MARKET_MAT)
    table, pids = _raw_split(path, "market_attribute", "train")
    up_marks = sum((table["up" + c][0] == 2).astype(int) for c in SCHEMAS["market"].colours["up_colour"][1])
    unmarked = [pid for pid, count in zip(pids, up_marks) if count != 1]
    assert len(unmarked) == 78
    lenient = load_attributes(path, "market")["train"]
    assert all(lenient[pid]["up_colour"] == -1 for pid in unmarked)
    assert all(lenient[pid]["gender"] in (0, 1) for pid in unmarked)
    strict = load_attributes(path, "market", strict=True)["train"]
    assert not set(unmarked) & set(strict)
    assert all(labels["up_colour"] >= 0 and labels["down_colour"] >= 0 for labels in strict.values())


def test_duke_attributes_missing_top_becomes_minus_one():
    tables = load_attributes(shared_file(DUKE_MAT), "duke")
    assert len(tables["train"]) == 702 and len(tables["test"]) == 1110
    missing = [pid for pid, labels in tables["train"].items() if labels["top"] == -1]
    assert len(missing) == 2
    assert set(tables["train"][missing[0]]) == set(SCHEMAS["duke"].names)
    assert SCHEMAS["duke"].num_classes["down_colour"] == 7


def test_wrong_dataset_and_corrupt_files_are_user_errors(tmp_path):
    with pytest.raises(ShuffleBitsError, match="duke_attribute"):
        load_attributes(shared_file(MARKET_MAT), "duke")
    bad = tmp_path / "market_attribute.mat"
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ShuffleBitsError, match="cannot read"):
        load_attributes(bad)
    with pytest.raises(ShuffleBitsError, match="not found"):
        load_attributes(tmp_path / "absent.mat")
    scipy.io.savemat(str(bad), {"market_attribute": {"train": {"age": np.ones((1, 2), np.uint8)}, "test": {}}})
    with pytest.raises(ShuffleBitsError, match="lacks the field"):
        load_attributes(bad)


def test_save_attributes_round_trip(tmp_path):
    tables = load_attributes(shared_file(MARKET_MAT), "market")
    save_attributes(tmp_path / "copy.mat", tables, "market")
    assert load_attributes(tmp_path / "copy.mat", "market") == tables
    duke = load_attributes(shared_file(DUKE_MAT), "duke")
    save_attributes(tmp_path / "duke.mat", duke, "duke")
    assert load_attributes(tmp_path / "duke.mat", "duke") == duke


# --- Market-1501 ------------------------------------------------------------------------------


def test_market_mini_layout_and_attributes():
    root = shared_file(MINI)
    dataset = load_market1501(root, shared_file(MARKET_MAT))
    assert (len(dataset.train), len(dataset.query), len(dataset.gallery)) == (16, 1, 1)
    assert dataset.num_train_pids == 16
    query = dataset.query[0]
    assert (query.pid, query.camid, query.split) == (1, 0, "query")
    assert dataset.gallery[0].camid == 5
    assert all(0 <= r.camid <= 5 for r in dataset.train)
    tables = load_attributes(shared_file(MARKET_MAT))
    labels = dataset.labels(dataset.train)
    assert labels.shape == (16, 12) and labels.dtype == np.int64
    for row, record in zip(labels, dataset.train):
        expected = tables["train"][record.pid]
        assert list(row) == [expected[name] for name in dataset.attribute_names]
    # query/gallery identities take the test table
    assert dataset.query[0].attributes == tables["test"][1]


def test_market_without_attribute_file_has_no_labels():
    dataset = load_market1501(shared_file(MINI))
    assert dataset.attribute_names == [] and dataset.labels(dataset.train).shape == (16, 0)


def test_market_junk_and_distractors_stay_unlabelled(tmp_path):
    root = tmp_path / "market"
    _jpeg(root / "bounding_box_train" / "0002_c1s1_000451_03.jpg")
    _jpeg(root / "query" / "0001_c2s1_000301_00.jpg")
    for name in ("0001_c3s1_000551_01.jpg", "0000_c1s1_000151_01.jpg", "-1_c6s2_000201_05.jpg"):
        _jpeg(root / "bounding_box_test" / name)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"x")
    save_attributes(
        root / "market_attribute.mat",
        {"train": {2: {"gender": 1, "age": 2, "up_colour": 3}}, "test": {1: {"gender": 0, "down_colour": 8}}},
    )
    dataset = load_market1501(root)
    pids = sorted(r.pid for r in dataset.gallery)
    assert pids == [-1, 0, 1]
    by_pid = {r.pid: r for r in dataset.gallery}
    assert set(by_pid[-1].attributes.values()) == {-1} and set(by_pid[0].attributes.values()) == {-1}
    assert by_pid[1].attributes["down_colour"] == 8 and by_pid[1].attributes["gender"] == 0
    assert dataset.train[0].attributes["up_colour"] == 3 and dataset.train[0].attributes["hat"] == -1
    assert by_pid[-1].camid == 5
    rows = dataset.to_rows(labelled_only=True)
    assert sorted(row["pid"] for row in rows) == [1, 1, 2]


def test_tidy_rows_and_csv(tmp_path):
    dataset = load_market1501(shared_file(MINI), shared_file(MARKET_MAT))
    rows = dataset.to_rows()
    assert len(rows) == 18
    assert set(rows[0]) == {"path", "pid", "camid", "split", *dataset.attribute_names}
    count = dataset.write_csv(tmp_path / "table.csv", splits=("query", "gallery"))
    with open(tmp_path / "table.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert count == len(read) == 2
    assert [row["split"] for row in read] == ["query", "gallery"]
    assert int(read[0]["gender"]) == dataset.query[0].attributes["gender"]


def test_market_layout_errors(tmp_path):
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        load_market1501(tmp_path / "nowhere")
    (tmp_path / "bounding_box_train").mkdir()
    with pytest.raises(ShuffleBitsError, match="missing query/, bounding_box_test/"):
        load_market1501(tmp_path)
    (tmp_path / "query").mkdir()
    (tmp_path / "bounding_box_test").mkdir()
    with pytest.raises(ShuffleBitsError, match=r"no \.jpg images"):
        load_market1501(tmp_path)
    _jpeg(tmp_path / "query" / "person.jpg")
    with pytest.raises(ShuffleBitsError, match="unexpected image name"):
        load_market1501(tmp_path)
    with pytest.raises(ShuffleBitsError, match="not found"):
        load_market1501(tmp_path, attribute_file=tmp_path / "absent.mat")


# --- DukeMTMC-reID and MSMT17 -------------------------------------------------------------------


def test_duke_file_names(tmp_path):
    names = {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0100000.jpg"],
        "query": ["0005_c1_f0049000.jpg"],
        "bounding_box_test": ["0005_c4_f0050000.jpg", "0000_c3_f0000001.jpg"],
    }
    for folder, files in names.items():
        for name in files:
            _jpeg(tmp_path / folder / name)
    dataset = load_dukemtmc(tmp_path)
    assert [(r.pid, r.camid) for r in dataset.train] == [(1, 1), (1, 7)]
    assert [(r.pid, r.camid) for r in dataset.gallery] == [(0, 2), (5, 3)]
    assert dataset.name == "dukemtmc" and dataset.attribute_names == []
    _jpeg(tmp_path / "query" / "0002_c1s1_000451_03.jpg")  # a Market name is not a Duke name
    with pytest.raises(ShuffleBitsError, match="unexpected image name"):
        load_dukemtmc(tmp_path)


def test_unpacked_archive_folder_is_found(tmp_path):
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        _jpeg(tmp_path / "DukeMTMC-reID" / folder / "0001_c2_f0046182.jpg")
    dataset = load_dukemtmc(tmp_path)
    assert dataset.root == tmp_path / "DukeMTMC-reID" and len(dataset.query) == 1


def test_duke_reads_its_attribute_file_from_root(tmp_path):
    _jpeg(tmp_path / "bounding_box_train" / "0370_c2_f0046182.jpg")
    (tmp_path / "query").mkdir()
    (tmp_path / "bounding_box_test").mkdir()
    (tmp_path / "duke_attribute.mat").write_bytes(shared_file(DUKE_MAT).read_bytes())
    dataset = load_dukemtmc(tmp_path)
    assert dataset.train[0].attributes["top"] == -1 and dataset.train[0].attributes["gender"] == 1
    assert len(dataset.attribute_names) == 10


def _msmt_fixture(root, version_dirs=("train", "test")):
    train_dir, test_dir = version_dirs
    (root / train_dir).mkdir(parents=True)
    (root / test_dir).mkdir()
    (root / "list_train.txt").write_text(
        "0000/0000_000_01_0303morning_0015_0.jpg 0\n0001/0001_004_15_0303noon_0042_1.jpg 1\n"
    )
    (root / "list_val.txt").write_text("0000/0000_001_03_0303morning_0016_0.jpg 0\n")
    (root / "list_query.txt").write_text("0000/0000_000_07_0303afternoon_0100_0.jpg 0\n\n")
    (root / "list_gallery.txt").write_text(
        "0000/0000_003_02_0303afternoon_0200_0.jpg 0\n0003/0003_000_11_0113morning_0001_0.jpg 3\n"
    )


def test_msmt17_list_files(tmp_path):
    _msmt_fixture(tmp_path)
    dataset = load_msmt17(tmp_path)
    assert [(r.pid, r.camid) for r in dataset.train] == [(0, 0), (1, 14)]
    assert dataset.train[0].path == tmp_path / "train" / "0000" / "0000_000_01_0303morning_0015_0.jpg"
    assert dataset.query[0].camid == 6 and dataset.query[0].path.parent.parent == tmp_path / "test"
    assert [(r.pid, r.camid) for r in dataset.gallery] == [(0, 1), (3, 10)]
    assert len(load_msmt17(tmp_path, include_val=True).train) == 3


def test_msmt17_v2_under_parent_folder(tmp_path):
    _msmt_fixture(tmp_path / "MSMT17_V2", ("mask_train_v2", "mask_test_v2"))
    dataset = load_msmt17(tmp_path)
    assert dataset.train[0].path.parts[-3] == "mask_train_v2"


def test_msmt17_errors(tmp_path):
    with pytest.raises(ShuffleBitsError, match="not an MSMT17 folder"):
        load_msmt17(tmp_path)
    _msmt_fixture(tmp_path)
    (tmp_path / "list_query.txt").write_text("0000/0000_000_07_x.jpg\n")
    with pytest.raises(ShuffleBitsError, match=r"list_query\.txt:1"):
        load_msmt17(tmp_path)


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "RGB"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_decoded_images_are_upright_rgb_as_pillow_turns_them(mode, orientation):
    """Converted to RGB before it is turned (less memory): the same pixels as Pillow's turn-then-convert."""
    import io

    from PIL import ImageOps

    from shufflebits.data.images import decode_image

    pixels = np.random.default_rng(orientation).integers(0, 256, (30, 50, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode if mode != "P" else "RGB").convert(mode)  # P: opaque
    exif = Image.Exif()
    exif[0x0112] = orientation
    encoded = io.BytesIO()
    image.save(encoded, "PNG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(encoded.getvalue()))).convert("RGB")
    decoded = decode_image(encoded.getvalue())
    assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), np.asarray(expected))
    assert decoded.size == ((30, 50) if orientation >= 5 else (50, 30))


def test_a_png_over_the_pixel_limit_is_refused_from_its_header_even_with_exif_after_the_pixels(monkeypatch):
    """Pillow reads a PNG's EXIF by decoding it when the eXIf chunk follows the pixels: not before the limit."""
    import io
    import struct

    from PIL import ImageOps, PngImagePlugin

    from shufflebits.data.images import decode_image, decoded_pixels

    exif = Image.Exif()
    exif[0x0112] = 6
    encoded = io.BytesIO()
    Image.fromarray(np.arange(40 * 60 * 4, dtype=np.uint8).reshape(40, 60, 4), "RGBA").save(
        encoded, "PNG", exif=exif.tobytes()
    )
    data, chunks, at = encoded.getvalue(), [], 8
    while at < len(data):
        length = struct.unpack(">I", data[at : at + 4])[0]
        chunks.append(data[at : at + 12 + length])
        at += 12 + length
    late = [c for c in chunks if c[4:8] != b"eXIf"]
    late = data[:8] + b"".join(late[:-1] + [c for c in chunks if c[4:8] == b"eXIf"] + late[-1:])  # eXIf after IDAT
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(late))).convert("RGB")
    assert np.array_equal(np.asarray(decode_image(late)), np.asarray(expected)) and expected.size == (40, 60)

    def no_decoding(self):
        raise AssertionError("decoded before the pixel limit was checked")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    with pytest.raises(ShuffleBitsError, match="more than the limit of 100"):
        decoded_pixels(late, "bomb.png", max_pixels=100, size=(16, 8))
    assert decoded_pixels(late, "ok.png", max_pixels=10_000, size=(16, 8)) == 40 * 60
