"""OSNet (Zhou et al., ICCV 2019), written so torchreid checkpoints load with ``strict=True``.

Module names and nesting mirror torchreid's ``osnet.py`` (``conv1.conv``,
``conv2.0.conv2b.1.bn``, ``gate.fc1``, ``fc.0``, ``classifier``...), because
the state-dict keys are the module paths: any renaming would break the import of
real torchreid weights. Only the plain OSNet variants (no instance norm) exist.

Forward: in ``eval()`` the 512-d output of the ``fc`` block (Linear, BN, ReLU) —
torchreid's feature, not normalised unless ``normalize=True``; in ``train()``
``(logits, features)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class ConvLayer(nn.Module):
    """k x k convolution + BN + ReLU (the stem)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv1x1(nn.Module):
    """1x1 convolution + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv1x1Linear(nn.Module):
    """1x1 convolution + BN, no activation (block outputs and shortcuts)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """Pointwise 1x1 then depthwise 3x3, BN, ReLU: OSNet's cheap 3x3."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False, groups=out_channels)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """Aggregation gate shared by all streams: squeeze, 1x1 -> ReLU -> 1x1 -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class OSBlock(nn.Module):
    """Omni-scale residual block: four streams of 1-4 stacked LightConv3x3, gated and summed."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_reduction: int = 4):
        super().__init__()
        mid = out_channels // bottleneck_reduction
        self.conv1 = Conv1x1(in_channels, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(4)))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels)
        self.downsample = Conv1x1Linear(in_channels, out_channels) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        streams = (self.conv2a(x1), self.conv2b(x1), self.conv2c(x1), self.conv2d(x1))
        x2 = sum(self.gate(stream) for stream in streams)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(x2) + identity)


def _stage(in_channels: int, out_channels: int, blocks: int, reduce_spatial_size: bool) -> nn.Sequential:
    layers: list[nn.Module] = [OSBlock(in_channels, out_channels)]
    layers += [OSBlock(out_channels, out_channels) for _ in range(1, blocks)]
    if reduce_spatial_size:
        layers.append(nn.Sequential(Conv1x1(out_channels, out_channels), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """OSNet backbone + fc embedding + classifier, torchreid layout."""

    def __init__(
        self,
        channels: tuple[int, int, int, int],
        num_classes: int = 1000,
        feature_dim: int = 512,
        layers: tuple[int, int, int] = (2, 2, 2),
        normalize: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.normalize = normalize
        self.conv1 = ConvLayer(3, channels[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(channels[0], channels[1], layers[0], reduce_spatial_size=True)
        self.conv3 = _stage(channels[1], channels[2], layers[1], reduce_spatial_size=True)
        self.conv4 = _stage(channels[2], channels[3], layers[2], reduce_spatial_size=False)
        self.conv5 = Conv1x1(channels[3], channels[3])
        self.fc = nn.Sequential(nn.Linear(channels[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)
        self._init_params()

    def _init_params(self) -> None:
        # torchreid's initialisation, so training from scratch behaves like theirs.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        features = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if self.training:
            return self.classifier(features), features
        return F.normalize(features, dim=1) if self.normalize else features


_WIDTHS = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_75": (48, 192, 288, 384),
    "osnet_x0_5": (32, 128, 192, 256),
    "osnet_x0_25": (16, 64, 96, 128),
}


def _factory(name: str):
    channels = _WIDTHS[name]

    def build(num_classes: int = 1000, normalize: bool = False) -> OSNet:
        return OSNet(channels, num_classes=num_classes, normalize=normalize)

    build.__name__ = name
    build.__doc__ = f"{name}: OSNet with stage widths {channels}, 512-d features."
    return register("model", name)(build)


for _name in _WIDTHS:
    _factory(_name)
