"""A realism gauge: how far the synthetic world's features are from real crops' through the same victim.

The study's figures transfer to real data only as far as the synthetic world
looks real to the victim. Three measurements, side by side: feature statistics
(exact-zero fraction, norm, cosine between different identities), how well a
linear classifier tells synthetic from real features (balanced accuracy 0.5:
indistinguishable), and the attribute attack trained on the synthetic world
applied to the real crops, per attribute beside its chance level.
"""

from __future__ import annotations

import numpy as np

from ..attacks.scoring import attribute_scores
from ..attacks.types import LabelledFeatures
from ..errors import ShuffleBitsError

MAX_PAIRS = 20_000  # identity pairs sampled for the mean cosine


def feature_statistics(features: np.ndarray, pids: np.ndarray, seed: int = 0) -> dict:
    """Exact-zero fraction, mean L2 norm, and mean cosine between features of different identities."""
    features = np.asarray(features, dtype=np.float64)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    first, second = rng.integers(len(features), size=(2, MAX_PAIRS))
    different = pids[first] != pids[second]
    cosines = np.einsum("ij,ij->i", unit[first[different]], unit[second[different]])
    return {
        "zero_fraction": float(np.mean(features == 0.0)),
        "mean_norm": float(np.linalg.norm(features, axis=1).mean()),
        "mean_cosine_other_identity": float(cosines.mean()) if len(cosines) else float("nan"),
        "n": len(features),
    }


def domain_gap(synthetic: np.ndarray, real: np.ndarray, seed: int = 0) -> dict:
    """Cross-validated balanced accuracy of a logistic regression telling synthetic (0) from real (1) features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..attacks.scoring import balanced_accuracy

    X = np.concatenate([synthetic, real]).astype(np.float64)
    y = np.concatenate([np.zeros(len(synthetic), dtype=np.int64), np.ones(len(real), dtype=np.int64)])
    folds = min(5, len(real), len(synthetic))
    if folds < 2:
        raise ShuffleBitsError("the realism gauge needs at least 2 real and 2 synthetic images")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    predicted = cross_val_predict(model, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return {"balanced_accuracy": float(balanced_accuracy(y, predicted)), "chance": 0.5, "folds": folds}


def attribute_transfer(synthetic: LabelledFeatures, real: LabelledFeatures, attack) -> dict:
    """The attribute attack fitted on the synthetic world, scored on the real crops (per attribute, with chance)."""
    if synthetic.attribute_names != real.attribute_names:
        raise ShuffleBitsError("synthetic and real images must carry the same attributes (both Market-1501 labels)")
    attack.fit(
        synthetic.features,
        synthetic.labels,
        groups=synthetic.pids,
        num_classes=synthetic.num_classes,
        attribute_names=synthetic.attribute_names,
    )
    return attribute_scores(real.labels, attack.predict(real.features), real.attribute_names)


def realism_gauge(synthetic: LabelledFeatures, real: LabelledFeatures, attack, seed: int = 0) -> dict:
    """All three measurements for one victim (its features of both image sets)."""
    return {
        "synthetic": feature_statistics(synthetic.features, synthetic.pids, seed),
        "real": feature_statistics(real.features, real.pids, seed),
        "domain_classifier": domain_gap(synthetic.features, real.features, seed),
        "attribute_transfer": attribute_transfer(synthetic, real, attack),
    }
