"""The frontier sweep on synthetic people with a clear signal: its points move the way the schemes guarantee."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from shufflebits.attacks.types import AttackProfile, LabelledFeatures
from shufflebits.ciphers.hazmat import experiment_cipher
from shufflebits.errors import InvalidInputError
from shufflebits.study.frontier import DCPE_RELATIVE_BETAS, frontier_sweep, impostor_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 64
PROBE = AttackProfile(
    mlp_epochs=8, paper_epochs=1, hidden=32, bits_hidden=8, recon_epochs=1, recon_width=8,
    recon_variants=("autoencoder",), surrogate_epochs=1, permutations=10,
)  # fmt: skip


def _people(ids: int, per: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features clustered by identity (ReLU-like, as the victim's); two binary attributes each lift 8 dimensions."""
    rng = np.random.default_rng(seed)
    attributes = rng.integers(0, 2, (ids, 2))
    centres = np.maximum(rng.standard_normal((ids, D)), 0) * 3
    centres[:, :8] += 3 * attributes[:, :1]
    centres[:, 8:16] += 3 * attributes[:, 1:]
    x = np.maximum(np.repeat(centres, per, axis=0) + 0.5 * rng.standard_normal((ids * per, D)), 0)
    return x.astype(np.float32), np.repeat(attributes, per, axis=0), np.repeat(np.arange(ids), per)


def _features(x, labels, pids, camids) -> LabelledFeatures:
    return LabelledFeatures(
        features=x, labels=labels, attribute_names=["a", "b"], num_classes=[2, 2], pids=pids, camids=camids
    )


@pytest.fixture(scope="module")
def sets():
    ax, alabels, apids = _people(ids=150, per=4, seed=1)
    attacker = _features(ax, alabels, apids, np.tile(np.arange(4), 150))
    ux, ulabels, upids = _people(ids=40, per=2, seed=2)
    cam = np.tile(np.arange(2), 40)  # one query (camera 0) and one gallery image (camera 1) per user
    query, gallery = (_features(ux[cam == c], ulabels[cam == c], upids[cam == c], cam[cam == c]) for c in (0, 1))
    return attacker, query, gallery


@pytest.fixture(scope="module")
def sweep(sets):
    return frontier_sweep(*sets, PROBE, seed=0)


def _curve(sweep: dict, cipher: str, parameter: str) -> list[dict]:
    return sorted((p for p in sweep["points"] if p["cipher"] == cipher), key=lambda p: p[parameter])


def test_dcpe_rank1_and_linkability_fall_as_beta_grows(sweep, sets):
    curve = _curve(sweep, "dcpe", "beta")
    assert [p["beta_relative"] for p in curve] == list(DCPE_RELATIVE_BETAS)
    scale = impostor_distance(sets[0], 0)
    assert all(p["beta"] == pytest.approx(p["beta_relative"] * scale) for p in curve)
    rank1 = [p["reid_rank1_ciphertext"] for p in curve]
    assert rank1[0] > 0.9  # small β: distance comparisons kept, so ranking is plaintext's
    assert all(later <= earlier + 0.05 for earlier, later in pairwise(rank1))  # never higher with larger β
    assert rank1[-1] < rank1[0] - 0.3 and rank1[-1] < 0.3  # β far above the distances: near chance (1/40)
    assert curve[0]["unlinkability_dsys"] > curve[-1]["unlinkability_dsys"]  # s = 1: small noise keeps c ~ m
    assert all(p["comparison"] == "euclidean" and p["bytes_per_vector"] == D * 4 + 16 for p in curve)


def test_biohash_rank1_does_not_drop_with_more_bits(sweep):
    curve = _curve(sweep, "biohash", "bits")
    assert [p["bits"] for p in curve] == [8, 32, D]  # BIOHASH_BITS kept to 1..d, d added
    rank1 = [p["reid_rank1_ciphertext"] for p in curve]
    assert rank1[-1] >= rank1[0] - 0.05 and rank1[-1] > 0.8
    assert all(p["comparison"] == "hamming" and p["bytes_per_vector"] == -(-p["bits"] // 32) * 4 for p in curve)
    assert all(p["unlinkability_dsys"] < 0.5 for p in curve)  # another key projects elsewhere


def test_every_point_carries_its_chance_levels_and_the_probe(sweep):
    assert sweep["attribute_probe"] and sweep["feature_dim"] == D
    for p in sweep["points"]:
        assert 0.0 <= p["unlinkability_dsys"] <= 1.0 and p["reid_rank1_chance"] < 0.2
        assert p["attr_chance_mean"] == 0.5 and 0.0 <= p["attr_bacc_mean"] <= 1.0
        assert p["attr_validation"] is not None and p["encrypt_us_per_vector"] > 0
    small_beta = _curve(sweep, "dcpe", "beta")[0]
    assert small_beta["attr_bacc_mean"] > 0.75  # the attributes are read off the centres: the probe sees them


def test_sweep_without_probe_and_bad_parameters(sets):
    lean = frontier_sweep(*sets, None, seed=0)
    assert not lean["attribute_probe"] and all("attr_bacc_mean" not in p for p in lean["points"])
    with pytest.raises(InvalidInputError, match="beta"):
        experiment_cipher("dcpe", 0, beta=0)
    with pytest.raises(InvalidInputError, match="bits"):
        experiment_cipher("biohash", 0, bits=D + 1).encrypt(sets[1].features)
