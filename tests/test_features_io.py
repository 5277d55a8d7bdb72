import numpy as np
import pytest

from shufflebits.errors import ShuffleBitsError
from shufflebits.features import load_features, save_features


def test_npz_round_trip_keeps_paper_keys(tmp_path):
    feats = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    out = tmp_path / "f.npz"
    save_features(out, feats, [f"img{i}.jpg" for i in range(5)], pids=np.arange(5), camids=np.ones(5))
    with np.load(out) as archive:
        assert {"accumulated_image_file_paths", "accumulated_feature_array"} <= set(archive.files)
    loaded = load_features(out)
    assert loaded.features.tobytes() == feats.tobytes()
    assert loaded.image_paths[3] == "img3.jpg"
    assert loaded.pids.tolist() == list(range(5))


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ShuffleBitsError, match="2-D"):
        save_features(tmp_path / "x.npz", np.zeros(3, np.float32))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ShuffleBitsError, match="cannot read"):
        load_features(bad)
    with pytest.raises(ShuffleBitsError, match="rows"):
        save_features(tmp_path / "y.npz", np.zeros((3, 2), np.float32), ["a"])
    assert not (tmp_path / "y.npz").exists()
    assert list(tmp_path.glob(".*tmp")) == []


def test_outputs_get_umask_permissions_and_keys_can_be_private(tmp_path):
    import os

    from shufflebits.atomic import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "plain.bin", b"x")
        atomic_write_bytes(tmp_path / "secret.key", b"k", permissions=0o600, overwrite=False)
    finally:
        os.umask(old)
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ShuffleBitsError, match="refusing to overwrite"):
        atomic_write_bytes(tmp_path / "secret.key", b"k2", overwrite=False)


def test_npy_files_must_be_2d_whatever_their_name(tmp_path):
    np.save(tmp_path / "scalar.npy", np.float32(1.0))
    with pytest.raises(ShuffleBitsError, match="2-D"):
        load_features(tmp_path / "scalar.npy")
    renamed = tmp_path / "renamed.npz"
    (tmp_path / "scalar.npy").rename(renamed)
    with pytest.raises(ShuffleBitsError, match="2-D"):
        load_features(renamed)
    np.save(tmp_path / "ok.npy", np.ones((2, 3), np.float32))
    assert load_features(tmp_path / "ok.npy").features.shape == (2, 3)


def _npy_declaring(shape: tuple[int, ...]) -> bytes:
    """A .npy whose header declares ``shape`` of float32 but holds 64 bytes."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_files_declaring_huge_shapes_are_one_line_errors(tmp_path, suffix):
    import zipfile

    path = tmp_path / f"huge{suffix}"
    blob = _npy_declaring((10**12, 512))
    if suffix == ".npy":
        path.write_bytes(blob)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("accumulated_feature_array.npy", blob)
    with pytest.raises(ShuffleBitsError, match="cannot read feature file"):
        load_features(path)


def test_labels_and_paths_of_the_wrong_kind_are_one_line_errors(tmp_path):
    feats = np.zeros((3, 2), np.float32)
    np.savez(tmp_path / "s.npz", accumulated_feature_array=feats, pids=np.array(["a", "b", "c"]))
    with pytest.raises(ShuffleBitsError, match="pids must be a 1-D array of integers"):
        load_features(tmp_path / "s.npz")
    np.savez(tmp_path / "f.npz", accumulated_feature_array=feats, camids=np.array([1.0, 2.5, 3.0]))
    with pytest.raises(ShuffleBitsError, match="camids must be"):
        load_features(tmp_path / "f.npz")
    np.savez(tmp_path / "p.npz", accumulated_feature_array=feats, accumulated_image_file_paths=np.zeros((3, 2)))
    with pytest.raises(ShuffleBitsError, match="1-D"):
        load_features(tmp_path / "p.npz")
    np.savez(tmp_path / "ok.npz", accumulated_feature_array=feats, pids=np.array([1.0, 2.0, 3.0]))
    assert load_features(tmp_path / "ok.npz").pids.dtype == np.int64  # integral floats still read
