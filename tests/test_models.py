"""Models: torchreid-compatible OSNet, ResNet50-BoT, checkpoints, forward contract (FastReID: test_models_fastreid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_file
from shufflebits.errors import ShuffleBitsError
from shufflebits.models import CHECKPOINT_FORMAT, build_extractor, create_model, load_model
from shufflebits.registry import available

MSMT_PTH = "weights/osnet_x0_25_msmt17.pth"


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The models the forward-contract test runs on; every registered model must be among them.
CONTRACT_MODELS = ["osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "resnet50_bot"]


@pytest.fixture(autouse=True)
def seeded():
    """Fresh models draw their initial weights from torch's generator: the same draws in every run."""
    torch.manual_seed(0)


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_registered_models_follow_the_forward_contract(name):
    model = create_model(name, num_classes=5)
    images = torch.rand(2, 3, 64, 32)
    model.train()
    logits, features = model(images)
    assert logits.shape == (2, 5)
    assert features.shape == (2, model.feature_dim)
    model.eval()
    with torch.no_grad():
        eval_features = model(images)
    assert eval_features.shape == (2, model.feature_dim)
    assert model.feature_dim == (2048 if name == "resnet50_bot" else 512)
    model.normalize = True
    with torch.no_grad():
        assert torch.allclose(model(images).norm(dim=1), torch.ones(2), atol=1e-5)


def test_every_registered_model_is_covered():
    marks = test_registered_models_follow_the_forward_contract.pytestmark
    covered = {name for mark in marks if mark.name == "parametrize" for name in mark.args[1]}
    uncovered = set(available("model")) - covered
    assert not uncovered, f"registered without a forward-contract test: {sorted(uncovered)}"


def test_resnet_gem_option_adds_learnable_exponent():
    model = create_model("resnet50_bot", num_classes=3, gem=True)
    assert "pool.p" in model.state_dict()
    assert "pool.p" not in create_model("resnet50_bot", num_classes=3).state_dict()
    assert model.bottleneck.bias.requires_grad is False  # BNNeck: frozen shift
    assert model.classifier.bias is None


def test_real_torchreid_weights_load_strictly_with_identical_keys():
    path = shared_file(MSMT_PTH)
    listing = shared_file("weights/osnet_x0_25_state_dict_keys.txt").read_text().splitlines()
    model, info = load_model("osnet_x0_25", path)
    expected = {line.split("\t")[0]: line.split("\t")[1] for line in listing if line.strip()}
    ours = {key: str(tuple(value.shape)) for key, value in model.state_dict().items()}
    assert ours == expected
    assert info.source == "torchreid" and info.num_classes == 1041
    assert info.input_size == (256, 128) and info.distance == "euclidean" and not info.normalize_features
    raw = torch.load(path, weights_only=True)
    assert torch.equal(model.state_dict()["fc.0.weight"], raw["fc.0.weight"])


def test_real_osnet_matches_onnx_export_on_real_crops():
    pth, onnx_path = shared_file(MSMT_PTH), shared_file("weights/osnet_x0_25_msmt17.onnx")
    crops = sorted(shared_file("data/market1501-mini").rglob("*.jpg"))
    assert len(crops) == 18
    ours = build_extractor("osnet_x0_25", weights=pth)(crops)
    reference = build_extractor(f"onnx:{onnx_path}")(crops)
    assert ours.shape == reference.shape == (18, 512)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999
    # torchreid's feature is post-ReLU and not normalised: many exact zeros, norms far from 1.
    assert 0.2 < (ours == 0).mean() < 0.5
    assert not np.allclose(np.linalg.norm(ours, axis=1), 1.0)


def test_other_classifier_size_keeps_backbone_and_fresh_classifier():
    path = shared_file("weights/osnet_x0_25_market1501.pth")
    model, info = load_model("osnet_x0_25", path, num_classes=10)
    raw = torch.load(path, weights_only=True)
    assert info.num_classes == 751
    assert model.classifier.weight.shape == (10, 512)
    assert torch.equal(model.state_dict()["conv5.conv.weight"], raw["conv5.conv.weight"])


def test_our_checkpoint_format_records_size_and_normalisation(tmp_path):
    model = create_model("osnet_x0_25", num_classes=3).eval()
    path = tmp_path / "victim.pth"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": "osnet_x0_25",
            "num_classes": 3,
            "input_size": [128, 64],
            "state_dict": model.state_dict(),
            "normalize_features": True,
            "epoch": 5,
        },
        path,
    )
    extractor = build_extractor("osnet_x0_25", weights=path)
    assert extractor.input_size == (128, 64) and extractor.normalize_features and extractor.source == "shufflebits"
    assert build_extractor("osnet_x0_25", weights=path, size=(64, 32), normalize=False).input_size == (64, 32)
    with pytest.raises(ShuffleBitsError, match="use the model name 'osnet_x0_25'"):
        build_extractor("osnet_x0_5", weights=path)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("std", [0.2, 0.0, 0.2], "std must be positive"),
        ("std", [0.2, -1.0, 0.2], "std must be positive"),
        ("mean", [float("nan"), 0.4, 0.4], "mean must be 3 finite numbers"),
        ("mean", [0.4, 0.4], "mean must be 3 finite numbers"),
        ("std", "abc", "std must be 3 numbers"),
        ("input_size", [128, 0], "input_size must be two positive integers"),
        ("input_size", [128.5, 64], "input_size must be two positive integers"),
        ("input_size", [float("inf"), 64], "input_size must be 2 finite numbers"),
        ("num_classes", 0, "num_classes must be positive"),
        ("num_classes", "3", "num_classes must be an integer"),
        ("distance", "manhattan", "distance must be euclidean or cosine"),
    ],
)
def test_checkpoint_metadata_is_checked_before_it_is_used(tmp_path, field, value, message):
    """Preprocessing numbers from a file are validated: a zero std would turn every feature into inf/NaN."""
    record = {
        "format": CHECKPOINT_FORMAT,
        "model": "osnet_x0_25",
        "num_classes": 3,
        "input_size": [128, 64],
        "state_dict": create_model("osnet_x0_25", num_classes=3).state_dict(),
        field: value,
    }
    torch.save(record, tmp_path / "bad.pth")
    with pytest.raises(ShuffleBitsError, match=message) as error:
        build_extractor("osnet_x0_25", weights=tmp_path / "bad.pth")
    assert "\n" not in str(error.value)


def test_weight_errors_are_one_line_and_actionable(tmp_path):
    state = create_model("osnet_x0_25", num_classes=4).state_dict()
    broken = dict(state)
    del broken["conv5.conv.weight"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(ShuffleBitsError, match="1 missing keys"):
        load_model("osnet_x0_25", tmp_path / "missing.pth")
    reshaped = dict(state)
    reshaped["fc.0.weight"] = torch.zeros(512, 64)
    torch.save(reshaped, tmp_path / "shape.pth")
    with pytest.raises(ShuffleBitsError, match="shape mismatch"):
        load_model("osnet_x0_25", tmp_path / "shape.pth")
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        load_model("osnet_x0_25", tmp_path / "absent.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ShuffleBitsError, match="not a PyTorch checkpoint"):
        load_model("osnet_x0_25", tmp_path / "text.pth")
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(ShuffleBitsError, match="unrecognised checkpoint"):
        load_model("osnet_x0_25", tmp_path / "other.pth")
    with pytest.raises(ShuffleBitsError, match="unknown model"):
        create_model("osnet_x9")
    with pytest.raises(ShuffleBitsError) as error:
        load_model("osnet_x0_25", tmp_path / "missing.pth")
    assert "\n" not in str(error.value)


def test_torchreid_training_checkpoint_wrapper_and_module_prefix(tmp_path):
    model = create_model("osnet_x0_5", num_classes=9)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 60, "rank1": 0.9}
    torch.save(wrapped, tmp_path / "model.pth.tar-60")
    loaded, info = load_model("osnet_x0_5", tmp_path / "model.pth.tar-60")
    assert info.source == "torchreid" and info.num_classes == 9 and info.model_name == "osnet_x0_5"
    assert torch.equal(loaded.conv1.conv.weight, model.conv1.conv.weight)
