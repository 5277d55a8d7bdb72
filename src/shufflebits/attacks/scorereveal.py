"""Template recovery from revealed similarity scores (against CKKS's ``reveal_scores`` mode).

The attacker enrolled ``n`` templates of its own (features it knows) in the
encrypted gallery and sees the revealed scores of an unknown user's query
against them: ``n`` linear measurements ``A q`` (a euclidean CKKS score
``2 q.a - |a|^2`` gives ``q.a`` since the attacker knows ``|a|``). ``fit(X)``
learns the attacker's prior from its own features (mean and shrunk covariance);
``predict(S, enrolled)`` is the Gaussian posterior mean
``mu + C A^T (A C A^T + noise I)^-1 (s - A mu)``: exact from ``n >= d`` generic
scores, the prior's best guess below that (Frontiers in Imaging 2025: 50-192
revealed scores recover a template).

On top-k output the attacker sees ids only; the best it can do with them here
is the mean of its own enrolled templates among the released ids (the prior
mean when none is). ``score_reveal_curve`` reports both, per ``n``, beside the
chance level (the prior mean alone).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..registry import register
from .reconstruction_eval import success_rate
from .searchable import mean_cosine

ENROLLED = (8, 16, 32, 64, 128, 192, 256, 512)


def inner_products(scores, enrolled, metric: str = "euclidean") -> np.ndarray:
    """``q.a`` from revealed scores: euclidean scores are ``2 q.a - |a|^2`` (up to the released scale)."""
    s, a = np.asarray(scores, np.float64), np.asarray(enrolled, np.float64)
    return (s + (a**2).sum(1)[None, :]) / 2.0 if metric == "euclidean" else s


class ScoreReveal(BaseEstimator):
    """Known enrolled templates + revealed scores -> the query (posterior mean under the attacker's prior)."""

    def __init__(self, noise: float = 1e-6, shrinkage: float = 1e-3):
        self.noise = noise
        self.shrinkage = shrinkage

    def fit(self, X, y=None):
        X = np.asarray(X, np.float64)
        self.mean_ = X.mean(0)
        covariance = np.cov(X, rowvar=False) if len(X) > 1 else np.zeros((X.shape[1], X.shape[1]))
        ridge = self.shrinkage * max(np.trace(covariance) / X.shape[1], 1e-12)
        self.covariance_ = covariance + ridge * np.eye(X.shape[1])
        return self

    def predict(self, X, enrolled=None):
        """Queries from their inner products ``X`` (``(m, n)``) with the ``(n, d)`` ``enrolled`` templates."""
        check_is_fitted(self)
        s = np.asarray(X, np.float64)
        if enrolled is None or len(enrolled) == 0:
            return np.repeat(self.mean_[None], len(s), axis=0)
        A = np.asarray(enrolled, np.float64)
        gain = self.covariance_ @ A.T
        system = A @ gain + self.noise * np.eye(len(A))
        return self.mean_ + np.linalg.solve(system, (s - A @ self.mean_).T).T @ gain.T

    def score(self, X, y, enrolled=None) -> float:
        return mean_cosine(self.predict(X, enrolled), y)


def from_top_k(ids, enrolled_rows, enrolled, prior_mean) -> np.ndarray:
    """The top-k attacker's estimate: mean of its own templates among the released gallery ids."""
    where = {int(row): i for i, row in enumerate(enrolled_rows)}
    estimates = []
    for released in np.asarray(ids):
        own = [where[int(row)] for row in released if int(row) in where]
        estimates.append(np.asarray(enrolled, np.float64)[own].mean(0) if own else prior_mean)
    return np.asarray(estimates)


def score_reveal_curve(
    attacker,
    victim,
    gallery,
    ns=ENROLLED,
    top_k: int = 1,
    threshold: float | None = None,
    seed: int = 0,
    inner=None,
    estimates: dict | None = None,
) -> list[dict]:
    """Per ``n`` enrolled attacker templates: recovered-vs-true cosine from scores and from top-k ids.

    ``attacker``: its own features (prior and enrolment pool); ``victim``: the
    users' queries to recover; ``gallery``: the users' gallery the attacker's
    templates join (for top-k). ``inner``: the victims' inner products with
    ``[gallery; attacker]`` as the key holder revealed them (CKKS scores through
    ``inner_products``); None: exact plaintext ones. With ``threshold`` (the
    victim's cosine similarity at FMR 1e-3), the fraction of recoveries accepted.
    ``estimates``: a dict that receives the largest ``n``'s recovered templates
    (``"scores"``, ``"top_k"``), for scoring them another way (irreversibility).
    """
    attacker, victim, gallery = (np.asarray(a, np.float64) for a in (attacker, victim, gallery))
    pool = np.concatenate([gallery, attacker])  # the attacker's templates join the users' gallery
    inner = victim @ pool.T if inner is None else np.asarray(inner, np.float64)
    order = np.random.default_rng(seed).permutation(len(attacker))
    model = ScoreReveal().fit(attacker)
    chance = mean_cosine(model.predict(np.zeros((len(victim), 0))), victim)
    rows = []
    for n in ns:
        if n > len(attacker):
            break
        enrolled = attacker[order[:n]]
        columns = len(gallery) + order[:n]
        recovered = model.predict(inner[:, columns], enrolled)
        shown = np.concatenate([np.arange(len(gallery)), columns])
        distances = (pool[shown] ** 2).sum(1)[None] - 2 * inner[:, shown]  # minus |q|^2, the same along a row
        ids = np.argsort(distances, axis=1, kind="stable")[:, :top_k]
        guessed = from_top_k(ids, np.arange(len(gallery), len(shown)), enrolled, model.mean_)
        row = {
            "n": int(n),
            "cosine": mean_cosine(recovered, victim),
            "topk_cosine": mean_cosine(guessed, victim),
            "chance": chance,
            "top_k": top_k,
        }
        if threshold is not None:
            row["success"] = success_rate(recovered, victim, threshold)
            row["topk_success"] = success_rate(guessed, victim, threshold)
        rows.append(row)
        if estimates is not None:
            estimates.update(scores=recovered, top_k=guessed)
    return rows


@register("attack", "score-reveal")
def _score_reveal(**kwargs) -> ScoreReveal:
    return ScoreReveal(**kwargs)
