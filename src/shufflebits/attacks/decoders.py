"""The networks of the reconstruction attack: the decoder, its critic and the surrogate perceptual network.

The paper's perceptual network is ImageNet VGG, which cannot be downloaded
here; the offline default is a surrogate the attacker trains itself: a small
CNN that regresses the black-box feature from the image, whose intermediate
activations are the perceptual space (they are tuned to what the victim model
attends to).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine.loop import run_epoch
from ..errors import ShuffleBitsError


class _UpBlock(nn.Module):
    """x2 nearest upsampling with a residual pair of 3x3 convolutions."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(self.body(x) + self.skip(x))


class Decoder(nn.Module):
    """Feature vector -> dense layers -> (width, h/8, w/8) map -> 3 residual upsamplings -> sigmoid image."""

    def __init__(self, in_dim: int, image_size: tuple[int, int], width: int = 64):
        super().__init__()
        h, w = image_size
        if h % 8 or w % 8:
            raise ShuffleBitsError(f"reconstruction image size must be divisible by 8, got {h}x{w}")
        self.shape = (width, h // 8, w // 8)
        self.dense = nn.Sequential(
            nn.Linear(in_dim, 512), nn.ReLU(), nn.Linear(512, width * (h // 8) * (w // 8)), nn.ReLU()
        )
        self.up = nn.Sequential(_UpBlock(width, width), _UpBlock(width, width // 2), _UpBlock(width // 2, width // 4))
        self.out = nn.Conv2d(width // 4, 3, 3, padding=1)

    def forward(self, f):
        return torch.sigmoid(self.out(self.up(self.dense(f).view(-1, *self.shape))))


class Discriminator(nn.Module):
    """Least-squares critic of (image, feature vector) pairs."""

    def __init__(self, in_dim: int, image_size: tuple[int, int]):
        super().__init__()
        h, w = image_size
        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.cond = nn.Sequential(nn.Linear(in_dim, 128), nn.LeakyReLU(0.2))
        self.out = nn.Linear(64 * (h // 8) * (w // 8) + 128, 1)

    def forward(self, image, f):
        return self.out(torch.cat([self.conv(image), self.cond(f)], dim=1))


class SurrogatePerceptual(nn.Module):
    """A small CNN trained to predict the black-box feature from the image; its activations are the perceptual space."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU()),
                nn.Sequential(nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU()),
            ]
        )
        self.head = nn.Linear(64, feature_dim)

    def forward(self, x) -> list[torch.Tensor]:
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
        return activations

    def fit(
        self, images: torch.Tensor, targets: torch.Tensor, epochs: int, batch_size: int, generator: torch.Generator
    ) -> SurrogatePerceptual:
        """Regress standardised black-box features (the attacker has both for its own images)."""
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)

        def step(batch: torch.Tensor) -> None:
            pooled = self(images[batch])[-1].mean(dim=(2, 3))
            loss = F.mse_loss(self.head(pooled), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        self.train()
        for _ in range(epochs):
            run_epoch(len(images), batch_size, generator, step, images.device)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def image_tensor(images, size: tuple[int, int], device: str) -> torch.Tensor:
    """``(n, 3, h, w)`` images as a float tensor at ``size`` (bilinear when it differs), clamped to [0, 1]."""
    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    if tuple(tensor.shape[2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor.clamp(0, 1)
