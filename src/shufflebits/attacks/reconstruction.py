"""Image reconstruction: invert the black box with a decoder trained on the attacker's own images.

``autoencoder`` minimises pixel MSE. ``gan`` follows the paper: a perceptual
loss plus a least-squares GAN whose discriminator also sees the feature
vector (adversarial weight 0.06). The paper's perceptual network is ImageNet
VGG, which cannot be downloaded here; the offline default is a surrogate the
attacker trains itself: a small CNN that regresses the black-box feature from
the image, whose intermediate activations are the perceptual space (they are
tuned to what the victim model attends to). Any module returning a list of
activations can be passed as ``perceptual``.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_write
from ..errors import ShuffleBitsError
from ..registry import register
from .views import apply_view, standardized

VARIANTS = ("autoencoder", "gan")
ADVERSARIAL_WEIGHT = 0.06


class _UpBlock(nn.Module):
    """x2 nearest upsampling with a residual pair of 3x3 convolutions."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout),
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


class _Discriminator(nn.Module):
    """Least-squares critic of (image, feature vector) pairs."""

    def __init__(self, in_dim: int, image_size: tuple[int, int]):
        super().__init__()
        h, w = image_size
        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 64, 4, 2, 1), nn.LeakyReLU(0.2),
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
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU()),
            nn.Sequential(nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU()),
        ])
        self.head = nn.Linear(64, feature_dim)

    def forward(self, x) -> list[torch.Tensor]:
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
        return activations

    def fit(self, images: torch.Tensor, targets: torch.Tensor, epochs: int, batch_size: int, generator) -> "SurrogatePerceptual":
        """Regress standardised black-box features (the attacker has both for its own images)."""
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        self.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(images.device)
            for start in range(0, len(images), batch_size):
                batch = order[start : start + batch_size]
                if len(batch) < 2:
                    continue
                pooled = self(images[batch])[-1].mean(dim=(2, 3))
                loss = F.mse_loss(self.head(pooled), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


class Reconstructor:
    """Learn features -> image on the attacker's (features, images); ``predict`` inverts leaked features.

    ``view`` (as in ``AttributeInference``) turns ciphertext words into inputs;
    ``image_size`` defaults to the size of the training images.
    """

    def __init__(
        self,
        variant: str = "autoencoder",
        view: str | None = None,
        image_size: tuple[int, int] | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        width: int = 64,
        lr: float = 1e-3,
        perceptual: nn.Module | None = None,
        surrogate_epochs: int = 10,
        device: str = "cpu",
        random_state: int = 0,
        progress: bool = False,
    ):
        self.variant = variant
        self.view = view
        self.image_size = image_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.width = width
        self.lr = lr
        self.perceptual = perceptual
        self.surrogate_epochs = surrogate_epochs
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def _inputs(self, X) -> torch.Tensor:
        return torch.from_numpy(standardized(apply_view(self.view, X), self.mean_, self.scale_)).to(self.device)

    def fit(self, X, images) -> "Reconstructor":
        """``X``: features (or words, with ``view``), ``images``: (n, 3, h, w) float in [0, 1]."""
        if self.variant not in VARIANTS:
            raise ShuffleBitsError(f"unknown reconstruction variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if images is None or len(images) != len(X):
            raise ShuffleBitsError("reconstruction needs one attacker image per feature vector")
        self.image_size_ = tuple(self.image_size or np.asarray(images).shape[2:])
        Z = apply_view(self.view, X).astype(np.float64)
        self.mean_ = Z.mean(axis=0)
        scale = Z.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self._train(self._inputs(X), _resize(images, self.image_size_, self.device))
        return self

    def _train(self, Z: torch.Tensor, T: torch.Tensor) -> None:
        generator = torch.Generator().manual_seed(self.random_state)
        self.decoder_ = Decoder(Z.shape[1], self.image_size_, self.width).to(self.device)
        opt_g = torch.optim.Adam(self.decoder_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        gan = self.variant == "gan"
        if gan:
            perceptual = self.perceptual
            if perceptual is None:
                perceptual = SurrogatePerceptual(Z.shape[1]).to(self.device)
                perceptual.fit(T, Z, self.surrogate_epochs, self.batch_size, generator)
            self.perceptual_ = perceptual
            critic = _Discriminator(Z.shape[1], self.image_size_).to(self.device)
            opt_d = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.999))
        self.loss_history_ = []
        for _ in tqdm(range(self.epochs), desc=f"recon-{self.variant}", disable=not self.progress, leave=False):
            self.decoder_.train()
            order = torch.randperm(len(Z), generator=generator).to(self.device)
            total = 0.0
            for start in range(0, len(Z), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) < 2:
                    continue
                f, real = Z[batch], T[batch]
                fake = self.decoder_(f)
                loss = F.mse_loss(fake, real)
                if gan:
                    opt_d.zero_grad()
                    d_loss = ((critic(real, f) - 1) ** 2).mean() + (critic(fake.detach(), f) ** 2).mean()
                    d_loss.backward()
                    opt_d.step()
                    loss = loss + sum(F.mse_loss(a, b) for a, b in zip(self.perceptual_(fake), self.perceptual_(real)))
                    loss = loss + ADVERSARIAL_WEIGHT * ((critic(fake, f) - 1) ** 2).mean()
                opt_g.zero_grad()
                loss.backward()
                opt_g.step()
                total += float(loss.detach()) * len(batch)
            self.loss_history_.append(total / len(Z))

    def predict(self, X) -> np.ndarray:
        """Reconstructed images (n, 3, h, w) float32 in [0, 1]."""
        Z = self._inputs(X)
        self.decoder_.eval()
        with torch.no_grad():
            out = [self.decoder_(Z[i : i + 256]).cpu() for i in range(0, len(Z), 256)]
        return torch.cat(out).numpy().astype(np.float32)


def _resize(images, size: tuple[int, int], device: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    if tuple(tensor.shape[2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor.clamp(0, 1)


def _embed(embed, images: np.ndarray, batch: int = 128) -> np.ndarray:
    return np.concatenate([np.asarray(embed(images[i : i + batch]), dtype=np.float32) for i in range(0, len(images), batch)])


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return 1.0 - np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-12)


def rank1(query_features, gallery_features, query, gallery, metric: str = "cosine") -> float:
    """Rank-1 of ``query_features`` (rows of ``query``) against ``gallery_features`` (rows of ``gallery``)."""
    from ..reid import evaluate

    result = evaluate(query_features, gallery_features, query.pids, gallery.pids, query.camids, gallery.camids, metric=metric)
    return float(result["cmc"][0])


def shuffled_rank1(query_features, gallery_features, query, gallery, seed: int = 0, metric: str = "cosine") -> float:
    """Chance for rank-1: the same query vectors handed to the wrong people."""
    order = np.random.default_rng(seed).permutation(len(query_features))
    return rank1(np.asarray(query_features)[order], gallery_features, query, gallery, metric)


def evaluate_reconstruction(
    reconstructions: np.ndarray,
    query,
    embed,
    gallery=None,
    attribute_model=None,
    baseline_images: np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """The paper's evaluation: reconstructions back through the black box.

    ``cosine_distance``: mean cosine distance between the re-embedded
    reconstructions and ``query.features``; ``chance``: the same with the
    reconstructions handed to the wrong people (a typical pedestrian scores
    well without telling anyone apart), beside ``mean_image_distance`` (the
    mean attacker image, ``baseline_images``, else the mean reconstruction)
    and ``noise_distance`` (uniform noise images). With a
    ``gallery``: ``rank1`` of the re-embedded reconstructions as queries and
    ``rank1_chance`` (the same queries shuffled across people). With an
    ``attribute_model`` (trained on plaintext features): ``attributes``, its
    scores on the re-embedded reconstructions.
    """
    rng = np.random.default_rng(seed)
    recon_features = _embed(embed, reconstructions)
    originals = np.asarray(query.features, dtype=np.float32)
    mean_image = (baseline_images if baseline_images is not None else reconstructions).mean(axis=0, keepdims=True)
    mean_features = np.repeat(_embed(embed, mean_image.astype(np.float32)), len(originals), axis=0)
    noise = rng.uniform(0, 1, reconstructions.shape).astype(np.float32)
    shuffled = recon_features[rng.permutation(len(recon_features))]
    result = {
        "cosine_distance": float(_cosine_distance(recon_features, originals).mean()),
        "chance": float(_cosine_distance(shuffled, originals).mean()),
        "mean_image_distance": float(_cosine_distance(mean_features, originals).mean()),
        "noise_distance": float(_cosine_distance(_embed(embed, noise), originals).mean()),
        "n": int(len(originals)),
    }
    if gallery is not None:
        result["rank1"] = rank1(recon_features, gallery.features, query, gallery)
        result["rank1_chance"] = shuffled_rank1(recon_features, gallery.features, query, gallery, seed)
        result["gallery_identities"] = int(np.unique(gallery.pids).size)
    if attribute_model is not None:
        result["attributes"] = attribute_model.score(recon_features, query.labels)
    return result


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, columns: int = 8, count: int = 16) -> np.ndarray:
    """uint8 ``(H, W, 3)`` image of pairs original | reconstruction, ``count`` pairs in rows of ``columns`` pairs."""
    count = min(count, len(reconstructions))
    if count == 0:
        raise ShuffleBitsError("no reconstructions to draw")
    size = reconstructions.shape[2:]
    originals = _resize(originals[:count], size, "cpu").numpy()
    h, w = size
    rows = -(-count // columns)
    canvas = np.ones((rows * (h + 2), min(count, columns) * (2 * w + 4), 3), dtype=np.float32)
    for i in range(count):
        r, c = divmod(i, columns)
        y, x = r * (h + 2), c * (2 * w + 4)
        canvas[y : y + h, x : x + w] = originals[i].transpose(1, 2, 0)
        canvas[y : y + h, x + w : x + 2 * w] = reconstructions[i].transpose(1, 2, 0)
    image = Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, 256 // image.height)
    return np.asarray(image.resize((image.width * scale, image.height * scale), Image.NEAREST))


def grid_png(grid: np.ndarray) -> bytes:
    """PNG bytes of a ``reconstruction_grid``."""
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(originals: np.ndarray, reconstructions: np.ndarray, path, columns: int = 8, count: int = 16) -> None:
    """PNG of pairs original | reconstruction (``reconstruction_grid``), written atomically."""
    png = grid_png(reconstruction_grid(originals, reconstructions, columns, count))
    with atomic_write(path, "wb") as handle:
        handle.write(png)


@register("attack", "recon-autoencoder")
def _recon_autoencoder(**kwargs) -> Reconstructor:
    return Reconstructor(variant="autoencoder", **kwargs)


@register("attack", "recon-gan")
def _recon_gan(**kwargs) -> Reconstructor:
    return Reconstructor(variant="gan", **kwargs)
