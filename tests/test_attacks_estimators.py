"""The attack estimators against scikit-learn's own conventions (``parametrize_with_checks``).

Tiny instances keep each check to a fraction of a second. Checks that cannot
apply are listed by name with the reason; ``xfail_strict`` turns one that
starts passing into a failure, so the list cannot go stale.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from shufflebits.attacks import AttributeInference, Reconstructor
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)

pytest.importorskip("sklearn", minversion="1.8")  # expected_failed_checks (1.6) and xfail_strict (1.8)

STRING_LABELS = "labels are 0-based class indices, -1 for missing (the dataset contract); string classes are refused"
IMAGE_TARGET = "fits with a 1-D y; a Reconstructor's target is images (n, 3, h, w), tested with images below"
RECONSTRUCTOR_FAILURES = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
)


# More epochs and a larger step than the defaults, so that the checks' toy
# problems (300 blobs, a one-class y) are learnt in seconds.
@parametrize_with_checks(
    [AttributeInference(epochs=20, hidden=16, lr=1e-2), AttributeInference(config="paper", epochs=60, lr=5e-2)],
    expected_failed_checks=lambda _: {"check_classifiers_classes": STRING_LABELS},
    xfail_strict=True,
)
def test_attribute_inference_follows_sklearn_conventions(estimator, check):
    check(estimator)


# Only the API checks: every legacy check fits on a 1-D y.
@parametrize_with_checks(
    [Reconstructor(epochs=1, width=8, batch_size=16)],
    legacy=False,
    expected_failed_checks=lambda _: dict.fromkeys(RECONSTRUCTOR_FAILURES, IMAGE_TARGET),
    xfail_strict=True,
)
def test_reconstructor_follows_sklearn_api_conventions(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def world():
    return make_world(identities=16, per_id=4, d=12, size=(16, 8))


@pytest.mark.parametrize("estimator", [AttributeInference(view="bits", hidden=7), Reconstructor(variant="gan")])
def test_clone_keeps_every_parameter_and_no_fitted_state(estimator, world):
    attacker = world[0]
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == estimator.get_params()
    assert clone(estimator.set_params(epochs=1)).epochs == 1
    with pytest.raises(NotFittedError):
        copy.predict(attacker.features)
    with pytest.raises(NotFittedError):
        copy.score(attacker.features, attacker.labels if isinstance(copy, AttributeInference) else attacker.images)


def test_attribute_score_is_the_mean_of_the_per_attribute_scores(world):
    attacker, query, _, _ = world
    model = AttributeInference(epochs=2, hidden=8).fit(attacker.features, attacker.labels)
    details = model.attribute_scores(query.features, query.labels)
    score = model.score(query.features, query.labels)
    assert type(score) is float
    assert score == np.mean([v["bacc"] for v in details["attributes"].values()]) == details["mean"]
    assert details["chance_mean"] == np.mean([v["chance"] for v in details["attributes"].values()])


def test_one_dimensional_labels_are_one_attribute(world):
    attacker, query, _, _ = world
    column = AttributeInference(epochs=2, hidden=8).fit(attacker.features, attacker.labels[:, 2])
    table = AttributeInference(epochs=2, hidden=8).fit(attacker.features, attacker.labels[:, 2:3])
    assert column.predict(query.features).shape == (len(query),)
    assert np.array_equal(column.predict(query.features), table.predict(query.features)[:, 0])
    assert column.score(query.features, query.labels[:, 2]) == table.score(query.features, query.labels[:, 2:3])


def test_reconstructor_api_with_image_targets(world):
    """What the skipped API checks test, with the images a Reconstructor needs as ``y``."""
    attacker, query, _, _ = world
    model = Reconstructor(epochs=1, width=8, batch_size=16)
    params = model.get_params()
    assert model.fit(attacker.features, attacker.images) is model
    assert model.get_params() == params and model.n_features_in_ == attacker.features.shape[1]
    with pytest.raises(ValueError, match="features"):
        model.predict(query.features[:, :-1])
    out = model.predict(query.features)
    expected = -np.mean((out.astype(np.float64) - query.images.astype(np.float64)) ** 2)
    assert model.score(query.features, query.images) == pytest.approx(expected, rel=1e-6)
