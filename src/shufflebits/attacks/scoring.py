"""Scores of attribute predictions, each beside what chance would score.

Balanced accuracy per attribute (labels -1 are left out), the constant-guess
chance level, and a label-permutation null that gives the interval and
p-value of "no information". The estimators' ``score`` returns one float; these
functions are where the chance levels live.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShuffleBitsError


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (rows labelled -1 are skipped)."""
    mask = y_true >= 0
    y_true, y_pred = y_true[mask], y_pred[mask]
    classes = np.unique(y_true)
    if classes.size == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def attribute_scores(Y: np.ndarray, P: np.ndarray, names: list[str], keep_single_class: bool = False) -> dict:
    """Balanced accuracy per attribute and their mean, each beside its chance level.

    Chance is 1 / (classes present among the labelled rows): what a constant
    guess scores, and 1/num_classes when every class occurs. An attribute with
    a single class among the labelled rows cannot be scored (any constant
    guess of that class is perfect): it is left out of ``attributes`` and the
    mean and named in ``single_class``. ``keep_single_class`` scores it all
    the same (chance 1.0): an early-stopping score on a few held-out people
    still learns from whether each one is predicted right.
    """
    per, single = {}, []
    for a, name in enumerate(names):
        labelled = Y[:, a] >= 0
        k = np.unique(Y[labelled, a]).size
        if k == 1 and not keep_single_class:
            single.append(name)
        if k == 0 or name in single:
            continue
        per[name] = {
            "bacc": balanced_accuracy(Y[:, a], P[:, a]),
            "chance": 1.0 / k,
            "n": int(labelled.sum()),
        }
    if not per:
        raise ShuffleBitsError("no attribute has two classes among the labelled rows to score attribute inference on")
    return {
        "attributes": per,
        "mean": float(np.mean([v["bacc"] for v in per.values()])),
        "chance_mean": float(np.mean([v["chance"] for v in per.values()])),
        "n": len(Y),
        "single_class": single,
    }


def _group_labels(y: np.ndarray, inverse: np.ndarray, groups: int) -> np.ndarray:
    """Each group's label: the most frequent label among its labelled rows, -1 when it has none."""
    labelled = y >= 0
    counts = np.zeros((groups, max(int(y.max()) + 1, 1)), dtype=np.int64)
    np.add.at(counts, (inverse[labelled], y[labelled]), 1)
    return np.where(counts.any(axis=1), counts.argmax(axis=1), -1)


def permutation_null(
    Y: np.ndarray,
    P: np.ndarray,
    names: list[str],
    permutations: int = 200,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict:
    """Scores of the same predictions against shuffled labels: what 'no information' looks like.

    With ``groups`` (identities) labels are shuffled by group: every row of
    one person takes the label of the same other person, since users come as
    several images with identical labels (shuffling image by image would make
    them look like independent samples and the interval too narrow). Rows
    keep their own missing labels. Returns, for the mean and for each
    attribute, the 95% interval of the null scores and the one-sided p-value
    of the observed score.
    """
    rng = np.random.default_rng(seed)
    observed = attribute_scores(Y, P, names)
    names_scored = list(observed["attributes"])
    null = np.empty((permutations, len(names_scored)))
    columns = [names.index(name) for name in names_scored]
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        inverse = inverse.ravel()
        n_groups = int(inverse.max()) + 1
        group_labels = {a: _group_labels(Y[:, a], inverse, n_groups) for a in columns}
    for i in range(permutations):
        order = None if groups is None else rng.permutation(n_groups)
        for j, a in enumerate(columns):
            labelled = np.flatnonzero(Y[:, a] >= 0)
            if order is None:
                shuffled = Y[rng.permutation(labelled), a]
            else:
                shuffled = group_labels[a][order][inverse[labelled]]
            null[i, j] = balanced_accuracy(shuffled, P[labelled, a])

    def summary(samples: np.ndarray, value: float) -> dict:
        lo, hi = np.percentile(samples, [2.5, 97.5])
        p_value = float((1 + np.sum(samples >= value)) / (1 + len(samples)))
        return {"chance_ci": [float(lo), float(hi)], "p_value": p_value}

    result = {"mean": summary(null.mean(axis=1), observed["mean"])}
    for j, name in enumerate(names_scored):
        result[name] = summary(null[:, j], observed["attributes"][name]["bacc"])
    return result
