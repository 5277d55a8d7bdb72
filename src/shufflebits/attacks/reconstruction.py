"""Image reconstruction: invert the black box with a decoder trained on the attacker's own images.

``autoencoder`` minimises pixel MSE. ``gan`` follows the paper: a perceptual
loss plus a least-squares GAN whose discriminator also sees the feature
vector (adversarial weight 0.06). The perceptual network defaults to the
surrogate of ``decoders.SurrogatePerceptual``; any module returning a list of
activations can be passed as ``perceptual``. ``consistency`` adds to the pixel
loss a feature-consistency loss: the reconstruction, run through the
attacker's own differentiable copy of the plaintext extractor
(``feature_model``), should have the leaked feature (cosine); without a copy,
through a surrogate distilled from the attacker's black-box queries (its own
images and their features). The networks live in ``decoders``, the
black-box evaluation and grids in ``reconstruction_eval``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from ..engine.loop import run_epoch
from ..errors import ShuffleBitsError
from ..registry import register
from .decoders import Decoder, Discriminator, SurrogatePerceptual, image_tensor
from .views import apply_view, standardized, validated

VARIANTS = ("autoencoder", "gan", "consistency")
ADVERSARIAL_WEIGHT = 0.06


def _cosine_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()


class Reconstructor(RegressorMixin, BaseEstimator):
    """Learn features -> image on the attacker's (features, images); ``predict`` inverts leaked features.

    ``view`` (as in ``AttributeInference``) turns ciphertext words into inputs;
    ``image_size`` defaults to the size of the training images. A scikit-learn
    estimator whose target ``y`` is the images; ``score`` is the negative pixel
    MSE, and ``reconstruction_eval.evaluate_reconstruction`` gives the black-box
    figures beside their chance levels.
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
        feature_model: nn.Module | None = None,
        feature_weight: float = 1.0,
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
        self.feature_model = feature_model
        self.feature_weight = feature_weight
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def __sklearn_tags__(self):
        # The target is a stack of images: many outputs per row, never one.
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def _inputs(self, X) -> torch.Tensor:
        return torch.from_numpy(standardized(apply_view(self.view, X), self.mean_, self.scale_)).to(self.device)

    def fit(self, X, y, features=None) -> Reconstructor:
        """``X``: features (or words, with ``view``); ``y``: the attacker's images, (n, 3, h, w) float in [0, 1].

        ``features``: the plaintext features of ``y`` that ``feature_model``
        should give back (``consistency``; default ``X``, which must then be
        plaintext features, ``view=None``).
        """
        if self.variant not in VARIANTS:
            choices = ", ".join(VARIANTS)
            raise ShuffleBitsError(f"unknown reconstruction variant {self.variant!r}; choose one of {choices}")
        X = validated(self, X, ensure_min_samples=2)
        if y is None or len(y) != len(X) or np.ndim(y) != 4:
            raise ShuffleBitsError("reconstruction needs one attacker image (3, h, w) per feature vector")
        self.image_size_ = tuple(self.image_size or np.asarray(y).shape[2:])
        Z = apply_view(self.view, X).astype(np.float64)
        self.mean_ = Z.mean(axis=0)
        scale = Z.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        targets = None
        if self.variant == "consistency" and self.feature_model is not None:
            if features is None and self.view is not None:
                raise ShuffleBitsError("feature consistency through a view needs the images' plaintext `features`")
            targets = np.asarray(X if features is None else features, dtype=np.float32)
            if len(targets) != len(X):
                raise ShuffleBitsError("`features` needs one plaintext feature vector per image")
            targets = torch.from_numpy(targets).to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self._train(self._inputs(X), image_tensor(y, self.image_size_, self.device), targets)
        return self

    def _feature_consistency(self, Z: torch.Tensor, T: torch.Tensor, targets: torch.Tensor | None, generator):
        """(images -> features, targets): the attacker's copy of the extractor, else a distilled surrogate."""
        if targets is not None:
            model = self.feature_model
            if isinstance(model, nn.Module):  # a frozen copy: the caller's model keeps its state
                model = copy.deepcopy(model).eval().requires_grad_(False)
            return model, targets
        surrogate = SurrogatePerceptual(Z.shape[1]).to(self.device)
        surrogate.fit(T, Z, self.surrogate_epochs, self.batch_size, generator)
        return (lambda images: surrogate.head(surrogate(images)[-1].mean(dim=(2, 3)))), Z

    def _train(self, Z: torch.Tensor, T: torch.Tensor, targets: torch.Tensor | None = None) -> None:
        generator = torch.Generator().manual_seed(self.random_state)
        self.decoder_ = Decoder(Z.shape[1], self.image_size_, self.width).to(self.device)
        opt_g = torch.optim.Adam(self.decoder_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        gan = self.variant == "gan"
        consistency = self.variant == "consistency"
        if consistency:
            extractor, wanted = self._feature_consistency(Z, T, targets, generator)
        if gan:
            perceptual = self.perceptual
            if perceptual is None:
                perceptual = SurrogatePerceptual(Z.shape[1]).to(self.device)
                perceptual.fit(T, Z, self.surrogate_epochs, self.batch_size, generator)
            self.perceptual_ = perceptual
            critic = Discriminator(Z.shape[1], self.image_size_).to(self.device)
            opt_d = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.999))

        def step(batch: torch.Tensor) -> float:
            f, real = Z[batch], T[batch]
            fake = self.decoder_(f)
            loss = F.mse_loss(fake, real)
            if consistency:
                loss = loss + self.feature_weight * _cosine_loss(extractor(fake), wanted[batch])
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
            return float(loss.detach())

        self.loss_history_ = []
        for _ in tqdm(range(self.epochs), desc=f"recon-{self.variant}", disable=not self.progress, leave=False):
            self.decoder_.train()
            self.loss_history_.append(run_epoch(len(Z), self.batch_size, generator, step, self.device) / len(Z))

    def predict(self, X) -> np.ndarray:
        """Reconstructed images (n, 3, h, w) float32 in [0, 1]."""
        check_is_fitted(self)
        Z = self._inputs(validated(self, X, reset=False))
        self.decoder_.eval()
        with torch.no_grad():
            out = [self.decoder_(Z[i : i + 256]).cpu() for i in range(0, len(Z), 256)]
        return torch.cat(out).numpy().astype(np.float32)

    def score(self, X, y) -> float:
        """Negative mean squared pixel error against images ``y`` at ``image_size_`` (higher is better)."""
        check_is_fitted(self)
        target = image_tensor(y, self.image_size_, "cpu").numpy()
        return -float(np.mean((self.predict(X).astype(np.float64) - target) ** 2))


@register("attack", "recon-autoencoder")
def _recon_autoencoder(**kwargs) -> Reconstructor:
    return Reconstructor(variant="autoencoder", **kwargs)


@register("attack", "recon-gan")
def _recon_gan(**kwargs) -> Reconstructor:
    return Reconstructor(variant="gan", **kwargs)


@register("attack", "recon-consistency")
def _recon_consistency(**kwargs) -> Reconstructor:
    return Reconstructor(variant="consistency", **kwargs)
