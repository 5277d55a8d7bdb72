"""Attribute inference: scores checked against scikit-learn, a separable toy, label-shuffled nulls, -1 masked."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from shufflebits.attacks.attribute import AttributeInference, _validation_split
from shufflebits.attacks.scoring import attribute_scores, balanced_accuracy, permutation_null
from shufflebits.errors import ShuffleBitsError
from shufflebits.registry import create_attack
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def world():
    attacker, query, gallery, _ = make_world(identities=60, per_id=6, d=64)
    users_x = np.concatenate([query.features, gallery.features])
    users_y = np.concatenate([query.labels, gallery.labels])
    return attacker, users_x, users_y


def _separable(n: int, seed: int):
    """Two attributes written plainly into the features (one-hot plus a little noise)."""
    rng = np.random.default_rng(seed)
    y = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], axis=1)
    X = np.concatenate([np.eye(2)[y[:, 0]], np.eye(3)[y[:, 1]]], axis=1) + rng.normal(0, 0.05, (n, 5))
    return X.astype(np.float32), y


def test_balanced_accuracy_skips_missing_labels_and_weights_classes():
    y = np.array([0, 0, 0, 1, -1, -1])
    p = np.array([0, 0, 0, 0, 1, 1])
    assert balanced_accuracy(y, p) == 0.5  # recall 1 on class 0, 0 on class 1; -1 rows ignored
    scores = attribute_scores(np.stack([y, y], 1), np.stack([p, p], 1), ["a", "b"])
    assert scores["attributes"]["a"] == {"bacc": 0.5, "chance": 0.5, "n": 4}
    assert scores["mean"] == 0.5 and scores["chance_mean"] == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_balanced_accuracy_matches_scikit_learn_on_the_labelled_rows(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(-1, 4, 200)  # -1 = missing
    p = np.where(rng.random(200) < 0.6, y.clip(min=0), rng.integers(0, 5, 200))  # also predicts an absent class
    labelled = y >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        expected = balanced_accuracy_score(y[labelled], p[labelled])
    assert balanced_accuracy(y, p) == pytest.approx(expected, abs=1e-12)


def test_separable_attributes_score_one_and_shuffled_labels_land_inside_the_null_interval():
    X, y = _separable(400, seed=0)
    X_users, y_users = _separable(300, seed=1)
    model = AttributeInference(epochs=30, hidden=32, lr=1e-2).fit(X, y)
    predictions = model.predict(X_users)
    assert model.score(X_users, y_users) == 1.0
    null = permutation_null(y_users, predictions, model.attribute_names_, permutations=200, seed=0)
    assert null["mean"]["chance_ci"][1] < 0.6 and null["mean"]["p_value"] == 1 / 201  # no shuffle comes close
    shuffled = y_users[np.random.default_rng(2).permutation(len(y_users))]  # the same rows, other people's labels
    null = permutation_null(shuffled, predictions, model.attribute_names_, permutations=200, seed=0)
    lo, hi = null["mean"]["chance_ci"]
    assert lo <= model.score(X_users, shuffled) <= hi and null["mean"]["p_value"] > 0.05


def test_mlp_is_well_above_chance_on_informative_features(world):
    attacker, users_x, users_y = world
    model = create_attack("attr-mlp", epochs=25, hidden=128).fit(
        attacker.features, attacker.labels, groups=attacker.pids, attribute_names=attacker.attribute_names
    )
    score = model.attribute_scores(users_x, users_y)
    assert set(score["attributes"]) == set(attacker.attribute_names)
    assert score["mean"] > score["chance_mean"] + 0.15
    null = permutation_null(users_y, model.predict(users_x), attacker.attribute_names, permutations=100)
    assert null["mean"]["p_value"] < 0.05 and null["mean"]["chance_ci"][1] < score["mean"]
    val = model.validation_index_
    expected = attribute_scores(attacker.labels[val], model.predict(attacker.features[val]), attacker.attribute_names)
    assert model.validation_score_ == expected["mean"]  # the early-stopping score is the held-out identities' score
    assert not set(attacker.pids[val]) & set(np.delete(attacker.pids, val))


def test_noise_features_stay_within_the_permutation_interval(world):
    attacker, users_x, users_y = world
    rng = np.random.default_rng(0)
    model = AttributeInference(epochs=10, hidden=64).fit(rng.normal(size=attacker.features.shape), attacker.labels)
    noise = rng.normal(size=users_x.shape)
    null = permutation_null(users_y, model.predict(noise), attacker.attribute_names, permutations=200)
    lo, hi = null["mean"]["chance_ci"]
    assert lo <= model.score(noise, users_y) <= hi and null["mean"]["p_value"] > 0.05


def test_missing_labels_are_masked(world):
    attacker, users_x, users_y = world
    labels = attacker.labels.copy()
    labels[:, 0] = -1  # nothing known about the first attribute
    labels[: len(labels) // 2, 0] = attacker.labels[: len(labels) // 2, 0].clip(min=0)
    model = AttributeInference(epochs=3, hidden=32).fit(attacker.features, labels, num_classes=attacker.num_classes)
    assert model.predict(users_x).shape == users_y.shape
    users = users_y.copy()
    users[:, 1] = -1
    assert "attr1" not in model.attribute_scores(users_x, users)["attributes"]


def test_paper_config_runs_its_recipe(world):
    attacker, users_x, users_y = world
    model = AttributeInference(config="paper").fit(attacker.features, attacker.labels, groups=attacker.pids)
    assert len(model.history_) == 100  # 100 epochs, no early stopping
    assert model.history_[-1]["loss"] < 0.95 * model.history_[0]["loss"]  # measured 4.28 after 4.76
    score = model.attribute_scores(users_x, users_y)
    assert score["mean"] > score["chance_mean"]  # measured 0.457 against 0.417: the slow recipe barely starts


def test_validation_split_keeps_identities_apart():
    groups = np.repeat(np.arange(20), 3)
    train, val = _validation_split(len(groups), groups, 0.2, np.random.default_rng(0))
    assert not set(groups[train]) & set(groups[val]) and len(train) + len(val) == 60


def test_bad_config_and_labels_raise():
    X = np.zeros((4, 2))
    with pytest.raises(ShuffleBitsError, match="config"):
        AttributeInference(config="svm").fit(X, np.zeros((4, 1)))
    with pytest.raises(ShuffleBitsError, match="-1 for missing"):
        AttributeInference().fit(X, np.array([0, 1, -2, 1]))
    with pytest.raises(ShuffleBitsError, match="integer class indices"):
        AttributeInference().fit(X, np.array(["a", "b", "a", "b"]))
    with pytest.raises(ShuffleBitsError, match="num_classes"):
        AttributeInference().fit(X, np.array([[0], [1], [2], [1]]), num_classes=[2])
    with pytest.raises(ValueError, match="Unknown label type"):
        AttributeInference().fit(X, np.array([0.5, 1.5, 0.2, 1.0]))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        AttributeInference().fit(X, np.zeros(3))


def test_fit_clips_z_scores_as_predict_does():
    """A float view of ciphertext can put 1e36 in validation rows where training rows stay within 1e-5."""
    rng = np.random.default_rng(0)
    n = 80
    groups = np.arange(n) // 2
    train, val = _validation_split(n, groups, 0.2, np.random.default_rng(0))  # the split fit will draw
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[train, 0] = rng.normal(0, 1e-6, len(train))
    X[val, 0] = 1e36
    y = (X[:, 1] > 0).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "overflow encountered in cast" before the clip
        model = AttributeInference(epochs=2, hidden=8).fit(X, y, groups=groups)
        predictions = model.predict(X)
    assert predictions.shape == (n,)
    assert np.isfinite(model.validation_score_)


def test_identity_grouped_null_is_wider_than_the_per_image_one():
    """Users are several images of one person with identical labels; shuffling images hides that."""
    rng = np.random.default_rng(0)
    identities, per_id = 40, 10
    groups = np.repeat(np.arange(identities), per_id)
    labels = rng.integers(0, 2, (identities, 2))[groups]  # identical labels within an identity
    predictions = rng.integers(0, 2, (identities, 2))[groups]  # one (uninformed) guess per person
    names = ["a", "b"]
    widths = {}
    for key, by in (("image", None), ("identity", groups)):
        null = permutation_null(labels, predictions, names, permutations=400, seed=1, groups=by)
        lo, hi = null["mean"]["chance_ci"]
        widths[key] = hi - lo
    assert widths["identity"] > 1.8 * widths["image"]  # ~sqrt(10) x in expectation: 40 samples, not 400


def test_grouped_null_moves_whole_people():
    """Two people, ten images each: a shuffle by identity either keeps or swaps them (score 1 or 0), nothing between."""
    groups = np.repeat([7, 3], 10)
    labels = np.repeat([0, 1], 10)[:, None]
    labels[2, 0] = -1  # a missing label stays missing
    by_identity = permutation_null(labels, labels.copy(), ["a"], permutations=200, seed=0, groups=groups)
    assert by_identity["mean"]["chance_ci"] == [0.0, 1.0]
    by_image = permutation_null(labels, labels.copy(), ["a"], permutations=200, seed=0)
    lo, hi = by_image["mean"]["chance_ci"]
    assert 0.0 < lo and hi < 1.0


def test_single_class_attributes_are_left_out_of_the_mean_and_named():
    y = np.stack([np.array([0, 1, 0, 1]), np.array([1, 1, -1, 1]), np.array([-1, -1, -1, -1])], axis=1)
    p = np.stack([np.array([0, 1, 1, 1]), np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0])], axis=1)
    scores = attribute_scores(y, p, ["two", "one", "none"])
    assert list(scores["attributes"]) == ["two"] and scores["single_class"] == ["one"]
    assert scores["mean"] == 0.75 and scores["chance_mean"] == 0.5  # "one" (chance 1.0) would have moved both
    null = permutation_null(y, p, ["two", "one", "none"], permutations=20)
    assert set(null) == {"mean", "two"}


def test_float_views_of_ciphertext_fit_without_warnings():
    """Finite float32 near +-3e38 (ciphertext read as float) overflow scikit-learn's summed finiteness check."""
    from shufflebits.attacks.views import float_view

    rng = np.random.default_rng(0)
    X = float_view(rng.integers(0, 2**32, size=(120, 24), dtype=np.uint32))  # big enough for the summed check
    y = (np.arange(120) % 2)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = AttributeInference(epochs=1, hidden=8).fit(X, y)
        model.predict(X)
    X[0, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.predict(X)  # non-finite input is still refused
