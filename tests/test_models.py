"""Models: torchreid-compatible OSNet, ResNet50-BoT with FastReID import, forward contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_file
from shufflebits.errors import ShuffleBitsError
from shufflebits.models import CHECKPOINT_FORMAT, build_extractor, create_model, load_model, parse_weights
from shufflebits.registry import available

MSMT_PTH = "weights/osnet_x0_25_msmt17.pth"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "resnet50_bot"])
def test_registered_models_follow_the_forward_contract(name):
    torch.manual_seed(0)
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
    assert set(available("model")) >= {"osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "resnet50_bot"}


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


def _to_fastreid_names(state: dict) -> dict:
    """Our resnet50_bot keys under FastReID's names (what a real msmt_bot_R50.pth holds)."""
    out = {}
    for key, value in state.items():
        if key.startswith(("conv1.", "bn1.", "layer")):
            out["backbone." + key] = value
        elif key.startswith("bottleneck."):
            out["heads.bottleneck.0." + key[len("bottleneck.") :]] = value
        elif key == "classifier.weight":
            out["heads.weight"] = value
        elif key == "pool.p":
            out["heads.pool_layer.p"] = value
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


@pytest.fixture(scope="module")
def fastreid_source():
    torch.manual_seed(3)
    model = create_model("resnet50_bot", num_classes=7, gem=True)
    _randomise_batchnorm(model, 4)
    with torch.no_grad():
        model.pool.p.fill_(2.5)
    return model.eval()


def test_fastreid_checkpoint_round_trip(tmp_path, fastreid_source):
    state = _to_fastreid_names(fastreid_source.state_dict())
    for name in ("backbone.layer1.0.downsample.0.weight", "backbone.layer4.2.bn3.running_var", "heads.bottleneck.0.bias"):
        assert name in state
    state["pixel_mean"] = torch.tensor([120.0, 110.0, 100.0]).view(1, 3, 1, 1)
    state["pixel_std"] = torch.tensor([60.0, 55.0, 50.0]).view(1, 3, 1, 1)
    path = tmp_path / "msmt_bot_R50.pth"
    torch.save({"model": state, "iteration": 3}, path)

    extractor = build_extractor("resnet50_bot", weights=path, size=(64, 32))
    assert extractor.normalize_features and extractor.distance == "cosine" and extractor.interpolation == "bicubic"
    assert np.allclose(extractor.mean, [120 / 255, 110 / 255, 100 / 255])
    assert extractor.model.classifier.weight.shape == (7, 2048)
    batch = np.random.default_rng(0).standard_normal((2, 3, 64, 32)).astype(np.float32)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(fastreid_source(torch.from_numpy(batch)), dim=1).numpy()
    assert np.allclose(extractor.embed_array(batch), expected, atol=1e-5)
    loaded = extractor.model.state_dict()
    for key, value in fastreid_source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_fastreid_older_naming_without_batch_counters(fastreid_source):
    state = {k: v for k, v in _to_fastreid_names(fastreid_source.state_dict()).items() if "num_batches" not in k}
    state["heads.classifier.weight"] = state.pop("heads.weight")
    info = parse_weights({"model": state})
    model, _ = load_model("resnet50_bot", info)
    assert info.source == "fastreid" and info.model_kwargs == {"gem": True} and info.num_classes == 7
    assert torch.equal(model.classifier.weight, fastreid_source.classifier.weight)
    assert np.allclose(info.mean, (0.485, 0.456, 0.406), atol=1e-4)  # no pixel_mean saved: ImageNet


def test_fastreid_variants_we_cannot_map_are_refused(fastreid_source):
    state = _to_fastreid_names(fastreid_source.state_dict())
    state["backbone.NL_2.0.g.weight"] = torch.zeros(1)
    with pytest.raises(ShuffleBitsError, match="non-local"):
        parse_weights({"model": state})


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
    with pytest.raises(ShuffleBitsError, match="pass --model osnet_x0_25"):
        build_extractor("osnet_x0_5", weights=path)


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
