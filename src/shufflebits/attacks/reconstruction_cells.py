"""The reconstruction cells of the leakage matrix: candidates, chosen on the attacker's validation split.

Every reconstruction candidate of a cipher (the learned decoders and the
``nn-lookup`` baseline) is fitted on the attacker's training identities and
judged by re-embedding its reconstructions of the attacker's held-out
identities (cosine distance to their features, which the attacker knows). The
lowest wins; a decoder must beat the lookup outright (ties go to the lookup).
Only then are the users' reconstructions scored, and every candidate's
figures on the users stay in the rows as ``candidates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .attribute import _validation_split
from .lookup import NearestLookup
from .reconstruction_eval import (
    TransferModel,
    _cosine_distance,
    _embed,
    evaluate_reconstruction,
    reconstruction_grid,
)
from .types import LabelledFeatures, LeakageRow

VALIDATION_FRACTION = 0.2  # of the attacker's identities, held out to choose between candidates
VALIDATION_IMAGES = 512  # at most this many held-out images re-embedded per candidate (black-box queries)
RULE = "lowest recon_cosine_distance on the attacker's validation split; a decoder must beat nn-lookup"


@dataclass(frozen=True)
class Candidate:
    """A fitted reconstruction attack and its inputs: the attacker's held-out rows, the users' query rows."""

    model: object  # fitted: predict(inputs) -> images (n, 3, h, w)
    validation_inputs: np.ndarray
    user_inputs: np.ndarray


def attacker_split(attacker: LabelledFeatures, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation rows of the attacker's set, whole identities on one side; validation capped."""
    rng = np.random.default_rng(seed)
    train, val = _validation_split(len(attacker), attacker.pids, VALIDATION_FRACTION, rng)
    if len(val) > VALIDATION_IMAGES:
        val = np.sort(rng.choice(val, VALIDATION_IMAGES, replace=False))
    return train, val


def judged_users(n: int, cap: int | None, seed: int) -> np.ndarray:
    """The query rows whose reconstructions are judged: all ``n``, or a seeded sample of ``cap``, in order.

    Judging costs a pass through the victim and through the second model per
    user and candidate; the sample is the same for every cipher of a run.
    """
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap])


def validation_distance(candidate: Candidate, targets: np.ndarray, embed) -> float:
    """Mean cosine distance of the re-embedded held-out reconstructions to the attacker's own features."""
    features = _embed(embed, candidate.model.predict(candidate.validation_inputs))
    return float(_cosine_distance(features, targets).mean())


def choose(candidates: dict[str, Candidate], validation: dict[str, float]) -> str:
    """The lowest validation distance; on a tie the lookup (a decoder has to beat it to count)."""
    return min(candidates, key=lambda a: (validation[a], not isinstance(candidates[a].model, NearestLookup)))


def _metrics(result: dict) -> dict[str, tuple[float, float, dict]]:
    """metric -> (value, chance, details) for one evaluated reconstruction."""
    figures = {
        "recon_cosine_distance": (
            result["cosine_distance"],
            result["chance"],
            {
                "mean_image_distance": result["mean_image_distance"],
                "noise_distance": result["noise_distance"],
                "attr_bacc_mean": result["attributes"]["mean"],
                "attr_chance_mean": result["attributes"]["chance_mean"],
            },
        ),
        "recon_rank1": (result["rank1"], result["rank1_chance"], {"gallery_identities": result["gallery_identities"]}),
        "recon_success_rate": (result["success_rate"], result["success_chance"], _threshold(result)),
    }
    if "image_attributes" in result:
        scores = result["image_attributes"]
        figures["recon_attr_bacc_mean"] = (scores["mean"], scores["chance_mean"], {})
    if "transfer" in result:
        transfer = result["transfer"]
        model = {"transfer_model": transfer["model"]}
        figures["recon_rank1_transfer"] = (transfer["rank1"], transfer["rank1_chance"], model)
        figures["recon_success_rate_transfer"] = (
            transfer["success_rate"],
            transfer["success_chance"],
            {**model, **_threshold(transfer)},
        )
    return figures


def _threshold(result: dict) -> dict:
    return {
        "threshold": result["threshold"],
        "fmr": result["fmr"],
        "impostor_pairs": result["impostor_pairs"],
        "matched_against": "the user's own leaked feature",
    }


def reconstruction_rows(
    cipher: str,
    candidates: dict[str, Candidate],
    *,
    attacker: LabelledFeatures,
    validation_rows: np.ndarray,
    query: LabelledFeatures,
    gallery: LabelledFeatures,
    embed,
    attribute_model,
    image_attributes: Callable[[np.ndarray], np.ndarray] | None,
    image_ceiling: float | None,
    transfer: TransferModel | None,
    seed: int,
) -> tuple[list[LeakageRow], dict[tuple[str, str], np.ndarray]]:
    """One row per reconstruction metric for the validation-chosen candidate, and every candidate's grid."""
    targets = attacker.features[validation_rows]
    validation = {attack: validation_distance(c, targets, embed) for attack, c in candidates.items()}
    figures, grids = {}, {}
    for attack, candidate in candidates.items():
        reconstructions = candidate.model.predict(candidate.user_inputs)
        result = evaluate_reconstruction(
            reconstructions,
            query,
            embed,
            gallery=gallery,
            attribute_model=attribute_model,
            baseline_images=attacker.images,
            seed=seed,
            image_attributes=image_attributes,
            transfer=transfer,
        )
        figures[attack] = _metrics(result)
        grids[(cipher, attack)] = reconstruction_grid(query.images, reconstructions)
    best = choose(candidates, validation)
    rows = []
    for metric, (value, chance, details) in figures[best].items():
        if metric == "recon_attr_bacc_mean" and image_ceiling is not None:
            details = {**details, "original_images": image_ceiling}
        rows.append(
            LeakageRow(
                cipher=cipher,
                attack=best,
                metric=metric,
                value=value,
                chance=chance,
                n=len(query),
                details={
                    **details,
                    "validation": validation[best],
                    "rule": RULE,
                    "candidates": {
                        attack: {"value": figures[attack][metric][0], "validation": validation[attack]}
                        for attack in candidates
                    },
                },
            )
        )
    return rows, grids
