"""Image IO, torchreid-style transforms, the torch Dataset and the P x K sampler."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_file
from shufflebits.data import ImageRecord, load_market1501, parse_size
from shufflebits.data.images import as_image_list, decode_image, load_image, read_image
from shufflebits.data.torch_dataset import ImageDataset, RandomIdentitySampler
from shufflebits.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms, random_erase, to_unit_tensor
from shufflebits.errors import ShuffleBitsError


def _gradient_image(height=100, width=50) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 200)], axis=-1).astype(np.uint8)
    return Image.fromarray(array)


def test_read_image_errors(tmp_path):
    with pytest.raises(ShuffleBitsError, match="not found"):
        read_image(tmp_path / "absent.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ShuffleBitsError, match="not a decodable image") as error:
        read_image(broken)
    assert str(broken) in str(error.value) and "\n" not in str(error.value)
    grey = tmp_path / "grey.png"
    Image.new("L", (8, 16), 77).save(grey)
    image = read_image(grey)
    assert image.mode == "RGB" and image.size == (8, 16)
    assert np.array_equal(np.asarray(image), np.full((16, 8, 3), 77, np.uint8))


def test_every_image_source_decodes_to_the_same_pixels(tmp_path):
    pixels = np.asarray(_gradient_image(12, 6))
    path = tmp_path / "g.png"
    Image.fromarray(pixels).save(path)
    sources = [path, str(path), path.read_bytes(), bytearray(path.read_bytes()), Image.fromarray(pixels), pixels]
    for source in sources:
        image = load_image(source)
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), pixels), type(source).__name__
    assert np.array_equal(np.asarray(load_image(Image.fromarray(pixels).convert("RGBA"))), pixels)
    with pytest.raises(ShuffleBitsError, match="uint8 H x W x 3"):
        load_image(pixels.astype(np.float32))
    with pytest.raises(ShuffleBitsError, match="cannot use a int"):
        load_image(3)


def test_the_pixel_cap_refuses_before_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 30)).save(path)
    assert load_image(path, max_pixels=1200).size == (40, 30)
    for source in (path, path.read_bytes()):
        with pytest.raises(ShuffleBitsError, match="40x30 pixels, more than the limit of 1199"):
            load_image(source, max_pixels=1199)
    with pytest.raises(ShuffleBitsError, match=r"upload 3: not a decodable image"):
        decode_image(b"GIF89a broken", name="upload 3")


def test_one_image_or_many():
    pixels = np.zeros((4, 2, 3), np.uint8)
    assert len(as_image_list(pixels)) == 1 and len(as_image_list(np.stack([pixels] * 5))) == 5
    assert as_image_list("a.jpg") == ["a.jpg"] and as_image_list(b"raw") == [b"raw"]
    assert as_image_list(iter(["a", "b"])) == ["a", "b"] and as_image_list([]) == []


def test_test_transform_is_resize_and_normalise():
    image = _gradient_image()
    tensor = build_transforms((64, 32), train=False)(image)
    assert tensor.shape == (3, 64, 32) and tensor.dtype == torch.float32
    expected = np.asarray(image.resize((32, 64), Image.BILINEAR), dtype=np.float32) / 255.0
    expected = (expected - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(tensor.numpy(), expected.transpose(2, 0, 1), atol=1e-5)


def test_train_transform_augments_but_keeps_shape():
    image = _gradient_image()
    transform = build_transforms((64, 32), train=True)
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(20)]
    assert all(out.shape == (3, 64, 32) for out in outputs)
    plain = build_transforms((64, 32), train=False)(image)
    assert sum(not torch.allclose(out, plain) for out in outputs) >= 15
    # flips happen: the red channel (x gradient) sometimes decreases left to right
    directions = {bool(out[0, 32, 20] > out[0, 32, 10]) for out in outputs}
    assert directions == {True, False}


def test_transform_pickles_for_dataloader_workers():
    transform = build_transforms((64, 32), train=False)
    copy = pickle.loads(pickle.dumps(transform))
    assert torch.equal(copy(_gradient_image()), transform(_gradient_image()))


def test_random_erase_fills_a_rectangle_with_the_mean():
    torch.manual_seed(1)
    tensor = torch.full((3, 64, 32), 5.0)
    erased = random_erase(tensor, probability=1.0, fill=(0.1, 0.2, 0.3))
    changed = erased[0] != 5.0
    assert 0.02 * 64 * 32 * 0.5 <= changed.sum() <= 0.4 * 64 * 32 * 1.05
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    assert torch.allclose(erased[2][changed], torch.tensor(0.3))
    assert torch.equal(tensor, torch.full((3, 64, 32), 5.0))  # input untouched
    assert torch.equal(random_erase(tensor, probability=0.0), tensor)


def test_unit_tensor_scales_pixels_to_the_unit_interval():
    image = _gradient_image()
    unit = to_unit_tensor(image)
    assert unit.shape == (3, 100, 50) and unit.dtype == torch.float32
    assert torch.equal((unit * 255).round().to(torch.uint8), torch.from_numpy(np.array(image)).permute(2, 0, 1))
    assert float(unit[2].mean()) == pytest.approx(200 / 255)
    assert float(unit[0, 0, -1]) == pytest.approx(49 * 255 // 50 / 255)  # red is x * 255 // width


def test_image_dataset_on_real_crops():
    dataset = load_market1501(shared_file("data/market1501-mini"))
    torch_set = ImageDataset(dataset.train, build_transforms((256, 128), train=False))
    image, pid, camid, index = torch_set[3]
    assert image.shape == (3, 256, 128)
    assert (pid, camid, index) == (dataset.train[3].pid, dataset.train[3].camid, 3)
    raw, *_ = ImageDataset(dataset.query)[0]
    assert raw.shape[0] == 3 and 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0
    batch = next(iter(torch.utils.data.DataLoader(torch_set, batch_size=4)))
    assert batch[0].shape == (4, 3, 256, 128) and batch[1].dtype == torch.int64


def _records(counts: dict[int, int]) -> list[ImageRecord]:
    return [
        ImageRecord(path=Path(f"{pid}_{i}.jpg"), pid=pid, camid=i % 3, split="train")
        for pid, n in counts.items()
        for i in range(n)
    ]


def test_identity_sampler_yields_p_by_k_batches():
    counts = {pid: 3 + pid % 6 for pid in range(20)}
    records = _records(counts)
    sampler = RandomIdentitySampler(records, batch_size=16, num_instances=4, seed=0)
    indices = list(sampler)
    assert 0 < len(indices) <= len(sampler) and len(indices) % 16 == 0
    for start in range(0, len(indices), 16):
        batch = [records[i].pid for i in indices[start : start + 16]]
        per_pid = Counter(batch)
        assert len(per_pid) == 4 and set(per_pid.values()) == {4}
    # identities with enough images never repeat an image within an epoch
    rich = [i for i in indices if counts[records[i].pid] >= 4]
    assert len(rich) == len(set(rich))
    again = list(RandomIdentitySampler(records, batch_size=16, num_instances=4, seed=0))
    assert again == indices
    assert list(sampler) != indices  # the next epoch is shuffled differently


def test_identity_sampler_errors():
    with pytest.raises(ShuffleBitsError):
        RandomIdentitySampler(_records({1: 4}), batch_size=2, num_instances=4)
    with pytest.raises(ShuffleBitsError, match="identities"):
        RandomIdentitySampler(_records({1: 4, 2: 4}), batch_size=16, num_instances=4)


def test_parse_size():
    assert parse_size("256x128") == (256, 128)
    for bad in ("12x", "x64", "128", "0x64", "axb"):
        with pytest.raises(ShuffleBitsError, match="size"):
            parse_size(bad)
