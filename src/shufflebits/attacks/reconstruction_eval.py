"""Judging reconstructions: back through the black box, beside chance baselines, and as image grids."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..atomic import atomic_write
from ..errors import ShuffleBitsError
from .decoders import image_tensor
from .scoring import attribute_scores


def _embed(embed, images: np.ndarray, batch: int = 128) -> np.ndarray:
    chunks = [np.asarray(embed(images[i : i + batch]), dtype=np.float32) for i in range(0, len(images), batch)]
    return np.concatenate(chunks)


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return 1.0 - np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-12)


def rank1(query_features, gallery_features, query, gallery, metric: str = "cosine") -> float:
    """Rank-1 of ``query_features`` (rows of ``query``) against ``gallery_features`` (rows of ``gallery``)."""
    from ..reid import evaluate

    result = evaluate(
        query_features, gallery_features, query.pids, gallery.pids, query.camids, gallery.camids, metric=metric
    )
    return float(result["cmc"][0])


def _protocol(query, gallery) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (query, gallery): ``same`` identity, ``invalid`` (junk, or same identity and camera); ``has_match``."""
    from ..reid.metrics import JUNK_PID

    q_pids, g_pids = np.asarray(query.pids)[:, None], np.asarray(gallery.pids)[None, :]
    same = g_pids == q_pids
    invalid = (g_pids == JUNK_PID) | (same & (np.asarray(gallery.camids)[None, :] == np.asarray(query.camids)[:, None]))
    return same, invalid, (same & ~invalid).any(axis=1)


def _rank1_of(distances: np.ndarray, query, gallery) -> float:
    """Rank-1 from a query x gallery distance matrix, by ``reid.evaluate``'s rules.

    Gallery entries of the query's identity and camera (and junk) are skipped,
    queries without a valid match are left out, ties go to gallery order.
    """
    same, invalid, has_match = _protocol(query, gallery)
    top = np.argmin(np.where(invalid, np.inf, distances), axis=1)
    return float(same[np.arange(len(top)), top][has_match].mean())


def _shuffled_rank1s(distances: np.ndarray, query, gallery, orders: list[np.ndarray]) -> np.ndarray:
    """``_rank1_of(distances[order], query, gallery)`` for each order, from one sort of the distance rows.

    Query ``i`` with row ``order[i]`` takes the first entry of that row's
    ascending (stable, so ties keep gallery order) ranking that ``i`` may
    match: among the first ``k + 1`` entries, ``k`` the most entries any query
    must skip, exactly ``argmin`` over the valid entries. Rows with non-finite
    distances are ranked by ``_rank1_of`` itself.
    """
    if not np.isfinite(distances).all():
        return np.array([_rank1_of(distances[order], query, gallery) for order in orders])
    same, invalid, has_match = _protocol(query, gallery)
    depth = min(int(invalid.sum(axis=1).max()) + 1, distances.shape[1])
    ranked = np.argsort(distances, axis=1, kind="stable")[:, :depth]
    rows = np.arange(len(distances))[:, None]
    figures = []
    for order in orders:
        candidates = ranked[order]  # (queries, depth): row order[i]'s nearest gallery entries, for query i
        first = np.argmax(~invalid[rows, candidates], axis=1)
        top = candidates[rows[:, 0], first]
        figures.append(float(same[rows[:, 0], top][has_match].mean()))
    return np.array(figures)


def shuffled_rank1(
    query_features, gallery_features, query, gallery, seed: int = 0, metric: str = "cosine", n_shuffles: int = 200
) -> float:
    """Chance for rank-1: the same query vectors handed to the wrong people, mean over ``n_shuffles`` shuffles.

    ``rank1_chance`` gives the same with its interval and p-value.
    """
    return rank1_chance(query_features, gallery_features, query, gallery, seed, metric, n_shuffles)["chance"]


def rank1_chance(
    query_features, gallery_features, query, gallery, seed: int = 0, metric: str = "cosine", n_shuffles: int = 200
) -> dict:
    """Rank-1 of the query vectors handed to the wrong people, ``n_shuffles`` times.

    ``chance``: the mean over the shuffles, ``chance_ci`` their 95% interval,
    ``p_value`` the one-sided p-value of the unshuffled rank-1 (one distance
    matrix; each shuffle reorders its rows).
    """
    from ..reid.metrics import distance_matrix

    query_features = np.asarray(query_features, dtype=np.float64)
    distances = distance_matrix(query_features, np.asarray(gallery_features, dtype=np.float64), metric)
    rng = np.random.default_rng(seed)
    null = _shuffled_rank1s(distances, query, gallery, [rng.permutation(len(distances)) for _ in range(n_shuffles)])
    lo, hi = np.percentile(null, [2.5, 97.5])
    observed = _rank1_of(distances, query, gallery)
    return {
        "chance": float(null.mean()),
        "chance_ci": [float(lo), float(hi)],
        "p_value": float((1 + np.sum(null >= observed)) / (1 + n_shuffles)),
        "shuffles": int(n_shuffles),
    }


FMR = 1e-3  # the false-match rate that fixes the victim's decision threshold (success-attack rate)


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def match_threshold(query, gallery, query_features=None, gallery_features=None, fmr: float = FMR) -> dict:
    """The victim's cosine-similarity threshold at false-match rate ``fmr``, from the users' impostor pairs.

    Impostor scores: every (query, gallery) pair of genuine user features of
    two different people; a pair is declared a match when its similarity
    exceeds ``threshold`` (a fraction ``fmr`` of impostor pairs does).
    """
    qf = query.features if query_features is None else query_features
    gf = gallery.features if gallery_features is None else gallery_features
    impostor = (_unit(qf) @ _unit(gf).T)[np.asarray(query.pids)[:, None] != np.asarray(gallery.pids)[None, :]]
    if impostor.size == 0:
        raise ShuffleBitsError("a match threshold needs query and gallery features of different people")
    return {"threshold": float(np.quantile(impostor, 1.0 - fmr)), "fmr": fmr, "impostor_pairs": int(impostor.size)}


def success_rate(recon_features: np.ndarray, user_features: np.ndarray, threshold: float) -> float:
    """Fraction of reconstructions whose feature matches their own user's leaked feature above ``threshold``."""
    similarity = np.sum(_unit(recon_features) * _unit(user_features), axis=1)
    return float(np.mean(similarity > threshold))


@dataclass(frozen=True)
class TransferModel:
    """A second re-ID model the decoder never used: reconstructions are judged through it too.

    ``embed`` maps images ``(n, 3, h, w)`` in [0, 1] to its features;
    ``query_features`` / ``gallery_features`` are the users' original images
    through it (rows as the victim's query and gallery).
    """

    name: str
    embed: Callable[[np.ndarray], np.ndarray]
    query_features: np.ndarray
    gallery_features: np.ndarray


def _identification(recon_features, query_features, gallery_features, query, gallery, order, threshold, seed) -> dict:
    """Rank-1 against the gallery and the success-attack rate, each beside the same with reconstructions shuffled."""
    shuffled = recon_features[order]
    return {
        "rank1": rank1(recon_features, gallery_features, query, gallery),
        "rank1_chance": shuffled_rank1(recon_features, gallery_features, query, gallery, seed),
        "success_rate": success_rate(recon_features, query_features, threshold["threshold"]),
        "success_chance": success_rate(shuffled, query_features, threshold["threshold"]),
        **threshold,
    }


def evaluate_reconstruction(
    reconstructions: np.ndarray,
    query,
    embed,
    gallery=None,
    attribute_model=None,
    baseline_images: np.ndarray | None = None,
    seed: int = 0,
    image_attributes: Callable[[np.ndarray], np.ndarray] | None = None,
    transfer: TransferModel | None = None,
) -> dict:
    """The paper's evaluation: reconstructions back through the black box.

    ``cosine_distance``: mean cosine distance between the re-embedded
    reconstructions and ``query.features``; ``chance``: the same with the
    reconstructions handed to the wrong people (a typical pedestrian scores
    well without telling anyone apart), beside ``mean_image_distance`` (the
    mean attacker image, ``baseline_images``, else the mean reconstruction)
    and ``noise_distance`` (uniform noise images). With a ``gallery``:
    ``rank1`` of the re-embedded reconstructions as queries, the
    ``success_rate`` (reconstructions matching their own user's leaked feature
    at the victim's threshold for false-match rate ``FMR``, ``match_threshold``)
    and their chances (``rank1_chance``, ``success_chance``: the same
    reconstructions shuffled across people); with a ``transfer`` model too,
    the same figures through it under ``transfer``. With an
    ``attribute_model`` (trained on plaintext features): ``attributes``, its
    scores on the re-embedded reconstructions. ``image_attributes`` (images ->
    predicted classes ``(n, a)``): ``image_attributes`` scores of an attribute
    classifier applied to the reconstructed images themselves.
    """
    rng = np.random.default_rng(seed)
    recon_features = _embed(embed, reconstructions)
    originals = np.asarray(query.features, dtype=np.float32)
    mean_image = (baseline_images if baseline_images is not None else reconstructions).mean(axis=0, keepdims=True)
    mean_features = np.repeat(_embed(embed, mean_image.astype(np.float32)), len(originals), axis=0)
    noise = rng.uniform(0, 1, reconstructions.shape).astype(np.float32)
    order = rng.permutation(len(recon_features))
    result = {
        "cosine_distance": float(_cosine_distance(recon_features, originals).mean()),
        "chance": float(_cosine_distance(recon_features[order], originals).mean()),
        "mean_image_distance": float(_cosine_distance(mean_features, originals).mean()),
        "noise_distance": float(_cosine_distance(_embed(embed, noise), originals).mean()),
        "n": len(originals),
    }
    if gallery is not None:
        threshold = match_threshold(query, gallery)
        figures = _identification(recon_features, originals, gallery.features, query, gallery, order, threshold, seed)
        result.update(figures)
        result["gallery_identities"] = int(np.unique(gallery.pids).size)
        if transfer is not None:
            qt, gt = transfer.query_features, transfer.gallery_features
            threshold = match_threshold(query, gallery, qt, gt)
            recon_transfer = _embed(transfer.embed, reconstructions)
            result["transfer"] = {
                "model": transfer.name,
                **_identification(recon_transfer, qt, gt, query, gallery, order, threshold, seed),
            }
    if attribute_model is not None:
        result["attributes"] = attribute_model.attribute_scores(recon_features, query.labels)
    if image_attributes is not None:
        predicted = np.asarray(image_attributes(reconstructions))
        result["image_attributes"] = attribute_scores(query.labels, predicted, list(query.attribute_names))
    return result


def reconstruction_grid(
    originals: np.ndarray, reconstructions: np.ndarray, columns: int = 8, count: int = 16
) -> np.ndarray:
    """uint8 ``(H, W, 3)`` image of pairs original | reconstruction, ``count`` pairs in rows of ``columns`` pairs."""
    count = min(count, len(reconstructions))
    if count == 0:
        raise ShuffleBitsError("no reconstructions to draw")
    size = reconstructions.shape[2:]
    originals = image_tensor(originals[:count], size, "cpu").numpy()
    h, w = size
    rows = -(-count // columns)
    canvas = np.ones((rows * (h + 2), min(count, columns) * (2 * w + 4), 3), dtype=np.float32)
    for i in range(count):
        r, c = divmod(i, columns)
        y, x = r * (h + 2), c * (2 * w + 4)
        canvas[y : y + h, x : x + w] = originals[i].transpose(1, 2, 0)
        canvas[y : y + h, x + w : x + 2 * w] = reconstructions[i].transpose(1, 2, 0)
    image = Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, 256 // image.height)
    return np.asarray(image.resize((image.width * scale, image.height * scale), Image.NEAREST))


def grid_png(grid: np.ndarray) -> bytes:
    """PNG bytes of a ``reconstruction_grid``."""
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(originals: np.ndarray, reconstructions: np.ndarray, path, columns: int = 8, count: int = 16) -> None:
    """PNG of pairs original | reconstruction (``reconstruction_grid``), written atomically."""
    png = grid_png(reconstruction_grid(originals, reconstructions, columns, count))
    with atomic_write(path, "wb") as handle:
        handle.write(png)
