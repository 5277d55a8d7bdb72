"""Leakage-matrix rows for template protection: matching on ciphertexts, inversion curves, ISO/IEC 30136.

Which attack applies is the catalogue's call: a ``matchable`` cipher's
``family`` picks its known-pair inversion and its ciphertext-only alignment
(``attacks.searchable``). Metrics:

- ``reid_rank1_ciphertext`` / ``reid_map_ciphertext``: re-ID with the scheme's
  own comparison on ciphertexts (plaintext: Euclidean on the features), chance
  = the same with the query templates handed to the wrong people (rank-1: the
  mean over ``RANK1_SHUFFLES`` shuffles, with its interval and p-value; mAP: the
  mean over ``MAP_SHUFFLES``, with its interval).
- ``known_pair_cosine``: mean cosine of the users' inverted query templates to
  the truth after fitting on the attacker's largest number of pairs;
  ``details["pairs_used"]`` is that number and ``details["curve"]`` has
  ``[pairs, cosine]`` for every count tried.
- ``ciphertext_only_cosine``: the same with no pairs, from the users'
  ciphertexts and the attacker's own plaintext; ``curve`` over ciphertexts, up to
  as many as the users have (``scripts/ciphertext_only_curve.py`` runs the same
  ``alignment_curve`` at 1,000 to 100,000).
  Chance for both: the attacker's mean plaintext feature as everyone's guess.
- ``unlinkability_dsys``, ``renewability_rank1`` and ``irreversibility_success``
  (``attacks.iso30136``); the last one's ``attack`` names the best inversion.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ..ciphers.catalogue import spec
from ..ciphers.dcpe import SHUFFLE_MODE
from ..ciphers.matching import match_view
from ..registry import create_attack
from ..reid import distance_matrix, evaluate, evaluate_ranking
from . import iso30136
from .reconstruction_eval import rank1_chance
from .searchable import mean_cosine
from .types import LeakageRow

KNOWN_PAIRS = {"rotation": "invert-procrustes", "dcpe": "invert-shuffle", "biohash": "invert-biohash"}
CIPHERTEXT_ONLY = {"rotation": "align-procrustes", "dcpe": "align-moments", "biohash": "align-biohash"}
PAIR_COUNTS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CIPHERTEXT_COUNTS = (100, 1000, 10_000, 100_000)
RANK1_SHUFFLES = 200  # query shuffles behind a rank-1 chance level (a single shuffle's rank-1 is often 0)
MAP_SHUFFLES = 20  # behind a mAP chance level: an average over every query already, and each shuffle costs a full pass


def _counts(grid: tuple[int, ...], available: int, also: int | None = None) -> list[int]:
    """The grid's counts up to ``available``, plus ``also`` and ``available`` themselves."""
    chosen = {k for k in grid if k <= available} | {available}
    if also is not None and also <= available:
        chosen.add(also)
    return sorted(chosen)


def mean_guess_cosine(reference, truth) -> float:
    """Chance for an inversion: the mean cosine to ``truth`` of the attacker's mean plaintext feature."""
    return mean_cosine(np.tile(np.asarray(reference).mean(0), (len(truth), 1)), truth)


def ciphertext_only_attack(name: str):
    """Cipher ``name``'s ciphertext-only alignment (unfitted), set up as an attacker who knows the scheme; or None."""
    record = spec(name)
    if record.family not in CIPHERTEXT_ONLY:
        return None
    template = create_attack(CIPHERTEXT_ONLY[record.family])
    if "shuffled" in template.get_params():  # the attacker knows whether the scheme shuffles
        template.set_params(shuffled=record.mode == SHUFFLE_MODE)
    return template


def alignment_curve(template, users, reference, query, truth, counts) -> tuple[list[list], object]:
    """``[n, cosine]`` per ``n`` of ``counts``, and the last fit.

    ``template`` is fitted (a clone per count) on the first ``n`` of ``users``' ciphertexts and the attacker's
    plaintext ``reference``, and scored on ciphertexts ``query`` against their plaintext ``truth``.
    """
    curve = []
    for n in counts:
        alignment = clone(template).fit(users[:n], reference=reference)
        curve.append([n, alignment.score(query, truth)])
    return curve, alignment


def ciphertext_reid_rows(cipher: str, qf, gf, metric: str, query, gallery, seed: int) -> list[LeakageRow]:
    """Rank-1 and mAP of query templates ``qf`` against gallery templates ``gf`` by ``metric``."""

    def figures(features):
        return evaluate(features, gf, query.pids, gallery.pids, query.camids, gallery.camids, metric=metric)

    real = figures(qf)
    null = rank1_chance(qf, gf, query, gallery, seed, metric, n_shuffles=RANK1_SHUFFLES)  # one shuffle is often 0
    map_null = map_chance(qf, gf, metric, query, gallery, seed)
    attack = "scheme-comparison" if cipher != "plaintext" else "features"
    common = dict(cipher=cipher, attack=attack, n=len(qf))
    return [
        LeakageRow(
            metric="reid_rank1_ciphertext",
            value=float(real["cmc"][0]),
            chance=null.pop("chance"),
            details={**null, "comparison": metric},
            **common,
        ),
        LeakageRow(
            metric="reid_map_ciphertext",
            value=real["mAP"],
            chance=map_null.pop("chance"),
            details={**map_null, "comparison": metric},
            **common,
        ),
    ]


def map_chance(qf, gf, metric: str, query, gallery, seed: int, n_shuffles: int = MAP_SHUFFLES) -> dict:
    """mAP of the query rankings handed to the wrong people, ``n_shuffles`` times: the mean and 95% interval.

    One ranking per query (ties broken by gallery order, as ``evaluate``);
    each shuffle reassigns the rankings to the queries' identities and cameras.
    """
    distances = distance_matrix(np.asarray(qf, np.float64), np.asarray(gf, np.float64), metric)
    order = np.argsort(distances, axis=1, kind="stable")
    rng = np.random.default_rng(seed)
    null = np.array(
        [
            evaluate_ranking(
                order[rng.permutation(len(order))], query.pids, gallery.pids, query.camids, gallery.camids
            )["mAP"]
            for _ in range(n_shuffles)
        ]
    )
    lo, hi = np.percentile(null, [2.5, 97.5])
    return {"chance": float(null.mean()), "chance_ci": [float(lo), float(hi)], "shuffles": int(n_shuffles)}


def searchable_rows(name: str, sealed_attacker, sealed_query, sealed_gallery, attacker, query, gallery, seed: int):
    """Rows for matchable cipher ``name``, and ``(inversion, views, estimates)``.

    ``inversion``: the known-pair attack fitted on every attacker pair (or None);
    ``views``: ``match_view`` features of attacker, query and gallery ciphertexts;
    ``estimates``: attack -> the users' inverted query templates.
    """
    record = spec(name)
    (VA, metric), (VQ, _), (VG, _) = (match_view(s) for s in (sealed_attacker, sealed_query, sealed_gallery))
    rows = ciphertext_reid_rows(name, VQ, VG, metric, query, gallery, seed)
    truth = query.features
    baseline = mean_guess_cosine(attacker.features, truth)
    estimates, inversion = {}, None
    if record.family in KNOWN_PAIRS:
        attack = KNOWN_PAIRS[record.family]
        template = create_attack(attack)
        curve = []
        for k in _counts(PAIR_COUNTS, len(VA), also=VA.shape[1]):
            inversion = clone(template).fit(VA[:k], attacker.features[:k])
            curve.append([k, inversion.score(VQ, truth)])
        estimates[f"known-pairs ({attack})"] = inversion.predict(VQ)
        rows.append(
            LeakageRow(
                cipher=name,
                attack=attack,
                metric="known_pair_cosine",
                value=curve[-1][1],
                chance=baseline,
                n=len(truth),
                details={"pairs_used": curve[-1][0], "curve": curve},
            )
        )
    template = ciphertext_only_attack(name)
    if template is not None:
        attack = CIPHERTEXT_ONLY[record.family]
        users = np.concatenate([VQ, VG])
        counts = _counts(CIPHERTEXT_COUNTS, len(users))
        curve, alignment = alignment_curve(template, users, attacker.features, VQ, truth, counts)
        estimates[f"ciphertext-only ({attack})"] = alignment.predict(VQ)
        rows.append(
            LeakageRow(
                cipher=name,
                attack=attack,
                metric="ciphertext_only_cosine",
                value=curve[-1][1],
                chance=baseline,
                n=len(truth),
                details={"ciphertexts": curve[-1][0], "curve": curve},
            )
        )
    return rows, inversion, (VA, VQ, VG), estimates


def iso_rows(name: str, query_a, gallery_b, query, gallery, estimates: dict, seed: int) -> list[LeakageRow]:
    """Unlinkability, renewability (templates under two keys) and irreversibility (the best of ``estimates``)."""
    link = iso30136.cross_key(query_a, gallery_b, query, gallery, seed=seed)
    same_pid = query.pids[:, None] == gallery.pids[None, :]
    pairs = int(same_pid.size)
    rows = [
        LeakageRow(
            cipher=name,
            attack=f"cross-key ({link['view']})",
            metric="unlinkability_dsys",
            value=link["dsys"],
            chance=0.0,
            n=pairs,
            details={"views": link["views"], "comparison": link["metric"]},
        ),
        LeakageRow(
            cipher=name,
            attack=f"cross-key ({link['view']})",
            metric="renewability_rank1",
            value=link["rank1"],
            chance=link["rank1_chance"],
            n=len(query.features),
            details={"comparison": link["metric"]},
        ),
    ]
    someone_else = query.features[np.random.default_rng(seed).permutation(len(query.features))]
    chance = iso30136.inversion_success(someone_else, query, gallery)
    if estimates:
        results = {attack: iso30136.inversion_success(e, query, gallery) for attack, e in estimates.items()}
        best = max(results, key=lambda attack: results[attack]["success"])
        value, threshold = results[best]["success"], results[best]["threshold"]
        candidates = {attack: r["success"] for attack, r in results.items()}
    else:  # nothing inverts this ciphertext: the attacker's best guess is someone else's template
        best, value, threshold, candidates = "none", chance["success"], chance["threshold"], {}
    rows.append(
        LeakageRow(
            cipher=name,
            attack=best,
            metric="irreversibility_success",
            value=value,
            chance=chance["success"],
            n=len(query.features),
            details={"fmr": iso30136.FMR, "threshold": threshold, "inversions": candidates},
        )
    )
    return rows
