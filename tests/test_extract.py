"""Feature extractors on every input kind, and batched extraction to feature files."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_file
from shufflebits.engine.extract import extract_features, map_batches
from shufflebits.errors import ShuffleBitsError
from shufflebits.features import load_features
from shufflebits.models import build_extractor

SIZE = (64, 32)
Record = namedtuple("Record", "path pid camid")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def seeded():
    """Random weights and random input tensors: the same draws in every run."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return build_extractor("osnet_x0_25", size=SIZE, batch_size=3)


@pytest.fixture()
def crops(tmp_path) -> list[Path]:
    """Seven random crops at the extractor's input size (no resize, so flips are exact)."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(7):
        path = tmp_path / f"{index:04d}_c{index % 3 + 1}s1_000100_00.png"
        Image.fromarray(rng.integers(0, 256, size=(*SIZE, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_paths_pil_images_and_arrays_give_the_same_features(extractor, crops):
    from_paths = extractor(crops)
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in crops]
    assert from_paths.dtype == np.float32 and from_paths.shape == (7, 512)
    assert np.array_equal(extractor([Image.open(path) for path in crops]), from_paths)
    assert np.array_equal(extractor(arrays), from_paths)
    assert np.array_equal(extractor(np.stack(arrays)), from_paths)
    assert np.allclose(extractor(crops[0]), from_paths[:1], atol=1e-5)  # one image: another batch shape
    assert not np.allclose(from_paths[0], from_paths[1])


def test_images_of_other_sizes_are_resized(extractor, crops):
    large = Image.open(crops[0]).resize((64, 128))
    assert extractor([large]).shape == (1, 512)


def test_bad_images_raise_clear_errors(extractor, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ShuffleBitsError, match="cannot read image"):
        extractor([tmp_path / "broken.jpg"])
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        extractor([tmp_path / "absent.jpg"])
    with pytest.raises(ShuffleBitsError, match="uint8"):
        extractor([np.zeros((8, 4, 3), dtype=np.float32)])


def test_embed_tensor_is_differentiable_and_matches_the_image_path(extractor, crops):
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in crops[:2]])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    features = extractor.embed_tensor(x)
    assert torch.allclose(features, torch.from_numpy(extractor(crops[:2])), atol=1e-4)
    features.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    resized = extractor.embed_tensor(torch.rand(1, 3, 128, 64))  # resized inside
    assert resized.shape == (1, 512)


def test_onnx_extractor_reads_its_input_from_the_session():
    path = shared_file("weights/osnet_x0_25_msmt17.onnx")
    onnx = build_extractor(f"onnx:{path}")
    assert onnx.input_size == (256, 128) and onnx.feature_dim == 512
    assert onnx.embed_tensor(torch.rand(2, 3, 128, 64)).shape == (2, 512)
    with pytest.raises(ShuffleBitsError, match="256x128 images only"):
        build_extractor(f"onnx:{path}", size=(128, 64))


def test_extraction_writes_paper_layout_in_batches(extractor, crops, tmp_path):
    out = extract_features(extractor, crops, tmp_path / "features.npz", batch_size=3, progress=False)
    saved = load_features(out)
    assert np.array_equal(saved.features, extractor(crops))
    assert saved.image_paths == [str(path) for path in crops]
    assert saved.pids is None and saved.camids is None
    assert sorted(p.name for p in tmp_path.iterdir() if not p.suffix == ".png") == ["features.npz"]  # no temp files


def test_extraction_to_a_parquet_store_streams_batches_as_row_groups(extractor, crops, tmp_path):
    import pyarrow.parquet as pq

    from shufflebits.stores import read_plain

    records = [Record(path, pid=index // 2, camid=index % 3) for index, path in enumerate(crops)]
    out = extract_features(extractor, records, tmp_path / "f.parquet", batch_size=3, progress=False)
    saved = read_plain(out)
    assert np.array_equal(saved.features, extractor(crops)) and saved.image_paths == [str(p) for p in crops]
    assert saved.pids.tolist() == [0, 0, 1, 1, 2, 2, 3] and saved.camids.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert pq.ParquetFile(out).metadata.num_row_groups == 3  # one per batch of 3
    assert sorted(p.name for p in tmp_path.iterdir() if not p.suffix == ".png") == ["f.parquet"]


def test_records_add_identities_and_cameras(extractor, crops, tmp_path):
    records = [Record(path, pid=index // 2, camid=index % 3) for index, path in enumerate(crops)]
    saved = load_features(extract_features(extractor, records, tmp_path / "f.npz", batch_size=4, progress=False))
    assert saved.pids.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert saved.camids.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_flip_test_averages_image_and_mirror(extractor, crops, tmp_path):
    saved = load_features(extract_features(extractor, crops, tmp_path / "f.npy", flip=True, progress=False))
    mirrored = [Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT) for path in crops]
    expected = (extractor(crops) + extractor(mirrored)) / 2
    assert np.allclose(saved.features, expected, atol=1e-5)
    assert not np.allclose(saved.features, extractor(crops), atol=1e-3)


def test_flip_test_normalises_after_averaging(crops):
    normalised = build_extractor("osnet_x0_25", size=SIZE, normalize=True)
    features = normalised(crops, flip=True)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_extraction_input_errors(extractor, crops, tmp_path):
    with pytest.raises(ShuffleBitsError, match=r"\.npz, \.npy or \.parquet"):
        extract_features(extractor, crops, tmp_path / "f.csv", progress=False)
    with pytest.raises(ShuffleBitsError, match="no images"):
        extract_features(extractor, [], tmp_path / "f.npz", progress=False)
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        extract_features(extractor, crops, tmp_path / "missing" / "f.npz", progress=False)
    with pytest.raises(ShuffleBitsError, match="cannot read image"):
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"xx")
        extract_features(extractor, [*crops, bad], tmp_path / "f.npz", progress=False)
    assert not (tmp_path / "f.npz").exists()
    assert not list(tmp_path.glob(".f.npz*"))


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ShuffleBitsError, match="CUDA is not available"):
        build_extractor("osnet_x0_25", device="cuda")


def test_cuda_index_beyond_the_devices_is_a_clear_error(monkeypatch):
    from shufflebits.runtime import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0"
    for device in ("cuda:1", "cuda:x", "cuda:"):
        with pytest.raises(ShuffleBitsError, match="1 CUDA device"):
            check_device(device)


@pytest.mark.parametrize("prefetch", [False, True])
def test_map_batches_covers_every_item_once_in_order(prefetch):
    calls = []

    def prepare(batch):
        calls.append(list(batch))
        return [item * 10 for item in batch]

    out = list(map_batches(sum, list(range(11)), 4, prepare=prepare, prefetch=prefetch))
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert out == [60, 220, 270]
    assert list(map_batches(sum, [], 4, prefetch=prefetch)) == []
    with pytest.raises(ShuffleBitsError, match="batch_size must be positive"):
        list(map_batches(sum, [1], 0, prefetch=prefetch))


def test_extractor_batches_do_not_change_features(crops):
    one_by_one = build_extractor("osnet_x0_25", size=SIZE, batch_size=1)
    torch.manual_seed(0)
    all_at_once = build_extractor("osnet_x0_25", size=SIZE, batch_size=64)
    assert np.allclose(one_by_one(crops), all_at_once(crops), atol=1e-5)
    assert np.array_equal(all_at_once(crops[0].read_bytes()), all_at_once([crops[0]]))  # encoded bytes too


def test_channels_last_layout_is_used_and_gives_the_default_layouts_features(crops):
    """The service's NHWC option: a different convolution layout, the same features within float rounding."""
    default = build_extractor("osnet_x0_25", size=SIZE)
    torch.manual_seed(0)
    nhwc = build_extractor("osnet_x0_25", size=SIZE, channels_last=True)
    convolutions = [
        m.weight for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)
    ]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    assert not all(
        w.is_contiguous(memory_format=torch.channels_last)
        for w in (m.weight for m in default.model.modules() if isinstance(m, torch.nn.Conv2d))
    )
    want, got = default(crops), nhwc(crops)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.array_equal(default(crops), want)  # the default layout stays bit-reproducible
