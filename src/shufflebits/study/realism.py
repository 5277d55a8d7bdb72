"""A realism gauge: how far the synthetic world's features are from real crops' through the same victim.

The study's figures transfer to real data only as far as the synthetic world
looks real to the victim. Three measurements, side by side: feature statistics
(exact-zero fraction, norm, cosine between different identities), how well a
linear classifier tells synthetic from real features (balanced accuracy 0.5:
indistinguishable), and the attribute attack trained on the synthetic world
applied to the real crops, per attribute beside its chance level.
"""

from __future__ import annotations

import json

import numpy as np

from ..attacks.scoring import attribute_scores
from ..attacks.types import LabelledFeatures
from ..errors import ShuffleBitsError
from ..runtime import torch_threads
from .stages import Stage
from .victim import FEATURES, TORCH_THREADS, black_box_features
from .worlds import synthetic_users_stage

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
    """All three measurements for one victim (its features of both image sets).

    ``attack=None`` leaves the attribute transfer out (``None``): real images
    labelled with other attributes than Market-1501's (DukeMTMC-reID) have no
    synthetic counterpart to learn from.
    """
    return {
        "synthetic": feature_statistics(synthetic.features, synthetic.pids, seed),
        "real": feature_statistics(real.features, real.pids, seed),
        "domain_classifier": domain_gap(synthetic.features, real.features, seed),
        "attribute_transfer": None if attack is None else attribute_transfer(synthetic, real, attack),
    }


def transfer_attack():
    """The attribute attack the gauge fits on the synthetic world (the CLI and the study use the same one)."""
    from ..registry import create_attack

    return create_attack("attr-mlp", epochs=40)


def _concatenate(*sets: LabelledFeatures) -> LabelledFeatures:
    first = sets[0]
    return LabelledFeatures(
        features=np.concatenate([s.features for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        attribute_names=first.attribute_names,
        num_classes=first.num_classes,
        pids=np.concatenate([s.pids for s in sets]),
        camids=np.concatenate([s.camids for s in sets]),
    )


def _gauge_stage(context) -> None:
    """Synthetic world features through the study's own black box, against the real crops it leaked."""
    victim, world = context.values[FEATURES], context.values["realism_world"].dataset
    records = world.train + world.query + world.gallery
    with torch_threads(TORCH_THREADS):
        features = black_box_features(
            context.values["black_box"].client, records, "synthetic world", context.config.progress
        )
    synthetic = LabelledFeatures(
        features=features,
        labels=world.labels(records),
        attribute_names=list(world.attribute_names),
        num_classes=[world.num_classes[name] for name in world.attribute_names],
        pids=np.array([record.pid for record in records], dtype=np.int64),
        camids=np.array([record.camid for record in records], dtype=np.int64),
    )
    real = _concatenate(victim.attacker, victim.user_query, victim.user_gallery)
    attack = transfer_attack() if synthetic.attribute_names == real.attribute_names else None
    gauge = realism_gauge(synthetic, real, attack, seed=context.config.seeds["attacks"])
    (context.folder / "realism.json").write_text(json.dumps(gauge))


def realism_stages(config) -> list[Stage]:
    """With real attacker/user images: the synthetic world the study would have used, and the gauge on both.

    Nothing with the synthetic world (there is no real image to compare with).
    """
    if config.data.dataset is None:
        return []
    return [
        synthetic_users_stage(config, "realism_world"),
        Stage(
            "realism",
            run=_gauge_stage,
            needs=(FEATURES, "realism_world", "black_box"),
            params=("seeds.attacks",),
            code=("attacks", "study"),
            load=lambda context: json.loads((context.folder / "realism.json").read_text()),
            description="gauging how real the synthetic world looks to the victim",
        ),
    ]
