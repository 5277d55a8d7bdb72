"""FastReID import, checked against FastReID's own state-dict names, not against an inverse of our renaming.

``FASTREID_R50_BOT`` is the module list of a FastReID ResNet50 "bag of tricks"
checkpoint (``configs/Base-bagtricks.yml``: BN, depth 50x, last stride 1, no
IBN/SE/non-local, ``GlobalAvgPool``, BNNeck, ``Linear`` classifier), written
down from JDAI-CV/fast-reid at c9bc3ce: ``fastreid/modeling/backbones/resnet.py``
(``ResNet``: ``conv1``, ``bn1``, ``layer1..4`` of 3/4/6/3 ``Bottleneck``\\s with
``conv1-3``/``bn1-3`` and a ``downsample`` Sequential of a conv and a norm in each
first block), ``heads/embedding_head.py`` (``bottleneck`` Sequential holding the
BNNeck, ``weight`` the classifier matrix) and ``meta_arch/baseline.py``
(``backbone.``/``heads.`` prefixes, ``pixel_mean``/``pixel_std`` buffers). A
``bn`` row stands for PyTorch's five BatchNorm entries. Shapes are those of the
published MSMT17 model (1041 identities).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shufflebits.errors import ShuffleBitsError
from shufflebits.models import build_extractor, load_model, parse_weights

FASTREID_R50_BOT = """
backbone.conv1 conv 64 3 7 7
backbone.bn1 bn 64
backbone.layer1.0.conv1 conv 64 64 1 1
backbone.layer1.0.bn1 bn 64
backbone.layer1.0.conv2 conv 64 64 3 3
backbone.layer1.0.bn2 bn 64
backbone.layer1.0.conv3 conv 256 64 1 1
backbone.layer1.0.bn3 bn 256
backbone.layer1.0.downsample.0 conv 256 64 1 1
backbone.layer1.0.downsample.1 bn 256
backbone.layer1.1.conv1 conv 64 256 1 1
backbone.layer1.1.bn1 bn 64
backbone.layer1.1.conv2 conv 64 64 3 3
backbone.layer1.1.bn2 bn 64
backbone.layer1.1.conv3 conv 256 64 1 1
backbone.layer1.1.bn3 bn 256
backbone.layer1.2.conv1 conv 64 256 1 1
backbone.layer1.2.bn1 bn 64
backbone.layer1.2.conv2 conv 64 64 3 3
backbone.layer1.2.bn2 bn 64
backbone.layer1.2.conv3 conv 256 64 1 1
backbone.layer1.2.bn3 bn 256
backbone.layer2.0.conv1 conv 128 256 1 1
backbone.layer2.0.bn1 bn 128
backbone.layer2.0.conv2 conv 128 128 3 3
backbone.layer2.0.bn2 bn 128
backbone.layer2.0.conv3 conv 512 128 1 1
backbone.layer2.0.bn3 bn 512
backbone.layer2.0.downsample.0 conv 512 256 1 1
backbone.layer2.0.downsample.1 bn 512
backbone.layer2.1.conv1 conv 128 512 1 1
backbone.layer2.1.bn1 bn 128
backbone.layer2.1.conv2 conv 128 128 3 3
backbone.layer2.1.bn2 bn 128
backbone.layer2.1.conv3 conv 512 128 1 1
backbone.layer2.1.bn3 bn 512
backbone.layer2.2.conv1 conv 128 512 1 1
backbone.layer2.2.bn1 bn 128
backbone.layer2.2.conv2 conv 128 128 3 3
backbone.layer2.2.bn2 bn 128
backbone.layer2.2.conv3 conv 512 128 1 1
backbone.layer2.2.bn3 bn 512
backbone.layer2.3.conv1 conv 128 512 1 1
backbone.layer2.3.bn1 bn 128
backbone.layer2.3.conv2 conv 128 128 3 3
backbone.layer2.3.bn2 bn 128
backbone.layer2.3.conv3 conv 512 128 1 1
backbone.layer2.3.bn3 bn 512
backbone.layer3.0.conv1 conv 256 512 1 1
backbone.layer3.0.bn1 bn 256
backbone.layer3.0.conv2 conv 256 256 3 3
backbone.layer3.0.bn2 bn 256
backbone.layer3.0.conv3 conv 1024 256 1 1
backbone.layer3.0.bn3 bn 1024
backbone.layer3.0.downsample.0 conv 1024 512 1 1
backbone.layer3.0.downsample.1 bn 1024
backbone.layer3.1.conv1 conv 256 1024 1 1
backbone.layer3.1.bn1 bn 256
backbone.layer3.1.conv2 conv 256 256 3 3
backbone.layer3.1.bn2 bn 256
backbone.layer3.1.conv3 conv 1024 256 1 1
backbone.layer3.1.bn3 bn 1024
backbone.layer3.2.conv1 conv 256 1024 1 1
backbone.layer3.2.bn1 bn 256
backbone.layer3.2.conv2 conv 256 256 3 3
backbone.layer3.2.bn2 bn 256
backbone.layer3.2.conv3 conv 1024 256 1 1
backbone.layer3.2.bn3 bn 1024
backbone.layer3.3.conv1 conv 256 1024 1 1
backbone.layer3.3.bn1 bn 256
backbone.layer3.3.conv2 conv 256 256 3 3
backbone.layer3.3.bn2 bn 256
backbone.layer3.3.conv3 conv 1024 256 1 1
backbone.layer3.3.bn3 bn 1024
backbone.layer3.4.conv1 conv 256 1024 1 1
backbone.layer3.4.bn1 bn 256
backbone.layer3.4.conv2 conv 256 256 3 3
backbone.layer3.4.bn2 bn 256
backbone.layer3.4.conv3 conv 1024 256 1 1
backbone.layer3.4.bn3 bn 1024
backbone.layer3.5.conv1 conv 256 1024 1 1
backbone.layer3.5.bn1 bn 256
backbone.layer3.5.conv2 conv 256 256 3 3
backbone.layer3.5.bn2 bn 256
backbone.layer3.5.conv3 conv 1024 256 1 1
backbone.layer3.5.bn3 bn 1024
backbone.layer4.0.conv1 conv 512 1024 1 1
backbone.layer4.0.bn1 bn 512
backbone.layer4.0.conv2 conv 512 512 3 3
backbone.layer4.0.bn2 bn 512
backbone.layer4.0.conv3 conv 2048 512 1 1
backbone.layer4.0.bn3 bn 2048
backbone.layer4.0.downsample.0 conv 2048 1024 1 1
backbone.layer4.0.downsample.1 bn 2048
backbone.layer4.1.conv1 conv 512 2048 1 1
backbone.layer4.1.bn1 bn 512
backbone.layer4.1.conv2 conv 512 512 3 3
backbone.layer4.1.bn2 bn 512
backbone.layer4.1.conv3 conv 2048 512 1 1
backbone.layer4.1.bn3 bn 2048
backbone.layer4.2.conv1 conv 512 2048 1 1
backbone.layer4.2.bn1 bn 512
backbone.layer4.2.conv2 conv 512 512 3 3
backbone.layer4.2.bn2 bn 512
backbone.layer4.2.conv3 conv 2048 512 1 1
backbone.layer4.2.bn3 bn 2048
heads.bottleneck.0 bn 2048
heads weight 1041 2048
"""
BATCHNORM_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
CLASSES = 1041


def published_shapes() -> dict[str, tuple[int, ...]]:
    """FastReID's key names and shapes, in FastReID's state-dict order."""
    shapes = {}
    for line in FASTREID_R50_BOT.strip().splitlines():
        module, kind, *dims = line.split()
        size = tuple(int(d) for d in dims)
        if kind == "bn":
            shapes.update({f"{module}.{entry}": size for entry in BATCHNORM_ENTRIES})
            shapes[f"{module}.num_batches_tracked"] = ()
        else:
            shapes[f"{module}.weight"] = size
    return shapes


def fastreid_state(seed: int, **extra) -> dict[str, torch.Tensor]:
    """A checkpoint's ``model`` dict under the published names, every tensor distinct (values we can trace)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in published_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.randint(1, 10**6, (), generator=generator)
        elif name.endswith(("running_var", "weight")) and len(shape) == 1:
            state[name] = torch.rand(shape, generator=generator) + 0.5  # BatchNorm scales and variances: positive
        else:
            fan_in = max(1, int(np.prod(shape[1:])))
            state[name] = torch.randn(shape, generator=generator) / fan_in**0.5  # keeps activations finite
    return {**state, **extra}


def test_the_published_listing_has_the_r50_bot_size():
    shapes = published_shapes()
    assert len(shapes) == 324  # 53 convolutions + 54 BatchNorms x 5 + the classifier
    learned = [shape for name, shape in shapes.items() if not name.endswith(("running_mean", "running_var", "tracked"))]
    # ResNet-50 without its fc layer has 23,508,032 parameters; then the BNNeck's scale and shift, the classifier.
    assert sum(int(np.prod(shape)) for shape in learned) == 23_508_032 + 2 * 2048 + CLASSES * 2048


def test_every_published_tensor_lands_in_the_model_in_order(tmp_path):
    state = fastreid_state(0)
    path = tmp_path / "msmt_bot_R50.pth"
    torch.save({"model": state, "iteration": 3}, path)
    model, info = load_model("resnet50_bot", path)
    assert info.source == "fastreid" and info.num_classes == CLASSES and info.model_kwargs == {"gem": False}
    ours = model.state_dict()
    assert len(ours) == len(state)
    for (their_name, theirs), (our_name, value) in zip(state.items(), ours.items()):
        assert their_name.rsplit(".", 1)[-1] == our_name.rsplit(".", 1)[-1], (their_name, our_name)
        assert torch.equal(value, theirs), (their_name, our_name)


def test_imported_extractor_uses_fastreid_preprocessing_and_metric(tmp_path):
    pixel_mean = torch.tensor([120.0, 110.0, 100.0]).view(1, 3, 1, 1)
    pixel_std = torch.tensor([60.0, 55.0, 50.0]).view(1, 3, 1, 1)
    path = tmp_path / "msmt_bot_R50.pth"
    torch.save({"model": fastreid_state(1, pixel_mean=pixel_mean, pixel_std=pixel_std)}, path)
    extractor = build_extractor("resnet50_bot", weights=path, size=(64, 32))
    assert extractor.normalize_features and extractor.distance == "cosine" and extractor.interpolation == "bicubic"
    assert np.allclose(extractor.mean, [120 / 255, 110 / 255, 100 / 255])
    assert np.allclose(extractor.std, [60 / 255, 55 / 255, 50 / 255])
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 32, 3), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_older_naming_without_batch_counters_and_with_gem():
    state = {k: v for k, v in fastreid_state(2).items() if not k.endswith("num_batches_tracked")}
    state["heads.classifier.weight"] = state.pop("heads.weight")
    state["heads.pool_layer.p"] = torch.tensor([2.5])
    info = parse_weights({"model": state})
    model, _ = load_model("resnet50_bot", info)
    assert info.source == "fastreid" and info.model_kwargs == {"gem": True} and info.num_classes == CLASSES
    assert torch.equal(model.classifier.weight, state["heads.classifier.weight"])
    assert model.pool.p.detach().tolist() == [2.5]
    assert np.allclose(info.mean, (0.485, 0.456, 0.406), atol=1e-4)  # no pixel_mean saved: ImageNet


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"backbone.NL_2.0.g.weight": torch.zeros(1)}, "non-local"),  # a non-local block
        ({"heads.bottleneck.1.weight": torch.zeros(1)}, "outside a plain R50 BoT"),  # an embedding layer before the BN
    ],
)
def test_variants_we_cannot_map_are_refused(extra, message):
    with pytest.raises(ShuffleBitsError, match=message):
        parse_weights({"model": fastreid_state(3, **extra)})


def test_a_model_of_another_depth_does_not_load():
    state = {k: v for k, v in fastreid_state(4).items() if not k.startswith("backbone.layer3.5.")}  # a ResNet-4x
    with pytest.raises(ShuffleBitsError, match="missing keys"):
        load_model("resnet50_bot", parse_weights({"model": state}))
