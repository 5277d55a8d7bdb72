"""Re-ID evaluation: hand-worked cases, a brute-force reference, protocol details, errors."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.errors import ShuffleBitsError
from shufflebits.reid import evaluate, metrics


def brute_force(qf, gf, q_pids, g_pids, q_cams, g_cams, metric, max_rank):
    """Straight from the protocol's definition, one query and one gallery item at a time."""
    aps, inps, firsts, skipped = [], [], [], 0
    for i in range(len(qf)):
        scored = []
        for j in range(len(gf)):
            if g_pids[j] == -1 or (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i]):
                continue
            if metric == "euclidean":
                distance = float(np.sum((qf[i] - gf[j]) ** 2))
            else:
                distance = 1 - float(qf[i] @ gf[j] / np.linalg.norm(qf[i]) / np.linalg.norm(gf[j]))
            scored.append((distance, j))
        ranked = [g_pids[j] == q_pids[i] for _, j in sorted(scored)]
        if not any(ranked):
            skipped += 1
            continue
        hit_ranks = [rank for rank, hit in enumerate(ranked, start=1) if hit]
        aps.append(np.mean([(k + 1) / rank for k, rank in enumerate(hit_ranks)]))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        firsts.append(hit_ranks[0])
    cmc = [np.mean([first <= k for first in firsts]) for k in range(1, min(max_rank, len(gf)) + 1)]
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": np.array(cmc), "skipped": skipped}


def test_hand_worked_case():
    # One query (pid 1, camera 0) at 0 on a line; gallery positions, ids and cameras:
    gallery = np.array([[0.1], [0.2], [0.3], [0.4], [0.5], [0.6]])
    g_pids = [1, 2, 1, -1, 1, 3]  # 0.1: same pid+camera -> removed; 0.4: junk -> removed
    g_cams = [0, 1, 1, 1, 2, 1]
    # Ranked valid gallery: pid2 (miss), pid1 (hit at 2), pid1 (hit at 3), pid3.
    # A second query (pid 9) has no true match and is skipped.
    result = evaluate(np.array([[0.0], [0.0]]), gallery, [1, 9], g_pids, [0, 0], g_cams, max_rank=4)
    assert result["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["mINP"] == pytest.approx(2 / 3)
    assert result["cmc"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert result["rank1"] == 0.0 and result["rank5"] == 1.0
    assert result["num_query"] == 1 and result["num_skipped"] == 1


def test_same_identity_same_camera_is_excluded_but_other_camera_counts():
    query, q_pid, q_cam = np.array([[0.0, 0.0]]), [5], [2]
    gallery = np.array([[0.0, 0.1], [0.0, 0.2]])
    assert evaluate(query, gallery, q_pid, [5, 5], q_cam, [2, 3])["rank1"] == 1.0  # nearest removed, next hits
    assert evaluate(query, gallery, q_pid, [7, 5], q_cam, [3, 3])["rank1"] == 0.0
    assert evaluate(query, gallery, q_pid, [7, 5], q_cam, [3, 3])["cmc"][1] == 1.0


def test_distractors_count_as_negatives_and_junk_is_ignored():
    query, gallery = np.array([[0.0]]), np.array([[0.1], [0.2]])
    assert evaluate(query, gallery, [4], [0, 4], [0], [1, 1])["rank1"] == 0.0  # pid 0 distractor ranks first
    assert evaluate(query, gallery, [4], [-1, 4], [0], [1, 1])["rank1"] == 1.0  # junk -1 removed


def test_cosine_option_ranks_by_angle():
    query = np.array([[1.0, 0.0]])
    gallery = np.array([[10.0, 1.0], [0.5, 0.5]])  # same direction but far / near but 45 degrees off
    args = ([1], [1, 2], [0], [1, 1])
    assert evaluate(query, gallery, *args)["rank1"] == 0.0
    assert evaluate(query, gallery, *args, metric="cosine")["rank1"] == 1.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_random_data(metric, seed):
    rng = np.random.default_rng(seed)
    nq, ng, d = 25, 60, 8
    qf, gf = rng.standard_normal((nq, d)), rng.standard_normal((ng, d))
    q_pids, g_pids = rng.integers(0, 10, nq), rng.integers(-1, 10, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    result = evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=metric, max_rank=20)
    reference = brute_force(qf, gf, q_pids, g_pids, q_cams, g_cams, metric, 20)
    assert result["mAP"] == pytest.approx(reference["mAP"], abs=1e-12)
    assert result["mINP"] == pytest.approx(reference["mINP"], abs=1e-12)
    assert np.allclose(result["cmc"], reference["cmc"])
    assert result["num_skipped"] == reference["skipped"]
    assert result["rank1"] == pytest.approx(reference["cmc"][0])
    assert result["rank10"] == pytest.approx(reference["cmc"][9])


def test_blocked_distances_give_the_same_figures(monkeypatch):
    rng = np.random.default_rng(7)
    qf, gf = rng.standard_normal((40, 16)).astype(np.float32), rng.standard_normal((90, 16)).astype(np.float32)
    labels = (rng.integers(0, 12, 40), rng.integers(0, 12, 90), rng.integers(0, 4, 40), rng.integers(0, 4, 90))
    whole = evaluate(qf, gf, *labels)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 200)  # two queries per block
    blocked = evaluate(qf, gf, *labels)
    assert blocked["mAP"] == whole["mAP"] and np.array_equal(blocked["cmc"], whole["cmc"])


def test_cmc_length_is_capped_by_gallery_size():
    result = evaluate(np.zeros((1, 2)), np.eye(2), [1], [1, 2], [0], [1, 1], max_rank=50)
    assert len(result["cmc"]) == 2


def test_input_errors():
    q, g = np.zeros((2, 4)), np.ones((3, 4))
    ids = ([1, 2], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ShuffleBitsError, match="unknown metric"):
        evaluate(q, g, *ids, metric="manhattan")
    with pytest.raises(ShuffleBitsError, match="NaN or Inf"):
        evaluate(np.full((2, 4), np.nan), g, *ids)
    with pytest.raises(ShuffleBitsError, match="floating point"):
        evaluate(q.astype(np.uint32), g, *ids)
    with pytest.raises(ShuffleBitsError, match="4-d"):
        evaluate(q, np.ones((3, 5)), *ids)
    with pytest.raises(ShuffleBitsError, match="entries"):
        evaluate(q, g, [1], *ids[1:])
    with pytest.raises(ShuffleBitsError, match="no query has a valid gallery match"):
        evaluate(q, g, [7, 8], [1, 2, 3], [0, 0], [1, 1, 1])


@pytest.mark.parametrize("cipher_name", ["shufflebits", "shufflebits-dim", "chacha20"])
def test_decrypted_features_give_exactly_the_plaintext_figures(cipher_name):
    from shufflebits.registry import create_cipher

    rng = np.random.default_rng(3)
    # Post-ReLU-like features, as OSNet emits: many exact zeros.
    qf = np.maximum(rng.standard_normal((30, 32)), 0).astype(np.float32)
    gf = np.maximum(rng.standard_normal((80, 32)), 0).astype(np.float32)
    labels = (rng.integers(0, 15, 30), rng.integers(0, 15, 80), rng.integers(0, 3, 30), rng.integers(0, 3, 80))
    plain = evaluate(qf, gf, *labels)
    cipher = create_cipher(cipher_name)
    decrypted = evaluate(cipher.decrypt(cipher.encrypt(qf)), cipher.decrypt(cipher.encrypt(gf)), *labels)
    assert decrypted["mAP"] == plain["mAP"] and decrypted["mINP"] == plain["mINP"]
    assert np.array_equal(decrypted["cmc"], plain["cmc"])
