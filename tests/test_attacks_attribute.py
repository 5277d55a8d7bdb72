"""Attribute inference: above chance on informative features, at chance on noise, -1 masked."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.attacks.attribute import (
    AttributeInference,
    _validation_split,
    attribute_scores,
    balanced_accuracy,
    permutation_null,
)
from shufflebits.errors import ShuffleBitsError
from shufflebits.registry import create_attack
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def world():
    attacker, query, gallery, _ = make_world(identities=60, per_id=6, d=64)
    users_x = np.concatenate([query.features, gallery.features])
    users_y = np.concatenate([query.labels, gallery.labels])
    return attacker, users_x, users_y


def test_balanced_accuracy_skips_missing_labels_and_weights_classes():
    y = np.array([0, 0, 0, 1, -1, -1])
    p = np.array([0, 0, 0, 0, 1, 1])
    assert balanced_accuracy(y, p) == 0.5  # recall 1 on class 0, 0 on class 1; -1 rows ignored
    scores = attribute_scores(np.stack([y, y], 1), np.stack([p, p], 1), ["a", "b"])
    assert scores["attributes"]["a"] == {"bacc": 0.5, "chance": 0.5, "n": 4}
    assert scores["mean"] == 0.5 and scores["chance_mean"] == 0.5


def test_mlp_is_well_above_chance_on_informative_features(world):
    attacker, users_x, users_y = world
    model = create_attack("attr-mlp", epochs=25, hidden=128).fit(
        attacker.features, attacker.labels, groups=attacker.pids, attribute_names=attacker.attribute_names
    )
    score = model.score(users_x, users_y)
    assert set(score["attributes"]) == set(attacker.attribute_names)
    assert score["mean"] > score["chance_mean"] + 0.15
    null = permutation_null(users_y, model.predict(users_x), attacker.attribute_names, permutations=100)
    assert null["mean"]["p_value"] < 0.05 and null["mean"]["chance_ci"][1] < score["mean"]
    assert 0 < model.validation_score_ <= 1


def test_noise_features_stay_within_the_permutation_interval(world):
    attacker, users_x, users_y = world
    rng = np.random.default_rng(0)
    model = AttributeInference(epochs=10, hidden=64).fit(rng.normal(size=attacker.features.shape), attacker.labels)
    noise = rng.normal(size=users_x.shape)
    score = model.score(noise, users_y)
    null = permutation_null(users_y, model.predict(noise), attacker.attribute_names, permutations=200)
    lo, hi = null["mean"]["chance_ci"]
    assert lo - 0.03 <= score["mean"] <= hi + 0.03
    assert abs(score["mean"] - score["chance_mean"]) < 0.08


def test_missing_labels_are_masked(world):
    attacker, users_x, users_y = world
    labels = attacker.labels.copy()
    labels[:, 0] = -1  # nothing known about the first attribute
    labels[: len(labels) // 2, 0] = attacker.labels[: len(labels) // 2, 0].clip(min=0)
    model = AttributeInference(epochs=3, hidden=32).fit(attacker.features, labels, num_classes=attacker.num_classes)
    assert model.predict(users_x).shape == users_y.shape
    users = users_y.copy()
    users[:, 1] = -1
    assert "attr1" not in model.score(users_x, users)["attributes"]


def test_paper_config_runs_its_recipe(world):
    attacker, users_x, users_y = world
    model = AttributeInference(config="paper").fit(attacker.features, attacker.labels, groups=attacker.pids)
    assert len(model.history_) == 100  # 100 epochs, no early stopping
    assert model.predict(users_x).shape == users_y.shape
    assert 0 <= model.score(users_x, users_y)["mean"] <= 1


def test_validation_split_keeps_identities_apart():
    groups = np.repeat(np.arange(20), 3)
    train, val = _validation_split(len(groups), groups, 0.2, np.random.default_rng(0))
    assert not set(groups[train]) & set(groups[val]) and len(train) + len(val) == 60


def test_bad_config_and_labels_raise():
    with pytest.raises(ShuffleBitsError):
        AttributeInference(config="svm").fit(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ShuffleBitsError):
        AttributeInference().fit(np.zeros((4, 2)), np.zeros(4))
