"""Leakage-matrix rows for CKKS (``ciphers.ckks``): matching through the key holder, renewability, linkage.

CKKS scoring costs about 70 ms per query at N = 8192 on one core, so the rows
run on subsamples, their sizes in each row:

- ``reid_rank1_ciphertext`` / ``reid_map_ciphertext``: ``CkksSample.queries`` queries scored
  against the users' whole gallery (column-packed, the attacker's enrolled
  templates beside it), the scores decrypted by the key holder, which ranks;
  ``plaintext_rank1`` / ``plaintext_map``: the same queries on the features.
- ``renewability_rank1``: a matcher cannot compare ciphertexts of two CKKS
  contexts, so renewability is the old key holder's secret key (A) reading the
  scores computed on the gallery re-enrolled under key B: noise, rank-1 at chance.
- ``unlinkability_dsys``: without a secret key the adversary can only compare
  ciphertexts. In the column layout no ciphertext belongs to one template, so
  each template is encrypted alone (one ciphertext per template, its values in
  the real slots: the most an adversary could get), query under A, gallery under B,
  compared by the cosine of ``coefficient_view``.
- attribute inference and reconstruction (``leakage._Matrix.homomorphic``):
  same-key learning on ``coefficient_view`` of the attacker's own templates under
  the users' key (the encrypting black box);
  ``reid_rank1``: linking users by that view, query and gallery under key A.
- ``score_reveal_cosine`` / ``score_reveal_topk_cosine``: ``attacks.scorereveal``
  from the key holder's revealed scores, and from its top-``TOP_K`` ids.
- ``irreversibility_success``: those inversions (the most enrolled templates)
  judged as every cipher's are (``iso30136.inversion_success``, FMR 1e-3): the
  top-``TOP_K`` ones, what the default deployment releases; the revealed-score
  ones in ``details``.

Keys and encryption noise come from ``seed`` (``ckks.generate_key(seed=...)``, the
insecure reproducible mode), so the rows repeat bit for bit.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

import numpy as np

from ..ciphers.ckks import (
    PRIMES,
    Ckks,
    CkksKey,
    EncryptedScores,
    KeyHolder,
    encrypt_slots,
    generate_key,
    score,
    to_bytes,
)
from ..errors import ShuffleBitsError
from ..reid import distance_matrix, evaluate, evaluate_ranking
from .iso30136 import FMR, dsys, inversion_success
from .reconstruction_eval import rank1, rank1_chance
from .scorereveal import inner_products, score_reveal_curve
from .types import CkksSample, LabelledFeatures, LeakageRow

COEFFICIENTS = 256  # per polynomial: the ciphertext's fixed-size view
TOP_K = 5  # ids the key holder releases in the top-k score-reveal row


@dataclass(frozen=True)
class CkksViews:
    """What same-key learning sees: ``coefficient_view`` of the attacker's templates and of the sampled users."""

    attacker: LabelledFeatures
    attacker_rows: np.ndarray  # the rows of the attacker's set that ``attacker`` holds, in order
    attacker_view: np.ndarray
    users: LabelledFeatures  # the sampled queries, with their images where the query set has them
    users_rows: np.ndarray  # the rows of the query set that ``users`` holds, in order
    users_view: np.ndarray


def coefficient_view(key: CkksKey, features) -> np.ndarray:
    """Each row encrypted alone under ``key``; the first ``COEFFICIENTS`` of both polynomials, in [0, 1).

    SEAL keeps CKKS ciphertexts in NTT form, where every coefficient is an
    evaluation of the whole polynomial and so depends on every slot: a slice
    holds as much of the template per coefficient as the full 2 x N. The words
    are read where the serialized ciphertext stores them verbatim (zstd keeps
    random words as raw blocks), found by the first word of each polynomial.
    """
    out = []
    for row in np.asarray(features, np.float64):
        ciphertext = encrypt_slots(key, row)
        blob, n = to_bytes(ciphertext), ciphertext.poly_modulus_degree()
        start = blob.find(struct.pack("<Q", ciphertext.data(0)))
        if start < 0 or blob[start + 8 * n : start + 8 * n + 8] != struct.pack("<Q", ciphertext.data(1)):
            raise ShuffleBitsError("SEAL compressed this ciphertext's words: no coefficients to read")
        words = np.frombuffer(blob, "<u8", 2 * n, start).reshape(2, n)
        out.append(words[:, :COEFFICIENTS].ravel() / 2.0 ** PRIMES[0])  # the data prime sits just below
    return np.asarray(out, np.float64).reshape(len(out), 2 * COEFFICIENTS)


def read_with(key: CkksKey, scores: EncryptedScores) -> np.ndarray:
    """What ``key``'s secret reads from score ciphertexts made under another key (relabelled, as an attacker would)."""
    return KeyHolder(key).decrypt(dataclasses.replace(scores, key_fingerprint=key.fingerprint))


def _ranking(similarity: np.ndarray) -> np.ndarray:
    return np.argsort(-similarity, axis=1, kind="stable")


def _figures(order: np.ndarray, users: LabelledFeatures, gallery: LabelledFeatures) -> dict:
    return evaluate_ranking(order, users.pids, gallery.pids, users.camids, gallery.camids)


def _mated(scores: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = q_pids[:, None] == g_pids[None, :]
    return scores[same], scores[~same]


def _irreversibility(name: str, last: dict, users, gallery, enrolled: int, rng) -> LeakageRow:
    """ISO/IEC 30136 irreversibility: the share of score-reveal inversions the plaintext system accepts as
    their person (``iso30136.inversion_success``, FMR 1e-3), for what the default deployment releases (top-k
    ids); the ``reveal_scores`` mode's inversions beside it. Chance: someone else's template."""
    released = inversion_success(last["top_k"], users, gallery)
    revealed = inversion_success(last["scores"], users, gallery)
    chance = inversion_success(users.features[rng.permutation(len(users.features))], users, gallery)
    return LeakageRow(
        cipher=name,
        attack=f"score-reveal on top-{TOP_K} ids",
        metric="irreversibility_success",
        value=released["success"],
        chance=chance["success"],
        n=len(users.features),
        details={
            "fmr": FMR,
            "threshold": released["threshold"],
            "enrolled": enrolled,
            "inversions": {f"score-reveal on top-{TOP_K} ids": released["success"]},
            "reveal_scores_mode": revealed["success"],
            "n_gallery": len(gallery.features),
        },
    )


def ckks_rows(
    name: str,
    attacker: LabelledFeatures,
    query: LabelledFeatures,
    gallery: LabelledFeatures,
    seed: int,
    sample: CkksSample = CkksSample(),
) -> tuple[list[LeakageRow], CkksViews]:
    """The CKKS rows of the matrix (module docstring) and the views the attribute attack learns from,
    on ``sample``'s subsample sizes (the link gallery holds the queries' people first)."""
    rng = np.random.default_rng(seed)
    first, renewed = (Ckks(generate_key(seed=(2 * seed + k) % 2**64)) for k in range(2))
    users_rows = np.sort(rng.permutation(len(query))[: sample.queries])
    users = query.take(users_rows)
    enrolled = attacker.features[np.sort(rng.permutation(len(attacker))[: sample.attacker_pool])].astype(np.float64)
    q, g = users.features.astype(np.float64), gallery.features.astype(np.float64)
    sizes = {"n_query": len(q), "n_gallery": len(g)}

    packed = first.encrypt_gallery(np.concatenate([g, enrolled]))
    release = first.key_holder().release(score(packed, q), top_k=packed.count, reveal_scores=True)
    order = release.ids[release.ids < len(g)].reshape(len(q), len(g))  # the users' rows, in the key holder's order
    shuffled = rng.permutation(len(q))
    real, chance = _figures(order, users, gallery), _figures(order[shuffled], users, gallery)
    plain = evaluate(q, g, users.pids, gallery.pids, users.camids, gallery.camids, metric="euclidean")
    scale = packed.norm_scale
    pooled = np.concatenate([g, enrolled]) / scale
    expected = 2 * (q / scale) @ pooled.T - (pooled**2).sum(1)[None]
    expected /= np.maximum(np.linalg.norm(q / scale, axis=1, keepdims=True), 1.0)
    common = dict(cipher=name, attack="key holder ranks", n=len(q))
    details = {
        "comparison": "CKKS euclidean scores, decrypted by the key holder",
        **sizes,
        "score_error_max": float(np.abs(release.scores - expected).max()),
    }
    rows = [
        LeakageRow(
            metric="reid_rank1_ciphertext",
            value=float(real["cmc"][0]),
            chance=float(chance["cmc"][0]),
            details={**details, "plaintext_rank1": float(plain["cmc"][0])},
            **common,
        ),
        LeakageRow(
            metric="reid_map_ciphertext",
            value=float(real["mAP"]),
            chance=float(chance["mAP"]),
            details={**details, "plaintext_map": float(plain["mAP"])},
            **common,
        ),
    ]

    wrong = users.take(np.arange(min(sample.wrong_key_queries, len(users))))
    renewed_scores = score(renewed.encrypt_gallery(g), q[: len(wrong)])
    noise = read_with(first.key, renewed_scores)
    noise_order = _ranking(noise)
    rows.append(
        LeakageRow(
            cipher=name,
            attack="old secret key on renewed gallery",
            metric="renewability_rank1",
            value=float(_figures(noise_order, wrong, gallery)["cmc"][0]),
            chance=float(_figures(noise_order[rng.permutation(len(wrong))], wrong, gallery)["cmc"][0]),
            n=len(wrong),
            details={
                "comparison": "scores under key B decrypted with key A's secret",
                "renewed_key_rank1": float(
                    _figures(_ranking(renewed.key_holder().decrypt(renewed_scores)), wrong, gallery)["cmc"][0]
                ),
                "n_gallery": len(g),
            },
        )
    )

    mine = np.isin(gallery.pids, users.pids)
    linked = np.concatenate([np.flatnonzero(mine), rng.permutation(np.flatnonzero(~mine))])[: sample.link_gallery]
    linked_gallery = gallery.take(np.sort(linked))
    users_view = coefficient_view(first.key, q)
    gallery_view = coefficient_view(renewed.key, linked_gallery.features)
    link = dsys(*_mated(-distance_matrix(users_view, gallery_view, "cosine"), users.pids, linked_gallery.pids))
    rows.append(
        LeakageRow(
            cipher=name,
            attack="cross-key (ciphertext coefficients)",
            metric="unlinkability_dsys",
            value=link,
            chance=0.0,
            n=len(q) * len(linked_gallery),
            details={
                "views": {"coefficients": link},
                "comparison": "cosine",
                "wrong_key_scores_dsys": dsys(*_mated(noise, wrong.pids, gallery.pids)),
                "n_query": len(q),
                "n_gallery": len(linked_gallery),
                "coefficients": 2 * COEFFICIENTS,
            },
        )
    )

    impostor = distance_matrix(q, g, "cosine")[users.pids[:, None] != gallery.pids[None, :]]
    threshold = 1.0 - float(np.quantile(impostor, FMR))
    inner = inner_products(release.scores, pooled) * scale**2  # a query longer than the largest template: scaled
    last: dict = {}
    curve = score_reveal_curve(enrolled, q, g, top_k=TOP_K, threshold=threshold, seed=seed, inner=inner, estimates=last)
    for metric, attack, cosine, success in (
        ("score_reveal_cosine", "score-reveal", "cosine", "success"),
        ("score_reveal_topk_cosine", f"score-reveal on top-{TOP_K} ids", "topk_cosine", "topk_success"),
    ):
        rows.append(
            LeakageRow(
                cipher=name,
                attack=attack,
                metric=metric,
                value=curve[-1][cosine],
                chance=curve[-1]["chance"],
                n=len(q),
                details={
                    "enrolled": curve[-1]["n"],
                    "curve": [[r["n"], r[cosine]] for r in curve],
                    "success_curve": [[r["n"], r[success]] for r in curve],
                    "threshold": threshold,
                    "top_k": TOP_K,
                    "n_gallery": len(g),
                },
            )
        )

    rows.append(_irreversibility(name, last, users, gallery, curve[-1]["n"], rng))

    own_rows = np.sort(rng.permutation(len(attacker))[: sample.attribute_attacker])
    own = attacker.take(own_rows)
    views = CkksViews(own, own_rows, coefficient_view(first.key, own.features), users, users_rows, users_view)
    same_key = coefficient_view(first.key, linked_gallery.features)
    null = rank1_chance(users_view, same_key, users, linked_gallery, seed)
    rows.append(
        LeakageRow(
            cipher=name,
            attack="same-key-coefficients",
            metric="reid_rank1",
            value=rank1(users_view, same_key, users, linked_gallery),
            chance=null.pop("chance"),
            n=len(q),
            details={
                **null,
                "validation": rank1(views.attacker_view, views.attacker_view, own, own),
                "n_gallery": len(linked_gallery),
            },
        )
    )
    return rows, views
