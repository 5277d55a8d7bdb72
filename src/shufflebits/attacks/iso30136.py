"""ISO/IEC 30136 metrics of protected templates: unlinkability, renewability, irreversibility.

- ``dsys``: the global unlinkability measure of Gomez-Barrero et al., "General
  framework to evaluate unlinkability in biometric template protection
  systems" (IEEE TIFS 2018), reimplemented from its formulas: with
  ``LR(s) = p(s | mated) / p(s | non-mated)`` and prior ratio ``omega = 1``, the
  local measure is ``D(s) = 2 LR / (1 + LR) - 1`` where ``LR > 1`` (else 0), and
  ``D_sys = integral of D(s) p(s | mated) ds``; densities are histograms over
  the pooled score range (``sqrt(mated)`` bins, at most 100; 0: the two score sets look the same, 1: every mated
  score is one a non-mated pair never reaches).
- ``cross_key``: templates of the same people protected under two keys (query
  under one, gallery under the other), compared by every key-independent
  view the attacker can compute (``linkage_views``); the best view's
  ``D_sys`` and its cross-key re-ID rank-1 (renewability: at chance when a new
  key makes old templates useless).
- ``inversion_success``: irreversibility as the fraction of queries whose
  inverted template the plaintext system accepts as that person (cosine
  distance to one of the person's gallery templates under the threshold that
  gives ``fmr`` false matches between different people).
"""

from __future__ import annotations

import numpy as np

from ..ciphers.base import Sealed
from ..ciphers.catalogue import spec
from ..ciphers.matching import match_view
from ..reid import distance_matrix, evaluate
from .reconstruction_eval import rank1_chance
from .views import invariant_view

FMR = 1e-3
MAX_BINS = 100
RANK1_SHUFFLES = 200  # query shuffles behind the renewability chance level


def dsys(mated, non_mated, bins: int | None = None) -> float:
    """Global unlinkability ``D_sys`` in [0, 1] from mated and non-mated similarity scores (omega = 1).

    ``bins`` defaults to ``sqrt(len(mated))`` (10 to ``MAX_BINS``): a sparse
    mated histogram makes look-alike distributions seem linkable.
    """
    mated, non_mated = np.asarray(mated, np.float64).ravel(), np.asarray(non_mated, np.float64).ravel()
    if len(mated) == 0 or len(non_mated) == 0:
        raise ValueError("D_sys needs mated and non-mated scores")
    if bins is None:
        bins = int(np.clip(np.sqrt(len(mated)), 10, MAX_BINS))
    lo, hi = min(mated.min(), non_mated.min()), max(mated.max(), non_mated.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    p_mated = np.histogram(mated, edges)[0] / len(mated)
    p_non = np.histogram(non_mated, edges)[0] / len(non_mated)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p_non > 0, p_mated / p_non, np.inf)
        local = np.where(ratio > 1, np.where(np.isinf(ratio), 1.0, (ratio - 1) / (ratio + 1)), 0.0)
    return float(np.sum(local * p_mated))


def linkage_views(sealed: Sealed | np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """Key-independent views of templates and the metric comparing them: ``name -> (features, metric)``.

    Plaintext (an array): the features themselves. Ciphertext: the bit-permutation
    invariants of its words (popcount and zero pattern), plus, for a matchable
    cipher, the scheme's own comparison and, for float ciphertexts, the sorted
    values of each vector (what a dimension shuffle keeps).
    """
    if not isinstance(sealed, Sealed):
        return {"features": (np.asarray(sealed, np.float64), "euclidean")}
    views = {"invariants": (invariant_view(sealed.words()).astype(np.float64), "cosine")}
    if spec(sealed.cipher).matchable:
        features, metric = match_view(sealed)
        views["scheme"] = (features, metric)
        if metric == "euclidean":
            views["sorted-values"] = (np.sort(features, axis=1), "euclidean")
    return views


def _mated_scores(scores: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = q_pids[:, None] == g_pids[None, :]
    return scores[same], scores[~same]


def cross_key(query_a, gallery_b, query, gallery, seed: int = 0) -> dict:
    """Linkage of the users' query templates under key A with their gallery templates under key B.

    ``query_a`` / ``gallery_b``: ``Sealed`` (or plaintext arrays); ``query`` /
    ``gallery``: the ``LabelledFeatures`` they came from (pids, camids).
    Returns the best view by ``D_sys`` with its ``dsys``, ``rank1`` and
    ``rank1_chance`` (query templates handed to the wrong people, mean rank-1 over ``RANK1_SHUFFLES``
    shuffles), and every view's ``D_sys``.
    """
    per_view = {}
    views_a, views_b = linkage_views(query_a), linkage_views(gallery_b)
    for name, (qa, metric) in views_a.items():
        gb = views_b[name][0]
        scores = -distance_matrix(qa, gb, metric)
        per_view[name] = (dsys(*_mated_scores(scores, query.pids, gallery.pids)), qa, gb, metric)
    best = max(per_view, key=lambda name: per_view[name][0])
    value, qa, gb, metric = per_view[best]
    result = evaluate(qa, gb, query.pids, gallery.pids, query.camids, gallery.camids, metric=metric)
    null = rank1_chance(qa, gb, query, gallery, seed, metric, n_shuffles=RANK1_SHUFFLES)
    return {
        "view": best,
        "metric": metric,
        "dsys": value,
        "rank1": float(result["cmc"][0]),
        "rank1_chance": null["chance"],
        "views": {name: entry[0] for name, entry in per_view.items()},
    }


def inversion_success(estimates, query, gallery, fmr: float = FMR) -> dict:
    """Fraction of ``estimates`` (one per query) that the plaintext system accepts as their own person.

    The threshold is the cosine distance at which ``fmr`` of the plaintext
    query-gallery pairs of different people are accepted.
    """
    plain = distance_matrix(query.features.astype(np.float64), gallery.features.astype(np.float64), "cosine")
    same = query.pids[:, None] == gallery.pids[None, :]
    threshold = float(np.quantile(plain[~same], fmr))
    inverted = distance_matrix(np.asarray(estimates, np.float64), gallery.features.astype(np.float64), "cosine")
    accepted = np.where(same, inverted, np.inf).min(axis=1) <= threshold
    return {"success": float(accepted.mean()), "threshold": threshold, "fmr": fmr, "n": len(accepted)}
