"""``shufflebits extract`` and ``shufflebits reid``: end to end and exit codes for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_file
from shufflebits.cli import main
from shufflebits.features import load_features, save_features
from shufflebits.study.numbers import figure
from test_reid import brute_force  # the protocol written out one query and one gallery image at a time

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def seeded():
    """The extracted model has random weights: the same ones in every run."""
    torch.manual_seed(0)


@pytest.fixture()
def market(tmp_path) -> Path:
    """A tiny Market-1501 root: 3 identities, query in camera 1, gallery in cameras 1 and 2."""
    rng = np.random.default_rng(0)
    root = tmp_path / "market"
    names = {
        "query": ["0001_c1s1_000101_00.jpg", "0002_c1s1_000201_00.jpg"],
        "bounding_box_test": [
            "0001_c2s1_000301_00.jpg",
            "0002_c2s1_000401_00.jpg",
            "0003_c2s1_000501_00.jpg",
            "0001_c1s1_000601_00.jpg",
            "-1_c2s1_000701_00.jpg",
        ],
    }
    for folder, files in names.items():
        (root / folder).mkdir(parents=True)
        for name in files:
            Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(root / folder / name)
    return root


def test_extract_then_reid(market, tmp_path, capsys):
    common = ["--model", "osnet_x0_25", "--size", "64x32", "--quiet"]
    query_out = str(tmp_path / "q.npz")
    assert main(["extract", *common, "--images", str(market), "--split", "query", "--out", query_out]) == 0
    assert (
        main(
            [
                "extract",
                *common,
                "--images",
                str(market / "bounding_box_test"),
                "--out",
                str(tmp_path / "g.npz"),
                "--flip",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    gallery = load_features(tmp_path / "g.npz")
    assert gallery.features.shape == (5, 512)
    assert sorted(gallery.pids.tolist()) == [-1, 1, 1, 2, 3]
    assert sorted(gallery.camids.tolist()) == [0, 1, 1, 1, 1]  # 0-based cameras
    capsys.readouterr()
    assert main(["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz")]) == 0
    text = capsys.readouterr().out
    assert main(["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    for name, key in (("rank-1", "rank1"), ("rank-5", "rank5"), ("mAP", "mAP"), ("mINP", "mINP")):
        assert f"{name} {figure(same[key])} " in text  # fractions, written as the report writes them
    assert "%" not in text
    assert (
        main(
            [
                "reid",
                "--query",
                str(tmp_path / "q.npz"),
                "--gallery",
                str(tmp_path / "g.npz"),
                "--json",
                "--metric",
                "cosine",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["num_query"] == 2 and len(figures["cmc"]) == 5  # capped at the gallery size
    query = load_features(tmp_path / "q.npz")
    reference = brute_force(
        query.features, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids, "cosine", 50
    )
    assert figures["mAP"] == pytest.approx(reference["mAP"], abs=1e-6)
    assert figures["cmc"] == pytest.approx(reference["cmc"].tolist(), abs=1e-9)


def test_extract_with_real_weights_records_real_figures(tmp_path, capsys):
    weights = shared_file("weights/osnet_x0_25_msmt17.pth")
    folder = shared_file("data/market1501-mini") / "bounding_box_train"
    out = tmp_path / "train.npz"
    assert (
        main(
            [
                "extract",
                "--model",
                "osnet_x0_25",
                "--weights",
                str(weights),
                "--images",
                str(folder),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "256x128" in capsys.readouterr().out
    assert load_features(out).features.shape == (16, 512)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "64by32"], "HxW"),
        (["--size", "0x32"], "HxW"),
        (["--batch-size", "0"], "batch-size"),
        (["--model", "nope"], "unknown model"),
        (["--out", "features.csv"], ".npz, .npy or .parquet"),
        (["--images", "MISSING"], "does not exist"),
        (["--images", "ROOT"], "pass --split"),
        (["--weights", "TEXT"], "not a PyTorch checkpoint"),
        (["--model", "onnx:/absent/model.onnx"], "does not exist"),
    ],
)
def test_extract_bad_input_exits_2(market, tmp_path, capsys, extra, message):
    (tmp_path / "notes.pth").write_text("hello")
    replacements = {"MISSING": str(tmp_path / "nowhere"), "ROOT": str(market), "TEXT": str(tmp_path / "notes.pth")}
    extra = [replacements.get(value, value) for value in extra]
    args = {"--model": "osnet_x0_25", "--images": str(market / "query"), "--out": str(tmp_path / "f.npz")}
    args.update(zip(extra[::2], extra[1::2]))
    argv = ["extract", "--quiet"] + [item for pair in args.items() for item in pair]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_extract_on_cuda_without_cuda_exits_2(market, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    argv = [
        "extract",
        "--model",
        "osnet_x0_25",
        "--images",
        str(market / "query"),
        "--out",
        str(tmp_path / "f.npz"),
        "--device",
        "cuda",
    ]
    assert main(argv) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_reid_bad_input_exits_2(tmp_path, capsys):
    save_features(tmp_path / "plain.npz", np.zeros((2, 4), np.float32))
    save_features(tmp_path / "labelled.npz", np.zeros((2, 4), np.float32), pids=[1, 2], camids=[0, 0])
    assert main(["reid", "--query", str(tmp_path / "plain.npz"), "--gallery", str(tmp_path / "labelled.npz")]) == 2
    assert "no pids/camids" in capsys.readouterr().err
    assert main(["reid", "--query", str(tmp_path / "absent.npz"), "--gallery", str(tmp_path / "labelled.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # Same identities only in the same camera: nothing valid to find.
    assert main(["reid", "--query", str(tmp_path / "labelled.npz"), "--gallery", str(tmp_path / "labelled.npz")]) == 2
    assert "no query has a valid gallery match" in capsys.readouterr().err


@pytest.mark.parametrize("gallery_views", [1, 2])
def test_reid_says_why_map_equals_minp_only_with_one_match_per_query(tmp_path, capsys, gallery_views):
    rng = np.random.default_rng(0)
    people = rng.normal(size=(6, 8)).astype(np.float32)
    query = people + 0.3 * rng.normal(size=people.shape).astype(np.float32)
    gallery = np.concatenate([people + 0.3 * rng.normal(size=people.shape).astype(np.float32)] * gallery_views)
    gallery_pids = np.tile(np.arange(6), gallery_views)
    save_features(tmp_path / "q.npz", query, pids=np.arange(6), camids=np.zeros(6, int))
    save_features(tmp_path / "g.npz", gallery, pids=gallery_pids, camids=np.ones(len(gallery), int))
    files = ["reid", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz")]
    assert main([*files, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["matches_per_query"] == [gallery_views, gallery_views]
    assert main(files) == 0
    said = "mAP = mINP: each query has one correct gallery match" in capsys.readouterr().out
    assert said == (gallery_views == 1)
    if gallery_views == 1:  # one match: AP and INP are both 1 / its rank
        assert figures["mAP"] == pytest.approx(figures["mINP"], abs=1e-12)
