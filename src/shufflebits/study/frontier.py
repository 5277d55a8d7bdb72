"""The frontier sweep: what a searchable scheme's parameter buys in utility, and costs in leakage.

For ``dcpe`` over several β and ``biohash`` over several numbers of bits b, on the
study's own features: re-ID rank-1 on the users' ciphertexts with the scheme's
comparison (``matching.match_view``), unlinkability ``D_sys`` between the users'
query templates under one key and gallery templates under another
(``iso30136.cross_key``, as the leakage matrix's ``unlinkability_dsys``), and
attribute inference by a cheap probe: the attribute MLP with few epochs,
trained on the attacker's own ciphertexts under the users' key (same-key
learning) in the scheme's matching view, early-stopped on the attacker's
held-out identities and scored on the users. The probe is weaker than the
matrix's attacks (one view, no known-pair inversion), so its leakage is a
lower bound. No network beyond that probe is trained; keys and nonces derive
from the seed (``hazmat.experiment_cipher``).

β is a distance, so the sweep takes it relative to the features' own scale:
multiples of the median Euclidean distance between the attacker's features of
different people (the operator picks β from data it holds, as the attacker
can). Each point also times encrypting the users' gallery (median of ``TIMED_RUNS``, after
the key's set-up; µs per vector, under this run's load) and counts its bytes per protected vector.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import clone

from ..attacks.attribute import AttributeInference
from ..attacks.iso30136 import cross_key
from ..attacks.protection import ciphertext_reid_rows
from ..attacks.scoring import attribute_scores
from ..attacks.types import AttackProfile, LabelledFeatures
from ..ciphers.hazmat import experiment_cipher
from ..ciphers.matching import match_view
from ..reid import distance_matrix
from ..runtime import torch_threads

DCPE_RELATIVE_BETAS = (0.125, 0.5, 2.0, 8.0)  # β / median distance between different people
BIOHASH_BITS = (8, 32, 128, 512)  # b, kept to 1..d (d itself is always added: BioHash's default)
PROBE_EPOCHS = 5  # at most: the probe must stay cheap beside the matrix's attacks
SCALE_SAMPLE = 1000  # attacker rows behind the median distance
TIMED_RUNS = 3  # encryptions of the users' gallery behind each point's median time (one can catch a busy moment)


def impostor_distance(features: LabelledFeatures, seed: int) -> float:
    """Median Euclidean distance between features of different people (a sample of up to ``SCALE_SAMPLE`` rows)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(features))[:SCALE_SAMPLE]
    x = features.features[rows].astype(np.float64)
    other = features.pids[rows][:, None] != features.pids[rows][None, :]
    return float(np.median(np.sqrt(distance_matrix(x, x)[other])))


def sweep_parameters(attacker: LabelledFeatures, seed: int) -> list[tuple[str, dict, dict]]:
    """``(cipher, parameters, what to record)`` for every point of the sweep."""
    scale = impostor_distance(attacker, seed)
    d = attacker.features.shape[1]
    points = [("dcpe", {"beta": r * scale}, {"beta_relative": r, "distance_scale": scale}) for r in DCPE_RELATIVE_BETAS]
    bits = sorted({b for b in BIOHASH_BITS if b <= d} | {d})
    points += [("biohash", {"bits": b}, {}) for b in bits]
    return points


def _float32(features: LabelledFeatures) -> np.ndarray:
    return np.ascontiguousarray(features.features, dtype=np.float32)


def sweep_point(
    name: str,
    params: dict,
    attacker: LabelledFeatures,
    query: LabelledFeatures,
    gallery: LabelledFeatures,
    probe: AttributeInference | None,
    seed: int,
) -> dict:
    """One point: rank-1 on ciphertexts, D_sys across two keys, the probe's attribute leakage, cost."""
    cipher = experiment_cipher(name, seed, **params)
    sealed_query = cipher.encrypt(_float32(query))  # first: derives the key's matrix or shuffle, not timed
    seconds = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        sealed_gallery = cipher.encrypt(_float32(gallery))
        seconds.append(time.perf_counter() - start)
    sealed_attacker = cipher.encrypt(_float32(attacker))
    (VQ, metric), (VG, _), (VA, _) = (match_view(s) for s in (sealed_query, sealed_gallery, sealed_attacker))
    rank1_row = ciphertext_reid_rows(name, VQ, VG, metric, query, gallery, seed)[0]
    gallery_b = experiment_cipher(name, seed + 1, **params).encrypt(_float32(gallery))
    link = cross_key(sealed_query, gallery_b, query, gallery, seed=seed)
    nonce_bytes = 0 if sealed_gallery.nonces is None else sealed_gallery.nonces.nbytes
    point = {
        "cipher": name,
        **params,
        "comparison": metric,
        "reid_rank1_ciphertext": rank1_row.value,
        "reid_rank1_chance": rank1_row.chance,
        "unlinkability_dsys": link["dsys"],
        "dsys_view": link["view"],
        "encrypt_us_per_vector": float(np.median(seconds)) / max(len(gallery), 1) * 1e6,
        "bytes_per_vector": (sealed_gallery.payload().nbytes + nonce_bytes) / max(len(gallery), 1),
        "n_query": len(query),
        "n_gallery": len(gallery),
    }
    if probe is not None:
        a = attacker
        names, classes = a.attribute_names, a.num_classes
        model = clone(probe).fit(VA, a.labels, groups=a.pids, num_classes=classes, attribute_names=names)
        labels = np.concatenate([query.labels, gallery.labels])
        score = attribute_scores(labels, model.predict(np.concatenate([VQ, VG])), attacker.attribute_names)
        point.update(
            attr_bacc_mean=score["mean"],
            attr_chance_mean=score["chance_mean"],
            attr_validation=model.validation_score_,
            attr_probe=f"attr-mlp on the {metric} matching view, {probe.epochs} epochs at most",
        )
    return point


def frontier_sweep(
    attacker: LabelledFeatures,
    query: LabelledFeatures,
    gallery: LabelledFeatures,
    profile: AttackProfile | None,
    seed: int = 0,
    device: str = "cpu",
) -> dict:
    """Every sweep point (``points``) and what they were measured on; ``profile=None`` skips the attribute probe."""
    probe = None
    if profile is not None:
        epochs = min(profile.mlp_epochs, PROBE_EPOCHS)
        probe = AttributeInference(config="mlp", epochs=epochs, hidden=profile.hidden, device=device, random_state=seed)
    with torch_threads(1):
        points = [
            {**sweep_point(name, params, attacker, query, gallery, probe, seed), **extra}
            for name, params, extra in sweep_parameters(attacker, seed)
        ]
    return {
        "points": points,
        "attribute_probe": probe is not None,
        "feature_dim": int(attacker.features.shape[1]),
        "load_average": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }
