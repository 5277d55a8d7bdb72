"""Attribute inference: predict a person's attributes from a feature vector.

The paper's attack trains one softmax head per attribute on the attacker's own
labelled images and applies it to leaked user features. Both configurations
carve a validation split from the attacker's data (by identity when groups are
given, since users are other people); the users' data is only ever scored.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ShuffleBitsError
from ..registry import register
from ..runtime import torch_threads
from .views import apply_view, standardized

CONFIGS = ("mlp", "paper")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (rows labelled -1 are skipped)."""
    mask = y_true >= 0
    y_true, y_pred = y_true[mask], y_pred[mask]
    classes = np.unique(y_true)
    if classes.size == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def attribute_scores(Y: np.ndarray, P: np.ndarray, names: list[str]) -> dict:
    """Balanced accuracy per attribute and their mean, each beside its chance level.

    Chance is 1 / (classes present among the labelled rows): what a constant
    guess scores, and 1/num_classes when every class occurs.
    """
    per = {}
    for a, name in enumerate(names):
        labelled = Y[:, a] >= 0
        k = np.unique(Y[labelled, a]).size
        if k == 0:
            continue
        per[name] = {
            "bacc": balanced_accuracy(Y[:, a], P[:, a]),
            "chance": 1.0 / k,
            "n": int(labelled.sum()),
        }
    if not per:
        raise ShuffleBitsError("no labelled rows to score attribute inference on")
    return {
        "attributes": per,
        "mean": float(np.mean([v["bacc"] for v in per.values()])),
        "chance_mean": float(np.mean([v["chance"] for v in per.values()])),
        "n": int(len(Y)),
    }


def permutation_null(Y: np.ndarray, P: np.ndarray, names: list[str], permutations: int = 200, seed: int = 0) -> dict:
    """Scores of the same predictions against shuffled labels: what 'no information' looks like.

    Returns, for the mean and for each attribute, the 95% interval of the null
    scores and the one-sided p-value of the observed score.
    """
    rng = np.random.default_rng(seed)
    observed = attribute_scores(Y, P, names)
    names_scored = list(observed["attributes"])
    null = np.empty((permutations, len(names_scored)))
    columns = [names.index(name) for name in names_scored]
    for i in range(permutations):
        for j, a in enumerate(columns):
            labelled = np.flatnonzero(Y[:, a] >= 0)
            shuffled = Y[rng.permutation(labelled), a]
            null[i, j] = balanced_accuracy(shuffled, P[labelled, a])

    def summary(samples: np.ndarray, value: float) -> dict:
        lo, hi = np.percentile(samples, [2.5, 97.5])
        return {"chance_ci": [float(lo), float(hi)], "p_value": float((1 + np.sum(samples >= value)) / (1 + len(samples)))}

    result = {"mean": summary(null.mean(axis=1), observed["mean"])}
    for j, name in enumerate(names_scored):
        result[name] = summary(null[:, j], observed["attributes"][name]["bacc"])
    return result


def _validation_split(n: int, groups: np.ndarray | None, fraction: float, rng: np.random.Generator):
    """Train/validation row indices; whole groups (identities) go to one side."""
    if groups is None:
        order = rng.permutation(n)
        n_val = max(1, int(round(fraction * n)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    unique = rng.permutation(np.unique(groups))
    n_val = max(1, int(round(fraction * len(unique))))
    val = np.isin(groups, unique[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


class _MLP(nn.Module):
    """Shared trunk, one linear head per attribute."""

    def __init__(self, d: int, hidden: int, classes: list[int], dropout: float):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Dropout(dropout / 2),
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


class AttributeInference:
    """One classification head per attribute on (views of) feature vectors.

    ``config="paper"``: per-attribute BatchNorm -> Dense, Adam 5e-5 then 1e-5
    from half-way, batch 128, 100 epochs, class-balanced loss per head.
    ``config="mlp"`` (default): a shared two-layer MLP trunk, early-stopped on
    the validation split (at most ``epochs``, default 60).
    ``view`` turns ciphertext words into features first (see ``views.VIEWS``);
    ``None`` takes ``X`` as features. Labels -1 are left out of loss and metric.
    """

    def __init__(
        self,
        config: str = "mlp",
        view: str | None = None,
        epochs: int | None = None,
        batch_size: int = 128,
        hidden: int = 512,
        dropout: float = 0.3,
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
        self.lr = lr
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.progress = progress

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
        """Train on the attacker's ``X`` with labels ``y`` (n, a); ``groups`` (identities) shape the validation split."""
        if self.config not in CONFIGS:
            raise ShuffleBitsError(f"unknown attribute-inference config {self.config!r}; choose one of {', '.join(CONFIGS)}")
        y = np.asarray(y, dtype=np.int64)
        if y.ndim != 2 or len(y) != len(X):
            raise ShuffleBitsError(f"labels must be (n, attributes) aligned with X, got {y.shape} for {len(X)} rows")
        self.num_classes_ = list(num_classes) if num_classes is not None else [int(max(c.max(), 0)) + 1 for c in y.T]
        self.attribute_names_ = list(attribute_names) if attribute_names is not None else [f"attr{i}" for i in range(y.shape[1])]
        rng = np.random.default_rng(self.random_state)
        train_idx, val_idx = _validation_split(len(y), None if groups is None else np.asarray(groups), self.validation_fraction, rng)
        self.validation_index_ = val_idx

        Z_all = apply_view(self.view, X).astype(np.float64)
        self.mean_ = Z_all[train_idx].mean(axis=0)
        scale = Z_all[train_idx].std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        Z = torch.from_numpy(((Z_all - self.mean_) / self.scale_).astype(np.float32)).to(self.device)
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
            self.model_ = _MLP(d, self.hidden, self.num_classes_, self.dropout).to(self.device)
            optimizer = torch.optim.Adam(self.model_.parameters(), lr=lr, weight_decay=1e-4)
        losses = self._losses(Y_train)
        generator = torch.Generator().manual_seed(self.random_state)
        best, best_state, since_best = -np.inf, None, 0
        self.history_ = []
        n = len(Z_train)
        for epoch in tqdm(range(epochs), desc=f"attr-{self.config}", disable=not self.progress, leave=False):
            if paper and epoch == epochs // 2:
                for group in optimizer.param_groups:
                    group["lr"] = lr / 5
            self.model_.train()
            order = torch.randperm(n, generator=generator).to(self.device)
            total = 0.0
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) < 2:  # BatchNorm needs two rows
                    continue
                outputs = self.model_(Z_train[batch])
                terms = [fn(out, Y_train[batch, a]) for a, (fn, out) in enumerate(zip(losses, outputs)) if (Y_train[batch, a] >= 0).any()]
                if not terms:
                    continue
                loss = sum(terms)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            val = attribute_scores(y_val, self._predict_tensor(Z_val), self.attribute_names_)["mean"]
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
        self.validation_score_ = attribute_scores(y_val, self._predict_tensor(Z_val), self.attribute_names_)["mean"]

    def predict(self, X) -> np.ndarray:
        """Predicted class per attribute, ``(n, a)``."""
        return self._predict_tensor(self._features(X))

    def score(self, X, y) -> dict:
        """Balanced accuracy per attribute and mean, with chance levels and n (see ``attribute_scores``)."""
        return attribute_scores(np.asarray(y, dtype=np.int64), self.predict(X), self.attribute_names_)


@register("attack", "attr-mlp")
def _attr_mlp(**kwargs) -> AttributeInference:
    return AttributeInference(config="mlp", **kwargs)


@register("attack", "attr-paper")
def _attr_paper(**kwargs) -> AttributeInference:
    return AttributeInference(config="paper", **kwargs)
