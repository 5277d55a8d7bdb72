"""A toy victim for the attack tests: pedestrians as coloured blocks, a random ReLU 'network' as the black box.

Identities carry attributes (hat, gender as body width, upper colour of 4,
lower colour of 3, bag); cameras change the background and brightness. The
embedding is a fixed random projection of the image followed by ReLU, scaled
like a post-ReLU re-ID feature (about a third exact zeros).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shufflebits.attacks.types import LabelledFeatures

NAMES = ["hat", "gender", "up_colour", "down_colour", "bag"]
CLASSES = [2, 2, 4, 3, 2]
PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9], [0.9, 0.9, 0.2]], dtype=np.float32)


def render(attrs: np.ndarray, camids: np.ndarray, rng: np.random.Generator, size=(32, 16)) -> np.ndarray:
    h, w = size
    n = len(attrs)
    images = np.empty((n, 3, h, w), dtype=np.float32)
    for i, (hat, gender, up, down, bag) in enumerate(attrs):
        img = np.full((3, h, w), 0.3 + 0.15 * camids[i], dtype=np.float32)[:] * np.array([1.0, 0.9, 0.8])[:, None, None]
        half = w // 4 if gender == 0 else w // 5
        c0, c1 = w // 2 - half, w // 2 + half
        img[:, h // 5 : h // 2, c0:c1] = PALETTE[up][:, None, None]
        img[:, h // 2 : h - 2, c0:c1] = PALETTE[down % 4][:, None, None] * 0.7
        img[:, 1 : h // 5, w // 2 - 2 : w // 2 + 2] = 0.05 if hat else 0.85
        if bag:
            img[:, h // 3 : h // 2, c1 : min(w, c1 + 3)] = 0.6
        images[i] = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
    return images.astype(np.float32)


class ToyEmbed:
    """images (n, 3, h, w) in [0, 1] -> (n, d) float32 post-ReLU features."""

    def __init__(self, d: int, size=(32, 16), seed: int = 0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0, 1, (3 * size[0] * size[1], d)).astype(np.float32)
        reference = rng.uniform(0, 1, (64, 3 * size[0] * size[1])).astype(np.float32)
        z = reference @ self.W
        self.mu, self.sd = z.mean(0), z.std(0) + 1e-6
        self.shift = rng.normal(0.15, 0.4, d).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        z = (images.reshape(len(images), -1) @ self.W - self.mu) / self.sd
        return np.maximum(0.5 * z + self.shift, 0).astype(np.float32)

    def module(self) -> torch.nn.Module:
        """The same black box as a differentiable torch module (the attacker's own copy of the extractor)."""
        return _TorchToyEmbed(self)


class _TorchToyEmbed(torch.nn.Module):
    def __init__(self, embed: ToyEmbed):
        super().__init__()
        for name in ("W", "mu", "sd", "shift"):
            self.register_buffer(name, torch.from_numpy(np.asarray(getattr(embed, name), dtype=np.float32)))
        self.scale = torch.nn.Parameter(torch.tensor(0.5))  # a parameter, so freezing the copy is observable

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = (images.reshape(len(images), -1) @ self.W - self.mu) / self.sd
        return torch.relu(self.scale * z + self.shift)


def make_world(identities=60, per_id=6, d=64, size=(32, 16), seed=0, missing=0.1):
    """Attacker set, user query, user gallery (disjoint identities) and the black box."""
    rng = np.random.default_rng(seed)
    embed = ToyEmbed(d, size, seed)
    attrs = np.stack([rng.integers(0, c, identities) for c in CLASSES], axis=1)
    pids = np.repeat(np.arange(identities), per_id)
    camids = np.tile(np.arange(per_id) % 3, identities)
    labels = attrs[pids].copy()
    images = render(labels, camids, rng, size)
    labels[rng.random(labels.shape) < missing] = -1
    features = embed(images)

    def part(mask):
        return LabelledFeatures(
            features=features[mask],
            labels=labels[mask],
            attribute_names=list(NAMES),
            num_classes=list(CLASSES),
            pids=pids[mask],
            camids=camids[mask],
            images=images[mask],
        )

    attacker_ids = pids < identities // 2
    users = ~attacker_ids
    query = users & (camids == 0)
    gallery = users & (camids != 0)
    return part(attacker_ids), part(query), part(gallery), embed


def relu_features(n: int, d: int, seed: int = 0, population: int = 0) -> np.ndarray:
    """Post-ReLU float32 features; ``population`` fixes the per-dimension distributions."""
    pop = np.random.default_rng(1000 + population)
    mu, sd = pop.normal(0.1, 0.5, d), pop.uniform(0.3, 1.0, d)
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(mu, sd, (n, d)) * 0.7, 0).astype(np.float32)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The toy models are tiny: a second thread only adds synchronisation (and spinning on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
