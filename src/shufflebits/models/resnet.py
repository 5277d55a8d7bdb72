"""ResNet50 "Bag of Tricks" re-ID baseline (Luo et al., 2019), as FastReID builds it.

Last stride 1 (16x8 feature map at 256x128), average or GeM pooling, and a
BNNeck: the pooled feature goes to the triplet loss, its batch-normalised copy
(bias frozen) to the bias-free ID classifier and, in ``eval()``, out as the
feature. The stem max-pool is FastReID's (3x3, stride 2, no padding, ceil mode)
so imported FastReID weights see the same feature maps they were trained on.
Keys follow torchvision's ResNet (``layer1.0.conv1.weight``...), which is also
FastReID's backbone naming minus the ``backbone.`` prefix: see ``fastreid.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent ``p`` (FastReID's ``GeneralizedMeanPoolingP``)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet50BoT(nn.Module):
    """ResNet50 backbone + pooling + BNNeck + bias-free classifier; 2048-d features."""

    def __init__(self, num_classes: int = 1000, gem: bool = False, last_stride: int = 1, normalize: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.feature_dim = 2048
        self.normalize = normalize
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.layer1 = self._stage(64, 64, 3, stride=1)
        self.layer2 = self._stage(256, 128, 4, stride=2)
        self.layer3 = self._stage(512, 256, 6, stride=2)
        self.layer4 = self._stage(1024, 512, 3, stride=last_stride)
        self.pool = GeM() if gem else nn.AdaptiveAvgPool2d(1)
        self.bottleneck = nn.BatchNorm1d(self.feature_dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        self._init_params()

    @staticmethod
    def _stage(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [Bottleneck(in_channels, planes, stride)]
        layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_params(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # BoT: a small-variance classifier keeps early logits near uniform.
        nn.init.normal_(self.classifier.weight, 0, 0.001)

    def forward(self, x: torch.Tensor):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled = torch.flatten(self.pool(x), 1)
        neck = self.bottleneck(pooled)
        if self.training:
            return self.classifier(neck), pooled
        return F.normalize(neck, dim=1) if self.normalize else neck


@register("model", "resnet50_bot")
def resnet50_bot(
    num_classes: int = 1000, gem: bool = False, last_stride: int = 1, normalize: bool = False
) -> ResNet50BoT:
    """ResNet50-BoT (BNNeck, last stride 1); ``gem=True`` for GeM pooling."""
    return ResNet50BoT(num_classes=num_classes, gem=gem, last_stride=last_stride, normalize=normalize)
