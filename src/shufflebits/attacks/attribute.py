"""Attribute inference: predict a person's attributes from a feature vector.

The paper's attack trains one softmax head per attribute on the attacker's own
labelled images and applies it to leaked user features. Both configurations
carve a validation split from the attacker's data (by identity when groups are
given, since users are other people); the users' data is only ever scored.
The scores and their chance levels live in ``scoring``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from ..engine.loop import run_epoch
from ..errors import ShuffleBitsError
from ..registry import register
from ..runtime import torch_threads
from .scoring import attribute_scores
from .views import apply_view, column_statistics, standardized, validated

CONFIGS = ("mlp", "paper")


def _validation_split(n: int, groups: np.ndarray | None, fraction: float, rng: np.random.Generator):
    """Train/validation row indices; whole groups (identities) go to one side."""
    if groups is None:
        order = rng.permutation(n)
        n_val = max(1, round(fraction * n))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    unique = rng.permutation(np.unique(groups))
    n_val = max(1, round(fraction * len(unique)))
    val = np.isin(groups, unique[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


class _MLP(nn.Module):
    """Shared trunk, one linear head per attribute."""

    def __init__(self, d: int, hidden: int, classes: list[int], dropout: float, input_dropout: float):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Dropout(input_dropout),
            nn.Linear(d, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in classes)

    def forward(self, x):
        h = self.trunk(x)
        return [head(h) for head in self.heads]


class _PaperHeads(nn.Module):
    """Per attribute BatchNorm -> Dense (softmax in the loss), as in the paper, computed for all heads at once.

    Every head normalises the same input, so the batch statistics (and running
    statistics) are shared and only each head's BatchNorm scale and shift
    differ; one batched product then replaces a loop over small layers.
    """

    def __init__(self, d: int, classes: list[int]):
        super().__init__()
        self.classes = list(classes)
        self.norm = nn.BatchNorm1d(d, affine=False)
        self.gamma = nn.Parameter(torch.ones(len(classes), d))
        self.beta = nn.Parameter(torch.zeros(len(classes), d))
        self.weight = nn.Parameter(torch.empty(len(classes), max(classes), d))
        self.bias = nn.Parameter(torch.zeros(len(classes), max(classes)))
        bound = 1.0 / d**0.5  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        z = self.norm(x)[:, None, :] * self.gamma + self.beta  # (n, heads, d)
        logits = torch.einsum("nad,acd->nac", z, self.weight) + self.bias
        return [logits[:, a, :c] for a, c in enumerate(self.classes)]


class AttributeInference(ClassifierMixin, BaseEstimator):
    """One classification head per attribute on (views of) feature vectors.

    ``config="paper"``: per-attribute BatchNorm -> Dense, Adam 5e-5 then 1e-5
    from half-way, batch 128, 100 epochs, class-balanced loss per head.
    ``config="mlp"`` (default): a shared two-layer MLP trunk, early-stopped on
    the validation split (at most ``epochs``, default 60), with ``dropout``
    between its layers and ``input_dropout`` on its inputs.
    ``view`` turns ciphertext words into features first (see ``views.VIEWS``);
    ``None`` takes ``X`` as features. ``y`` is ``(n, attributes)`` class
    indices, or ``(n,)`` for one attribute; -1 marks a missing label, left out
    of loss and metric. A scikit-learn estimator: ``clone`` and ``set_params``
    work, ``score`` is the mean balanced accuracy, and ``attribute_scores``
    gives each attribute's score beside its chance level.
    """

    def __init__(
        self,
        config: str = "mlp",
        view: str | None = None,
        epochs: int | None = None,
        batch_size: int = 128,
        hidden: int = 512,
        dropout: float = 0.3,
        input_dropout: float = 0.15,
        lr: float | None = None,
        patience: int = 10,
        validation_fraction: float = 0.2,
        device: str = "cpu",
        random_state: int = 0,
        progress: bool = False,
    ):
        self.config = config
        self.view = view
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden = hidden
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.lr = lr
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def __sklearn_tags__(self):
        # Several attributes at once (multi-output); -1 = missing label has no
        # scikit-learn tag, so it is stated in the docstring instead.
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _features(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(standardized(apply_view(self.view, X), self.mean_, self.scale_)).to(self.device)

    def _logits(self, Z: torch.Tensor) -> list[torch.Tensor]:
        self.model_.eval()
        with torch.no_grad():
            chunks = [self.model_(Z[i : i + 4096]) for i in range(0, len(Z), 4096)]
        return [torch.cat([c[a] for c in chunks]) for a in range(len(self.num_classes_))]

    def _predict_tensor(self, Z: torch.Tensor) -> np.ndarray:
        return np.stack([lg.argmax(1).cpu().numpy() for lg in self._logits(Z)], axis=1)

    def fit(self, X, y, groups=None, num_classes=None, attribute_names=None):
        """Train on the attacker's ``X`` with labels ``y``; ``groups`` (identities) shape the validation split."""
        if self.config not in CONFIGS:
            choices = ", ".join(CONFIGS)
            raise ShuffleBitsError(f"unknown attribute-inference config {self.config!r}; choose one of {choices}")
        X, y = validated(self, X, y, multi_output=True, ensure_min_samples=2)
        y = _labels(y)
        self.single_output_ = y.ndim == 1
        y = y.reshape(len(y), -1)
        self.num_classes_ = list(num_classes) if num_classes is not None else [int(max(c.max(), 0)) + 1 for c in y.T]
        if len(self.num_classes_) != y.shape[1] or any(c.max() >= k for c, k in zip(y.T, self.num_classes_)):
            raise ShuffleBitsError(f"num_classes {self.num_classes_} does not cover the labels (one count per column)")
        names = attribute_names if attribute_names is not None else [f"attr{i}" for i in range(y.shape[1])]
        self.attribute_names_ = list(names)
        classes = [np.arange(k) for k in self.num_classes_]
        self.classes_ = classes[0] if self.single_output_ else classes
        rng = np.random.default_rng(self.random_state)
        groups = None if groups is None else np.asarray(groups)
        train_idx, val_idx = _validation_split(len(y), groups, self.validation_fraction, rng)
        if len(train_idx) == 0:
            raise ShuffleBitsError("the validation split took every row; pass more groups or lower validation_fraction")
        self.validation_index_ = val_idx

        Z_all = apply_view(self.view, X)
        self.mean_, scale = column_statistics(Z_all, train_idx)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = torch.from_numpy(standardized(Z_all, self.mean_, self.scale_)).to(self.device)  # clipped as in predict
        Y = torch.from_numpy(y).to(self.device)
        Z_train, Y_train, Z_val = Z[train_idx], Y[train_idx], Z[val_idx]

        with torch.random.fork_rng(devices=[]), torch_threads(1 if self.config == "paper" else None):
            torch.manual_seed(self.random_state)
            self._train(Z_train, Y_train, Z_val, y[val_idx])
        return self

    def _losses(self, Y_train: torch.Tensor) -> list[nn.CrossEntropyLoss]:
        """Class-balanced cross-entropy per head, ignoring -1."""
        losses = []
        for a, c in enumerate(self.num_classes_):
            labels = Y_train[:, a][Y_train[:, a] >= 0]
            counts = torch.bincount(labels, minlength=c).float()
            weight = torch.where(counts > 0, counts.sum() / (c * counts.clamp(min=1)), torch.zeros_like(counts))
            losses.append(nn.CrossEntropyLoss(weight=weight.to(self.device), ignore_index=-1))
        return losses

    def _train(self, Z_train, Y_train, Z_val, y_val) -> None:
        d = Z_train.shape[1]
        paper = self.config == "paper"
        epochs = self.epochs if self.epochs is not None else (100 if paper else 60)
        lr = self.lr if self.lr is not None else (5e-5 if paper else 1e-3)
        if paper:
            self.model_ = _PaperHeads(d, self.num_classes_).to(self.device)
            optimizer = torch.optim.Adam(self.model_.parameters(), lr=lr)
        else:
            self.model_ = _MLP(d, self.hidden, self.num_classes_, self.dropout, self.input_dropout).to(self.device)
            optimizer = torch.optim.Adam(self.model_.parameters(), lr=lr, weight_decay=1e-4)
        losses = self._losses(Y_train)

        def step(batch: torch.Tensor) -> float | None:
            outputs = self.model_(Z_train[batch])
            labelled = [(fn, out, Y_train[batch, a]) for a, (fn, out) in enumerate(zip(losses, outputs))]
            terms = [fn(out, target) for fn, out, target in labelled if (target >= 0).any()]
            if not terms:
                return None
            loss = sum(terms)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        generator = torch.Generator().manual_seed(self.random_state)
        best, best_state, since_best = -np.inf, None, 0
        self.history_ = []
        n = len(Z_train)
        for epoch in tqdm(range(epochs), desc=f"attr-{self.config}", disable=not self.progress, leave=False):
            if paper and epoch == epochs // 2:
                for group in optimizer.param_groups:
                    group["lr"] = lr / 5
            self.model_.train()
            total = run_epoch(n, self.batch_size, generator, step, self.device)
            val = validation_score(y_val, self._predict_tensor(Z_val), self.attribute_names_)
            self.history_.append({"epoch": epoch + 1, "loss": total / n, "validation": val})
            if paper:
                continue
            if val > best:
                best, best_state, since_best = val, copy.deepcopy(self.model_.state_dict()), 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.validation_score_ = validation_score(y_val, self._predict_tensor(Z_val), self.attribute_names_)

    def _predict_all(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validated(self, X, reset=False)
        return self._predict_tensor(self._features(X))

    def predict(self, X) -> np.ndarray:
        """Predicted class per attribute, ``(n, a)`` (``(n,)`` when fitted on a 1-D ``y``)."""
        P = self._predict_all(X)
        return P[:, 0] if self.single_output_ else P

    def attribute_scores(self, X, y) -> dict:
        """Balanced accuracy per attribute and their mean, each beside its chance level, and n.

        The details behind ``score``: ``scoring.attribute_scores(y, predict(X), attribute_names_)``.
        """
        y = _labels(np.asarray(y))
        return attribute_scores(y.reshape(len(y), -1), self._predict_all(X), self.attribute_names_)

    def score(self, X, y) -> float:
        """Mean balanced accuracy over the attributes (higher is better); chance levels: ``attribute_scores``."""
        return float(self.attribute_scores(X, y)["mean"])


def validation_score(y: np.ndarray, predictions: np.ndarray, names: list[str]) -> float:
    """Mean balanced accuracy on the attacker's held-out people, single-class attributes included.

    The split may hold only a few people; their attributes still say whether
    the model predicts them right, which is what early stopping and the choice
    between attacks need.
    """
    return attribute_scores(y, predictions, names, keep_single_class=True)["mean"]


def _labels(y: np.ndarray) -> np.ndarray:
    """Class indices as int64, -1 for missing; anything else (strings, continuous values) is refused."""
    check_classification_targets(y)
    if y.dtype.kind not in "biuf":
        raise ShuffleBitsError(f"attribute labels must be integer class indices (-1 for missing), got dtype {y.dtype}")
    labels = y.astype(np.int64)
    if labels.size and labels.min() < -1:
        raise ShuffleBitsError("attribute labels must be class indices >= 0, or -1 for missing")
    return labels


@register("attack", "attr-mlp")
def _attr_mlp(**kwargs) -> AttributeInference:
    return AttributeInference(config="mlp", **kwargs)


@register("attack", "attr-paper")
def _attr_paper(**kwargs) -> AttributeInference:
    return AttributeInference(config="paper", **kwargs)
